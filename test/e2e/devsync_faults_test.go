package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stillWatching fails the test when the background devsync has exited.
func stillWatching(t *testing.T, w *watchingDevsync) {
	t.Helper()
	select {
	case err := <-w.done:
		w.done <- err
		t.Fatalf("devsync exited (%v); stdout:\n%s\nstderr:\n%s", err, w.stdout.String(), w.stderr.String())
	default:
	}
}

// hupApp runs the demo app with a SIGHUP handler that appends a line to
// /tmp/hup (in the app's filesystem) for each signal.
const hupApp = `import runpy, signal
def hup(signum, frame):
    with open("/tmp/hup", "a") as f:
        f.write("hup\n")
signal.signal(signal.SIGHUP, hup)
runpy.run_module("e2e_k8s.demo", run_name="__main__")
`

// hupCount is the number of SIGHUPs the app of TestDevsyncSignal handled.
func hupCount(t *testing.T, ns string) (int, error) {
	t.Helper()
	r := devssh(t, ns, nil, "deploy/demo", "--", "sh", "-c", `cat "${DEVSSH_APP_ROOT}/tmp/hup" 2>/dev/null | wc -l`)
	if r.ExitCode != 0 {
		return 0, fmt.Errorf("devssh exit %d: %s", r.ExitCode, r.Stderr)
	}
	return strconv.Atoi(strings.TrimSpace(r.Stdout))
}

// TestDevsyncSignal: with --signal HUP, a synced batch sends SIGHUP to the
// app process, which handles it; its container is not restarted.
func TestDevsyncSignal(t *testing.T) {
	ns := env.Namespace(t)
	d := env.DemoDeployment("demo", env.Image("demo-python", "latest"))
	d.Spec.Template.Spec.Containers[0].Command = []string{"python3", "-c", hupApp}
	env.CreateDeployment(t, ns, d)
	devpatchOK(t, ns, "deploy/demo")
	pod := agentPod(t, ns, "demo")
	restarts := appRestarts(t, &pod)

	local := t.TempDir()
	mustWrite(t, filepath.Join(local, "config.txt"), "one\n", 0o644)
	w := startDevsync(t, ns, local, "deploy/demo", "--dest", "/srv/cfg", "--signal", "HUP")
	waitSameTree(t, ns, "deploy/demo", "/srv/cfg", local, time.Minute)
	var before int
	env.WaitFor(t, "the HUP count", time.Minute, func(ctx context.Context) (bool, error) {
		n, err := hupCount(t, ns)
		before = n
		return err == nil, err
	})

	start := time.Now()
	mustWrite(t, filepath.Join(local, "config.txt"), "two, longer\n", 0o644)
	env.WaitFor(t, "the app to handle a SIGHUP after the batch", time.Minute, func(ctx context.Context) (bool, error) {
		n, err := hupCount(t, ns)
		if err != nil {
			return false, err
		}
		return n > before, nil
	})
	t.Logf("edit to SIGHUP handled: %s", time.Since(start))
	waitSameTree(t, ns, "deploy/demo", "/srv/cfg", local, time.Minute)
	waitOutput(t, w.stdout, "the signal line", func(s string) bool { return strings.Contains(s, "sent SIGHUP to the app") })

	if got := appRestarts(t, &pod); got != restarts {
		t.Errorf("app container restartCount %d, was %d", got, restarts)
	}
	if now := agentPod(t, ns, "demo"); now.Name != pod.Name {
		t.Errorf("the pod was replaced: %s -> %s", pod.Name, now.Name)
	}
	// The marker was written by the handler in the app.
	if out := devsshOK(t, ns, "deploy/demo", "--", "sh", "-c", `cat "${DEVSSH_APP_ROOT}/tmp/hup"`); !strings.Contains(out, "hup") {
		t.Errorf("/tmp/hup: %q", out)
	}
	stillWatching(t, w)
}
