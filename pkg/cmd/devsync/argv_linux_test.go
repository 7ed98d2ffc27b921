package devsync

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	uexec "k8s.io/utils/exec"

	"github.com/kubectl-dev/kubectl-dev/test/inprocess"
)

// syncBuffer is a bytes.Buffer safe to read while the command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run feeds argv to "kubectl devsync" with the in-process agent behind the
// command's dialer.
func run(ctx context.Context, t *testing.T, a *inprocess.Agent, out, errOut *syncBuffer, argv ...string) error {
	t.Helper()
	o := NewOptions(genericiooptions.IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut})
	o.Dialer = a
	cmd := newCmd(a.Factory(t), o)
	cmd.SetArgs(argv)
	cmd.SetOut(errOut)
	cmd.SetErr(errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	return cmd.ExecuteContext(ctx)
}

func mustWrite(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fileIs(name, want string) func() bool {
	return func() bool {
		b, err := os.ReadFile(name)
		return err == nil && string(b) == want
	}
}

func TestArgvOnce(t *testing.T) {
	root := inprocess.NewAppRoot(t)
	a := inprocess.NewAgent(t, root.Subsystems())
	id := "--identity=" + a.Identity
	local := t.TempDir()
	mustWrite(t, filepath.Join(local, "main.py"), "print(1)\n")
	mustWrite(t, filepath.Join(local, "pkg/mod.py"), "x = 1\n")
	mustWrite(t, filepath.Join(root.Dir, "app/stale.txt"), "old\n")

	var out, errOut syncBuffer
	// A bare name is a pod; the default destination is the app's working
	// directory; --restart runs after the batch.
	if err := run(context.Background(), t, a, &out, &errOut, local, "demo-1", id, "--once", "--restart", "--verbose"); err != nil {
		t.Fatalf("devsync: %v\nstderr: %s", err, errOut.String())
	}
	if !fileIs(filepath.Join(root.Dir, "app/pkg/mod.py"), "x = 1\n")() || !fileIs(filepath.Join(root.Dir, "app/main.py"), "print(1)\n")() {
		t.Fatalf("tree not synced; stdout %q", out.String())
	}
	if !strings.Contains(out.String(), "synced 2 files") || !strings.Contains(out.String(), "restarted the app") || !strings.Contains(out.String(), "main.py") {
		t.Errorf("stdout: %q", out.String())
	}
	if !strings.Contains(errOut.String(), "syncing "+local+" to pod/demo-1:/app") {
		t.Errorf("stderr: %q", errOut.String())
	}
	if acts := root.Actions(); len(acts) != 1 || acts[0].Kind != "restart" {
		t.Errorf("actions: %+v", acts)
	}
	if _, err := os.Stat(filepath.Join(root.Dir, "app/stale.txt")); err != nil {
		t.Errorf("without --delete a remote-only file was removed: %v", err)
	}

	// --delete, into --dest, through the workload.
	out, errOut = syncBuffer{}, syncBuffer{}
	if err := run(context.Background(), t, a, &out, &errOut, local, "deployment/demo", id, "--once", "--delete", "--dest", "/app"); err != nil {
		t.Fatalf("devsync --delete: %v\nstderr: %s", err, errOut.String())
	}
	if _, err := os.Stat(filepath.Join(root.Dir, "app/stale.txt")); !os.IsNotExist(err) {
		t.Errorf("--delete kept stale.txt: %v", err)
	}
}

func TestArgvErrors(t *testing.T) {
	root := inprocess.NewAppRoot(t)
	a := inprocess.NewAgent(t, root.Subsystems())
	id := "--identity=" + a.Identity
	local := t.TempDir()
	for _, c := range []struct {
		name string
		argv []string
		want string
		code int // 0: any error
	}{
		{"one argument", []string{local}, "want LOCAL_DIR and TYPE/NAME", 0},
		{"an unknown flag is named", []string{local, "demo-1", "--bogus"}, "unknown flag: --bogus", 0},
		{"a bad --compress names the flag and the values", []string{local, "demo-1", id, "--compress", "gzip"}, "--compress must be auto, zstd or none", 0},
		{"a relative --dest", []string{local, "demo-1", id, "--dest", "app"}, "--dest must be an absolute path", 0},
		{"two actions", []string{local, "demo-1", id, "--restart", "--signal", "HUP"}, "choose one of --restart, --signal and --exec", 0},
		{"a missing LOCAL_DIR", []string{filepath.Join(local, "nope"), "demo-1", id}, "LOCAL_DIR " + filepath.Join(local, "nope"), 0},
		{"a missing object", []string{local, "deployment/nope", id, "--once"}, `"nope" not found`, 0},
		// The fake kubeconfig's namespace is "ns": the remedy names it.
		{"an unpatched workload names the fix", []string{local, "deployment/plain", id, "--once"}, `run "kubectl devpatch -n ns deployment/plain" first`, 1},
		{"an unknown -c names the containers", []string{local, "demo-1", id, "--once", "-c", "nosuch"}, `container "nosuch" not found in pod/demo-1; its containers are: app`, 0},
		{"a missing default identity names the fix", []string{local, "demo-1", "--once"}, "no identity at", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut syncBuffer
			err := run(context.Background(), t, a, &out, &errOut, c.argv...)
			if err == nil {
				t.Fatalf("no error, want one line with %q", c.want)
			}
			// A usage error's second line is kubectl's "See '... -h' for help".
			msg, _, _ := strings.Cut(err.Error()+"\nSee '", "\nSee '")
			if !strings.Contains(msg, c.want) || strings.Contains(strings.TrimSpace(msg), "\n") {
				t.Fatalf("err %v, want one line with %q", err, c.want)
			}
			var ce uexec.CodeExitError
			if c.code != 0 && (!errors.As(err, &ce) || ce.Code != c.code) {
				t.Fatalf("err %#v, want exit code %d", err, c.code)
			}
		})
	}
}

