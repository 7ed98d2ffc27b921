package devssh

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	uexec "k8s.io/utils/exec"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentconn"
	"github.com/kubectl-dev/kubectl-dev/test/inprocess"
)

// run feeds argv to "kubectl devssh" with the in-process agent behind the
// commands' dialer, as kubectl's own command tests feed theirs, and returns
// stdout, stderr and the error Run returned (its exit code, for a
// uexec.CodeExitError).
func run(t *testing.T, a *inprocess.Agent, argv ...string) (string, string, error) {
	t.Helper()
	return runWith(t, a, NewOptions(genericiooptions.IOStreams{In: strings.NewReader("")}), argv...)
}

func runWith(t *testing.T, a *inprocess.Agent, o *Options, argv ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	o.Out, o.ErrOut = &out, &errOut
	o.Dialer = a
	cmd := newCmd(a.Factory(t), o)
	cmd.SetArgs(argv)
	cmd.SetOut(&errOut)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func exitCode(err error) int {
	var ce uexec.CodeExitError
	if errors.As(err, &ce) {
		return ce.Code
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestArgv(t *testing.T) {
	// The fake factory's kubeconfig, and the kubectl-dev folder beside it
	// (hints), in a folder of the test's.
	t.Setenv("TMPDIR", t.TempDir())
	a := inprocess.NewAgent(t, nil)
	id := "--identity=" + a.Identity

	t.Run("a bare name is a pod; the command after -- runs and its exit code passes through", func(t *testing.T) {
		out, _, err := run(t, a, "demo-1", id, "--target", "agent", "--", "sh", "-c", "echo \"$1\"; exit 3", "x", "two words")
		if exitCode(err) != 3 || out != "two words\n" {
			t.Fatalf("exit %d (%v), stdout %q", exitCode(err), err, out)
		}
	})
	t.Run("a workload resolves to its pod with a ready agent", func(t *testing.T) {
		out, _, err := run(t, a, "deployment/demo", id, "--", "echo", "resolved")
		if err != nil || out != "resolved\n" {
			t.Fatalf("err %v, stdout %q", err, out)
		}
	})
	t.Run("TYPE NAME in two arguments is refused: -- splits the command", func(t *testing.T) {
		_, _, err := run(t, a, "deploy", "demo", id)
		if err == nil || !strings.Contains(err.Error(), "want one TYPE/NAME") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("an unknown flag is named", func(t *testing.T) {
		_, _, err := run(t, a, "deploy/demo", "--bogus")
		if err == nil || !strings.Contains(err.Error(), "unknown flag: --bogus") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("a bad flag value names the flag", func(t *testing.T) {
		_, _, err := run(t, a, "deployment/demo", id, "--target", "both")
		if err == nil || !strings.Contains(err.Error(), "--target must be app or agent") {
			t.Fatalf("err %v", err)
		}
		_, _, err = run(t, a, "deployment/demo", id, "-L", "nope")
		if err == nil || !strings.Contains(err.Error(), "-L") {
			t.Fatalf("-L nope: %v", err)
		}
	})
	t.Run("no object", func(t *testing.T) {
		_, _, err := run(t, a)
		if err == nil || !strings.Contains(err.Error(), "requires at least 1 arg") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("a missing object exits 255 with one line naming it", func(t *testing.T) {
		_, _, err := run(t, a, "deployment/nope", id, "--", "true")
		if exitCode(err) != 255 || !strings.Contains(err.Error(), `"nope" not found`) || strings.Count(err.Error(), "\n") > 0 {
			t.Fatalf("exit %d: %v", exitCode(err), err)
		}
	})
	t.Run("an unpatched workload names the fix", func(t *testing.T) {
		_, _, err := run(t, a, "deployment/plain", id, "--", "true")
		// The fake kubeconfig's namespace is "ns": the remedy names it.
		if exitCode(err) != 255 || !strings.Contains(err.Error(), `run "kubectl devpatch -n ns deployment/plain" first`) {
			t.Fatalf("exit %d: %v", exitCode(err), err)
		}
	})
	t.Run("a missing default identity names the fix", func(t *testing.T) {
		_, _, err := run(t, a, "deployment/demo", "--", "true")
		if exitCode(err) != 255 || !strings.Contains(err.Error(), "no identity at") || !strings.Contains(err.Error(), "--identity") {
			t.Fatalf("exit %d: %v", exitCode(err), err)
		}
	})
	t.Run("config prints an ssh_config block for the workload", func(t *testing.T) {
		t.Setenv("HOME", t.TempDir()) // config writes the known_hosts file under ~/.ssh
		dialed := a.Dialed()
		out, _, err := run(t, a, "config", "deployment/demo", id)
		if err != nil || !strings.Contains(out, "Host deployment-demo.") && !strings.Contains(out, "Host demo.") {
			t.Fatalf("err %v, stdout %q", err, out)
		}
		if !strings.Contains(out, "ProxyCommand ") || !strings.Contains(out, "--stdio") || !strings.Contains(out, "deployment/demo") {
			t.Fatalf("block: %s", out)
		}
		if a.Dialed() != dialed {
			t.Fatal("config dialed the agent")
		}
	})
}

// TestSpeculation: the second run connects to the pod the first resolved
// to while it resolves again, and uses that connection (one dial per run);
// a hint naming another pod is not used, and the run dials the pod it
// resolved to.
func TestSpeculation(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // see TestArgv
	a := inprocess.NewAgent(t, nil)
	id := "--identity=" + a.Identity
	for i := range 2 {
		dialed := a.Dialed()
		o := NewOptions(genericiooptions.IOStreams{In: strings.NewReader("")})
		out, _, err := runWith(t, a, o, "deployment/demo", id, "--", "echo", "ok")
		if err != nil || out != "ok\n" {
			t.Fatalf("run %d: err %v, stdout %q", i, err, out)
		}
		if a.Dialed() != dialed+1 {
			t.Fatalf("run %d dialled %d times", i, a.Dialed()-dialed)
		}
		if (o.spec != nil) != (i == 1) {
			t.Fatalf("run %d: speculation %v", i, o.spec != nil)
		}
		if i == 1 && o.spec.Take(&agentconn.Target{}) != nil {
			t.Fatal("the speculation was not taken by the run")
		}
	}
	m, _ := filepath.Glob(filepath.Join(tmp, "kubectl-dev", "hints", "*.json"))
	if len(m) != 1 {
		t.Fatalf("hint files %v", m)
	}
	hint := m[0]
	if err := os.WriteFile(hint, []byte(`{"pod":"demo-0","secret":"demo-devagent"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o := NewOptions(genericiooptions.IOStreams{In: strings.NewReader("")})
	out, _, err := runWith(t, a, o, "deployment/demo", id, "--", "echo", "ok")
	if err != nil || out != "ok\n" || o.spec == nil {
		t.Fatalf("stale hint: err %v, stdout %q, speculation %v", err, out, o.spec != nil)
	}
	if h, _ := agentconn.LoadHint(hint); h.Pod != a.Pod.Name {
		t.Fatalf("hint %+v not updated to %s", h, a.Pod.Name)
	}
}
