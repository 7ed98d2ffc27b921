//go:build linux

package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

// tutorialStep is one fenced block of docs/tutorial.md that the test runs.
type tutorialStep struct {
	kind string // "tutorial" (must succeed), "tutorial-background", "tutorial-until"
	line int    // of the opening fence, for messages
	text string
}

// tutorialSteps reads the blocks fenced with "```sh tutorial",
// "```sh tutorial-background" or "```sh tutorial-until", in order.
func tutorialSteps(doc string) []tutorialStep {
	var steps []tutorialStep
	var cur *tutorialStep
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(l, "```sh tutorial"):
			cur = &tutorialStep{kind: strings.TrimSpace(strings.TrimPrefix(l, "```sh ")), line: n}
		case cur != nil && strings.HasPrefix(l, "```"):
			steps = append(steps, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		}
	}
	return steps
}

func TestTutorialStepsParse(t *testing.T) {
	doc := "intro\n```sh\nnot run\n```\n```sh tutorial\na\nb\n```\n```sh tutorial-background\nc\n```\n```sh tutorial-until\nd\n```\n"
	got := tutorialSteps(doc)
	want := []tutorialStep{{"tutorial", 5, "a\nb\n"}, {"tutorial-background", 9, "c\n"}, {"tutorial-until", 12, "d\n"}}
	if len(got) != len(want) {
		t.Fatalf("steps %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestTutorial follows docs/tutorial.md on the local cluster: it runs the
// blocks marked for it, in order, as a user would paste them, in a copy of
// the repository's examples folder, in a namespace of its own (the
// kubeconfig's current context points there, as the tutorial's step 1 does).
func TestTutorial(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(env.Root, "docs/tutorial.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps := tutorialSteps(string(doc))
	// The tutorial's story, each step of which the test must run: a test
	// that finds no blocks proves nothing.
	all := ""
	for _, s := range steps {
		all += s.text
	}
	for _, want := range []string{"kdev build", "kubectl create deployment", "kubectl devpatch deploy/hello --supervise",
		"kubectl devssh deploy/hello --", "-L 18080:localhost:8080", "kubectl devsync", "--restart", "sed -i", "restartCount", "--remove"} {
		if !strings.Contains(all, want) {
			t.Fatalf("docs/tutorial.md runs no step with %q (the blocks fenced with ```sh tutorial...)", want)
		}
	}

	ns := env.Namespace(t)
	work := t.TempDir()
	copyDir(t, filepath.Join(env.Root, "examples"), filepath.Join(work, "examples"))
	// A kubeconfig whose current context is the test's namespace; the
	// plugins' key folder beside it is the cluster's (see Env.Link).
	kc := filepath.Join(t.TempDir(), "tutorial.kubeconfig")
	raw, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kc, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(keys.Dir(env.Kubeconfig, ""), keys.Dir(kc, "")); err != nil {
		t.Fatal(err)
	}
	vars := []string{
		"KUBECONFIG=" + kc,
		"REGISTRY=" + testbed.ImageRepo(),
		"PYTHON_BASE=" + testbed.Image("debian-python-base", "bookworm"),
		"KUBECTL_DEV_AGENT_IMAGE=" + env.AgentImage(),
	}
	if out, err := runShell(context.Background(), work, vars, "kubectl config set-context --current --namespace "+ns); err != nil {
		t.Fatalf("pointing the tutorial's kubeconfig at %s: %v\n%s", ns, err, out)
	}

	var background []*exec.Cmd
	defer func() {
		for _, c := range background {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGINT)
		}
		for _, c := range background {
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
				<-done
			}
		}
	}()
	var logs []*framework.LockedBuffer
	for _, s := range steps {
		what := strings.TrimSpace(s.text)
		switch s.kind {
		case "tutorial":
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			out, err := runShell(ctx, work, vars, s.text)
			cancel()
			t.Logf("docs/tutorial.md:%d: %s\n%s", s.line, what, out)
			if err != nil {
				t.Fatalf("docs/tutorial.md:%d failed: %v\n%s\n%s", s.line, err, out, bgLogs(logs))
			}
		case "tutorial-background":
			cmd := shellCommand(context.Background(), work, vars, s.text)
			var buf framework.LockedBuffer
			cmd.Stdout, cmd.Stderr = &buf, &buf
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Logf("docs/tutorial.md:%d: started in the background: %s", s.line, what)
			background, logs = append(background, cmd), append(logs, &buf)
		case "tutorial-until":
			deadline := time.Now().Add(2 * time.Minute)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				out, err := runShell(ctx, work, vars, s.text)
				cancel()
				if err == nil {
					t.Logf("docs/tutorial.md:%d: %s: true", s.line, what)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("docs/tutorial.md:%d never held within 2m: %s: %v\n%s\n%s", s.line, what, err, out, bgLogs(logs))
				}
				time.Sleep(200 * time.Millisecond)
			}
		default:
			t.Fatalf("docs/tutorial.md:%d: unknown block kind %q", s.line, s.kind)
		}
	}
}

func bgLogs(logs []*framework.LockedBuffer) string {
	var b strings.Builder
	for i, l := range logs {
		b.WriteString("background command " + string(rune('1'+i)) + ":\n" + l.String() + "\n")
	}
	return b.String()
}

func shellCommand(ctx context.Context, dir string, vars []string, script string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), vars...)
	return cmd
}

func runShell(ctx context.Context, dir string, vars []string, script string) (string, error) {
	out, err := shellCommand(ctx, dir, vars, script).CombinedOutput()
	return string(out), err
}
