package e2e

// TestDevsyncSurvivesAPIServerRestart stops the local cluster's
// kube-apiserver (a process of this machine, found through /proc): it runs
// only where that cluster runs, on Linux. The file's _linux suffix keeps the
// package building (and vetted) on the other krew platforms.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// kdevClusterUp runs "kdev cluster up", which starts again the components of
// the local cluster that are not running.
func kdevClusterUp(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(env.BinDir, "kdev"), "cluster", "up")
	cmd.Dir = env.Root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// processGone is true when no thread of pid runs any more. A Go program's
// leader thread may be a zombie while its other threads still exit,
// holding its files (the API server's listening port among them).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return os.IsNotExist(err)
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X') {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err != nil || len(tasks) <= 1
}

// TestDevsyncSurvivesAPIServerRestart: stop the local cluster's
// kube-apiserver during a watch, edit (create, change, delete) while it is
// down, start it again: devsync reconnects and nothing is lost.
func TestDevsyncSurvivesAPIServerRestart(t *testing.T) {
	if !env.Local {
		t.Skip("stops the kube-apiserver process: only on the project's own local cluster")
	}
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)
	// Registered after the namespace: runs before its deletion, and leaves
	// the cluster healthy for the next tests even when this one fails.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if out, err := kdevClusterUp(ctx); err != nil {
			t.Errorf("kdev cluster up in cleanup: %v\n%s", err, out)
		}
	})

	local := t.TempDir()
	syncTree(t, local)
	mustWrite(t, filepath.Join(local, "doomed.txt"), "deleted while the API server is down\n", 0o644)
	w := startDevsync(t, ns, local, "deploy/demo", "--dest", "/srv/w")
	waitSameTree(t, ns, "deploy/demo", "/srv/w", local, time.Minute)
	mustWrite(t, filepath.Join(local, "before/stop.txt"), "made before the stop\n", 0o644)
	waitSameTree(t, ns, "deploy/demo", "/srv/w", local, time.Minute)
	pod := agentPod(t, ns, "demo")
	restarts := appRestarts(t, &pod)

	pidFile := filepath.Join(testbed.PidDir(), "kube-apiserver.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// What kdev writes (hack/internal/cluster.PidInfo, internal to hack/).
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(b, &info); err != nil || info.Pid <= 0 {
		t.Fatalf("%s: pid %d, %v: %s", pidFile, info.Pid, err, b)
	}
	pid := info.Pid
	stopped := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to kube-apiserver (pid %d): %v", pid, err)
	}
	// Its graceful shutdown drains in-flight requests: about a minute here.
	env.WaitFor(t, fmt.Sprintf("kube-apiserver (pid %d) to exit", pid), 3*time.Minute, func(ctx context.Context) (bool, error) {
		return processGone(pid), nil
	})
	t.Logf("kube-apiserver stopped in %s", time.Since(stopped))

	// Edits while the API server is down: a new file, a changed file, a delete.
	mustWrite(t, filepath.Join(local, "during/outage.txt"), "made while the API server was down\n", 0o644)
	mustWrite(t, filepath.Join(local, "a/b/c/deep.txt"), "edited while the API server was down\n", 0o644)
	if err := os.Remove(filepath.Join(local, "doomed.txt")); err != nil {
		t.Fatal(err)
	}
	// Let devsync notice the edits (and the dead connection) while it is down.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		stillWatching(t, w)
		time.Sleep(250 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	out, err := kdevClusterUp(ctx)
	cancel()
	if err != nil {
		t.Fatalf("kdev cluster up: %v\n%s", err, out)
	}
	up := time.Now()
	t.Logf("API server down for %s; kdev cluster up:\n%s", up.Sub(stopped), out)

	waitSameTree(t, ns, "deploy/demo", "/srv/w", local, 3*time.Minute)
	t.Logf("trees equal %s after the API server came back", time.Since(up))
	stillWatching(t, w)

	// The same watch keeps syncing.
	mustWrite(t, filepath.Join(local, "after/restart.txt"), "made after the restart\n", 0o644)
	waitSameTree(t, ns, "deploy/demo", "/srv/w", local, time.Minute)
	stillWatching(t, w)
	// After the outage the kubelet may report the agent not ready for a
	// moment while it catches up with its probes: wait for it before looking.
	env.WaitFor(t, "a pod of deployment/demo with a ready agent", 2*time.Minute, func(ctx context.Context) (bool, error) {
		for _, p := range env.RunningPods(t, ns, "demo") {
			for _, st := range p.Status.ContainerStatuses {
				if st.Name == "devagent" && st.Ready {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if now := agentPod(t, ns, "demo"); now.Name != pod.Name {
		t.Logf("the pod was replaced during the outage: %s -> %s", pod.Name, now.Name)
	} else if got := appRestarts(t, &pod); got != restarts {
		t.Logf("app container restartCount %d, was %d", got, restarts)
	}
}