func TestArgvWatch(t *testing.T) {
	root := inprocess.NewAppRoot(t)
	a := inprocess.NewAgent(t, root.Subsystems())
	local := t.TempDir()
	mustWrite(t, filepath.Join(local, "main.py"), "v1\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, t, a, &out, &errOut, local, "deployment/demo", "--identity="+a.Identity, "--exec", "true")
	}()
	waitFor(t, "the initial sync", fileIs(filepath.Join(root.Dir, "app/main.py"), "v1\n"))
	waitFor(t, "the watch", func() bool { return strings.Contains(errOut.String(), "watching") })
	mustWrite(t, filepath.Join(local, "main.py"), "v2\n")
	waitFor(t, "the edit", fileIs(filepath.Join(root.Dir, "app/main.py"), "v2\n"))
	waitFor(t, "the action after the edit", func() bool { return len(root.Actions()) >= 2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("devsync after Ctrl-C: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("devsync did not end after its context did")
	}
	if !strings.Contains(out.String(), "ran true") || !strings.Contains(out.String(), "done exec") {
		t.Errorf("stdout: %q", out.String())
	}
}

// TestArgvProgressAlways: --progress always draws the bar on a stderr that
// is not a terminal; by default it does not.
func TestArgvProgressAlways(t *testing.T) {
	root := inprocess.NewAppRoot(t)
	a := inprocess.NewAgent(t, root.Subsystems())
	local := t.TempDir()
	mustWrite(t, filepath.Join(local, "a.txt"), strings.Repeat("a", 100<<10))
	mustWrite(t, filepath.Join(local, "b.txt"), "b\n")
	var out, errOut syncBuffer
	if err := run(context.Background(), t, a, &out, &errOut, local, "demo-1", "--identity="+a.Identity, "--once"); err != nil {
		t.Fatalf("devsync: %v\nstderr: %s", err, errOut.String())
	}
	if strings.Contains(errOut.String(), "files") {
		t.Errorf("a bar on a stderr that is not a terminal, without --progress: %q", errOut.String())
	}
	mustWrite(t, filepath.Join(local, "a.txt"), strings.Repeat("c", 100<<10))
	mustWrite(t, filepath.Join(local, "b.txt"), "d\n")
	out, errOut = syncBuffer{}, syncBuffer{}
	if err := run(context.Background(), t, a, &out, &errOut, local, "demo-1", "--identity="+a.Identity, "--once", "--progress", "always"); err != nil {
		t.Fatalf("devsync --progress always: %v\nstderr: %s", err, errOut.String())
	}
	if s := errOut.String(); !strings.Contains(s, "\r") || !strings.Contains(s, "2/2 files") || !strings.Contains(s, "B/s") {
		t.Errorf("--progress always: stderr %q", s)
	}
}
