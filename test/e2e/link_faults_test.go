package e2e

// Link faults: each test starts an emulated link of its own (hack/link, the
// wan profile) in front of the API server and runs the plugin under test
// through it, then cuts, stalls or throttles the link. The tests' own
// checks (kubectl exec, devssh, client-go) go direct, not through the link.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/sshclient"
	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

// startLinkedDevsync starts "kubectl devsync -n ns ARGS..." through the
// link l in the background and waits until stderr shows ready; it is
// stopped (SIGINT) when the test ends.
func startLinkedDevsync(t *testing.T, l *framework.LinkedEnv, ns, ready string, args ...string) *watchingDevsync {
	t.Helper()
	w := &watchingDevsync{stdout: &framework.LockedBuffer{}, stderr: &framework.LockedBuffer{}, done: make(chan error, 1)}
	w.cmd = l.Command(env.Kubectl, append([]string{"devsync", "-n", ns}, args...)...)
	w.cmd.Stdout, w.cmd.Stderr = w.stdout, w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	t.Cleanup(func() { w.stop(t) })
	waitOutput(t, w.stderr, fmt.Sprintf("devsync (through the link) to print %q", ready), func(s string) bool { return strings.Contains(s, ready) })
	return w
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeAtomically replaces path with content through a rename, so that
// devsync's watcher never reads a half-written local file.
func writeAtomically(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), filepath.Base(path)) // outside the synced tree, on the same filesystem
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// appFileScript prints "<sha256> <size>" of $1 in the app container, or
// "absent".
const appFileScript = `if [ -e "$1" ]; then echo "$(sha256sum < "$1" | cut -c1-64) $(wc -c < "$1")"; else echo absent; fi`

// appFile is what appFileScript says about path in the app container of pod,
// through kubectl exec on the direct kubeconfig (not the link).
func appFile(ctx context.Context, ns, pod, path string) (string, error) {
	out, err := env.KubectlRun(ctx, "-n", ns, "exec", pod, "-c", "app", "--", "sh", "-c", appFileScript, "appfile", path)
	return strings.TrimSpace(out), err
}

// filePoller samples a file of the app container until stopped and
// records every state it saw.
type filePoller struct {
	mu      sync.Mutex
	seen    map[string]int // "<sha256> <size>" or "absent" -> samples
	errs    int
	lastErr error
	stop    chan struct{}
	done    chan struct{}
}

func pollAppFile(ns, pod, path string) *filePoller {
	p := &filePoller{seen: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			got, err := appFile(ctx, ns, pod, path)
			cancel()
			p.mu.Lock()
			if err != nil {
				p.errs++
				p.lastErr = err
			} else {
				p.seen[got]++
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *filePoller) snapshot() (map[string]int, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := make(map[string]int, len(p.seen))
	for k, v := range p.seen {
		seen[k] = v
	}
	return seen, p.errs, p.lastErr
}

func (p *filePoller) finish() (map[string]int, int, error) {
	close(p.stop)
	<-p.done
	return p.snapshot()
}

// TestLinkCutDuringWatch: devsync watches over a wan link; the link is cut
// for 15 s while local files change (an edit, a new file, a delete, a new
// version of a 3 MiB file); devsync says it lost the connection, reconnects
// by itself once the link is back, and the app's tree converges to the
// local one. Meanwhile the app's copy of the big file is sampled, directly,
// over and over: it is only ever absent, the old version or the new one,
// never a part of either.
func TestLinkCutDuringWatch(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)
	pod := agentPod(t, ns, "demo")
	l := env.Link(t, "wan")

	local := t.TempDir()
	mustWrite(t, filepath.Join(local, "keep.txt"), "kept\n", 0o644)
	mustWrite(t, filepath.Join(local, "edit.txt"), "before the cut\n", 0o644)
	mustWrite(t, filepath.Join(local, "doomed.txt"), "deleted during the cut\n", 0o644)
	oldBig, newBig := randomBytes(t, 3<<20), randomBytes(t, 3<<20)
	writeAtomically(t, filepath.Join(local, "data/big.bin"), oldBig)
	okStates := map[string]string{
		"absent": "absent",
		fmt.Sprintf("%s %d", sha(oldBig), len(oldBig)): "old",
		fmt.Sprintf("%s %d", sha(newBig), len(newBig)): "new",
	}

	w := startLinkedDevsync(t, l, ns, "watching ", local, "deploy/demo", "--dest", "/srv/w")
	waitSameTree(t, ns, "deploy/demo", "/srv/w", local, 2*time.Minute)
	poller := pollAppFile(ns, pod.Name, "/srv/w/data/big.bin")
	defer func() {
		select {
		case <-poller.stop:
		default:
			poller.finish()
		}
	}()

	syncedBefore := w.stdout.String()
	cut := time.Now()
	l.Cut()
	waitOutput(t, w.stderr, "devsync to say that it lost the connection", func(s string) bool {
		return strings.Contains(s, "was lost; reconnecting")
	})
	t.Logf("devsync noticed the cut after %s", time.Since(cut))

	// Edits while the link is down.
	mustWrite(t, filepath.Join(local, "edit.txt"), "edited during the cut\n", 0o644)
	mustWrite(t, filepath.Join(local, "during/new.txt"), "made during the cut\n", 0o644)
	if err := os.Remove(filepath.Join(local, "doomed.txt")); err != nil {
		t.Fatal(err)
	}
	writeAtomically(t, filepath.Join(local, "data/big.bin"), newBig)

	// The cut lasts 15 s (the scenario); devsync must keep running through it.
	down := time.NewTimer(15*time.Second - time.Since(cut))
	tick := time.NewTicker(250 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case <-down.C:
			waiting = false
		case <-tick.C:
			stillWatching(t, w)
		}
	}
	tick.Stop()
	if s := w.stdout.String(); s != syncedBefore {
		t.Fatalf("devsync synced while the link was cut (is it going around the link?):\n%s", strings.TrimPrefix(s, syncedBefore))
	}
	// Back up, at 2 Mbit/s for the catch-up: the new version of the big
	// file then takes about 12 s to cross, while the poller looks at it.
	if err := l.Throttle(250_000); err != nil {
		t.Fatal(err)
	}
	if err := l.Restore(); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	t.Logf("link cut for %s", restored.Sub(cut))
	waitOutput(t, w.stderr, "devsync to reconnect by itself", func(s string) bool { return strings.Contains(s, "reconnected to ") })
	t.Logf("devsync reconnected %s after the link came back", time.Since(restored))
	before, _, _ := poller.snapshot()
	waitSameTree(t, ns, "deploy/demo", "/srv/w", local, 3*time.Minute)
	t.Logf("trees equal %s after the link came back", time.Since(restored))
	seen, errs, lastErr := poller.finish()
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}

	// One more sample, now that the trees are equal: the new version.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	final, err := appFile(ctx, ns, pod.Name, "/srv/w/data/big.bin")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if okStates[final] != "new" {
		t.Fatalf("after convergence the app's big.bin is %q, want the new version", final)
	}
	samples := 0
	for state, n := range seen {
		samples += n
		if _, ok := okStates[state]; !ok {
			t.Errorf("the app saw a partial big.bin %d times: %s (old %s, new %s)", n, state, sha(oldBig), sha(newBig))
		}
	}
	if samples == 0 {
		t.Fatalf("the poller read big.bin in the app not once (%d errors, last: %v)", errs, lastErr)
	}
	catchUp := 0
	for state, n := range seen {
		if okStates[state] == "old" {
			catchUp += n - before[state]
		}
	}
	t.Logf("big.bin sampled %d times (%d failed samples, last error: %v), %d of them with the old version after the link came back: %v", samples, errs, lastErr, catchUp, named(seen, okStates))

	// The same watch goes on over the healed link.
	stillWatching(t, w)
	mustWrite(t, filepath.Join(local, "after/healed.txt"), "made after the link healed\n", 0o644)
	waitSameTree(t, ns, "deploy/demo", "/srv/w", local, time.Minute)
	stillWatching(t, w)
}

// named renames the sampled states by okStates (old, new, absent).
func named(seen map[string]int, okStates map[string]string) map[string]int {
	out := map[string]int{}
	for state, n := range seen {
		name, ok := okStates[state]
		if !ok {
			name = "PARTIAL " + state
		}
		out[name] += n
	}
	return out
}

// TestDevsshDeadLink: a devssh session runs a long command over a wan
// link; the link then stalls without a reset (every byte swallowed, the
// connections left open). devssh must notice through its keepalives and
// exit with a clear error, within their budget, instead of hanging.
func TestDevsshDeadLink(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)
	l := env.Link(t, "wan")
	cmd := l.Command(env.Kubectl, "devssh", "-n", ns, "deploy/demo", "--", "sh", "-c", "echo started; exec sleep 600")
	var stdout, stderr framework.LockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	waitOutput(t, &stdout, "the remote command to start through the link", func(s string) bool { return strings.Contains(s, "started") })

	if err := l.Blackhole(); err != nil {
		t.Fatal(err)
	}
	stalled := time.Now()
	// A keepalive every interval, each waited for one interval, the
	// connection closed after KeepaliveCountMax unanswered: at most
	// (count+1) intervals after the last answer, plus slack for the exit.
	interval := sshclient.DefaultKeepaliveInterval
	bound := time.Duration(sshclient.KeepaliveCountMax+1)*interval + 20*time.Second
	select {
	case err := <-done:
		exited = true
		elapsed := time.Since(stalled)
		t.Logf("devssh exited %s after the link stalled (keepalive every %s, %d missed close it; bound %s): %v\nstderr: %s",
			elapsed, interval, sshclient.KeepaliveCountMax, bound, err, stderr.String())
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 255 {
			t.Errorf("exit: %v, want code 255 (ssh's connection failure)", err)
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "connection to pod/") || !strings.Contains(lines[0], "was lost") {
			t.Errorf("stderr is not one line naming the lost connection:\n%s", stderr.String())
		}
	case <-time.After(bound):
		t.Fatalf("devssh still runs %s after the link stalled (keepalive every %s, %d missed should close it): it hangs; stderr:\n%s",
			bound, interval, sshclient.KeepaliveCountMax, stderr.String())
	}
}

// rateRE is the bar's rate and time left, e.g. "121.47 KiB/s ETA 19s".
var rateRE = regexp.MustCompile(`([0-9.]+) (B|KiB|MiB|GiB)/s ETA ([0-9hms.]+)`)

// finalRE is the bar's last frame's rate, e.g. "121.47 KiB/s in 25s".
var finalRE = regexp.MustCompile(`([0-9.]+) (B|KiB|MiB|GiB)/s in [0-9]`)

func bytesPerSecond(value, unit string) float64 {
	v, _ := strconv.ParseFloat(value, 64)
	switch unit {
	case "KiB":
		v *= 1 << 10
	case "MiB":
		v *= 1 << 20
	case "GiB":
		v *= 1 << 30
	}
	return v
}

// TestDevsyncThrottledProgress: over a wan link throttled to 1 Mbit/s,
// devsync --once of a 3 MiB incompressible file with --progress always
// shows a rate and an ETA while it runs, and its last frame's rate is
// the link's, not the wan's 100 Mbit/s.
func TestDevsyncThrottledProgress(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)
	l := env.Link(t, "wan")
	const rate = 125_000 // 1 Mbit/s
	if err := l.Throttle(rate); err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	big := randomBytes(t, 3<<20)
	writeAtomically(t, filepath.Join(local, "data/big.bin"), big)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := l.Command(env.Kubectl, "devsync", "-n", ns, local, "deploy/demo", "--dest", "/srv/p", "--once", "--progress", "always")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := runUntil(ctx, cmd)
	took := time.Since(start)
	t.Logf("devsync --once through the throttled link: %v in %s\nstdout: %s\nstderr (frames on lines):\n%s",
		err, took, stdout.String(), strings.ReplaceAll(stderr.String(), "\r", "\n"))
	if err != nil {
		t.Fatalf("devsync --once: %v", err)
	}
	if !strings.Contains(stdout.String(), "synced 1 file, 3.0 MiB") {
		t.Errorf("stdout: %q", stdout.String())
	}
	// The throttle held: 3 MiB at 1 Mbit/s is 25 s.
	if minTook := time.Duration(float64(len(big)) / rate * 0.8 * float64(time.Second)); took < minTook {
		t.Errorf("3 MiB crossed a 1 Mbit/s link in %s (< %s): the throttle did not apply", took, minTook)
	}

	frames := strings.Split(stderr.String(), "\r")
	withRate, before100 := 0, 0
	for _, f := range frames {
		m := rateRE.FindStringSubmatch(f)
		if m == nil {
			continue
		}
		withRate++
		if m[3] != "0s" && !strings.Contains(f, "3.00 MiB / 3.00 MiB") {
			before100++
		}
	}
	if withRate == 0 {
		t.Errorf("no frame of the bar shows a rate and a time left (\"... KiB/s ETA 12s\")")
	}
	last := frames[len(frames)-1]
	if !strings.Contains(last, "3.00 MiB / 3.00 MiB") || !strings.Contains(last, "1/1 files") {
		t.Errorf("last frame %q: want 3.00 MiB / 3.00 MiB and 1/1 files", last)
	}
	m := finalRE.FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last frame %q has no rate", last)
	}
	// The mean over the sync: about the link's rate (with a margin for
	// the bar's start, which comes after the connection is up).
	if got := bytesPerSecond(m[1], m[2]); got > 1.5*rate || got < rate/4 {
		t.Errorf("last frame's rate %s %s/s (%.0f B/s), want about the link's %d B/s", m[1], m[2], got, rate)
	}
	t.Logf("%d frames with a rate and an ETA, %d of them before 100%% with a time left; last frame: %q", withRate, before100, last)
	waitSameTree(t, ns, "deploy/demo", "/srv/p", local, time.Minute)

	t.Run("ETA while the bytes cross the link", func(t *testing.T) {
		// The bar counts the bytes the agent reports it received (the
		// progress feature), not the bytes handed to SSH, whose channels
		// take 2 MiB each (x/crypto's fixed window) before the link has
		// carried any: before it did, 3 MiB showed as sent within a
		// second, then the bar sat at 100% with "ETA 0s" for the ~25 s
		// the link takes.
		if before100 == 0 {
			t.Errorf("no frame before 100%% with a time left: the bar ran ahead of the link")
		}
	})
	waitSameTree(t, ns, "deploy/demo", "/srv/p", local, time.Minute)
}

// runUntil runs cmd until it exits or ctx ends (then it is killed).
func runUntil(ctx context.Context, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}

// sentRE is the bar's byte counter, e.g. "1.25 MiB / 4.00 MiB".
var sentRE = regexp.MustCompile(`([0-9.]+) (B|KiB|MiB) / 4\.00 MiB`)

// interruptBound is how long devsync may take to exit after SIGINT on a
// throttled link: the session's orderly close gets a second (closeGrace in
// pkg/syncengine), then the connection is closed under what SSH still
// queues (which would take half a minute to cross at 1 Mbit/s).
const interruptBound = 10 * time.Second

// tempPrefix is the name prefix of the agent's temporary files and
// staged directories (pkg/rootfs.TempPrefix; that package is Linux-only).
const tempPrefix = ".devsync-tmp-"

// TestDevsyncInterruptKeepsOldFile: a file in the app has an old version;
// devsync --once sends a 4 MiB new version over a throttled wan link and
// is interrupted (SIGINT, Ctrl-C) in the middle. devsync exits promptly;
// the app's file is still the old version, whole, and no temporary file is
// left beside it.
func TestDevsyncInterruptKeepsOldFile(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)
	pod := agentPod(t, ns, "demo")
	local := t.TempDir()
	old := randomBytes(t, 1<<20)
	writeAtomically(t, filepath.Join(local, "data/big.bin"), old)
	devsyncOK(t, ns, local, "deploy/demo", "--dest", "/srv/i", "--once") // direct
	oldState := fmt.Sprintf("%s %d", sha(old), len(old))
	// check: the app's big.bin is the old version; temporary files may
	// linger while the agent still receives what was in flight when the
	// client stopped, and must be gone once it noticed the end.
	check := func(when string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var temps string
		for {
			got, err := appFile(ctx, ns, pod.Name, "/srv/i/data/big.bin")
			if err != nil {
				t.Fatal(err)
			}
			if got != oldState {
				t.Fatalf("%s: the app's big.bin is %q, want the old version %q", when, got, oldState)
			}
			out, err := env.KubectlRun(ctx, "-n", ns, "exec", pod.Name, "-c", "app", "--", "find", "/srv/i", "-name", tempPrefix+"*")
			if err != nil {
				t.Fatalf("%s: %v (temporary files: %s)", when, err, temps)
			}
			if temps = strings.TrimSpace(out); temps == "" {
				return
			}
		}
	}
	check("before")

	l := env.Link(t, "wan")
	const rate = 125_000 // 1 Mbit/s: 4 MiB take about 34 s
	if err := l.Throttle(rate); err != nil {
		t.Fatal(err)
	}
	newer := randomBytes(t, 4<<20)
	writeAtomically(t, filepath.Join(local, "data/big.bin"), newer)
	cmd := l.Command(env.Kubectl, "devsync", "-n", ns, local, "deploy/demo", "--dest", "/srv/i", "--once", "--progress", "always")
	var stdout, stderr framework.LockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	// Interrupt once the bar counts 512 KiB, well before the 4 MiB are
	// through (the bar counts what the agent reports it received: about
	// 4 s into the transfer at this rate).
	var sent float64
	waitOutput(t, &stderr, "the bar to count 512 KiB received", func(s string) bool {
		frames := strings.Split(s, "\r")
		m := sentRE.FindStringSubmatch(frames[len(frames)-1])
		if m == nil {
			return false
		}
		sent = bytesPerSecond(m[1], m[2])
		return sent >= 512<<10
	})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	interrupted := time.Now()
	select {
	case err := <-done:
		exited = true
		t.Logf("devsync exited %s after SIGINT (%.0f KiB of 4096 received): %v\nstdout: %s\nstderr (frames on lines):\n%s",
			time.Since(interrupted), sent/1024, err, stdout.String(), strings.ReplaceAll(stderr.String(), "\r", "\n"))
		if err == nil && strings.Contains(stdout.String(), "synced") {
			t.Fatalf("the sync finished before the interrupt: the test proves nothing")
		}
	case <-time.After(interruptBound):
		t.Fatalf("devsync still runs %s after SIGINT (it waits for what SSH queued to cross the link?); stderr:\n%s", interruptBound, strings.ReplaceAll(stderr.String(), "\r", "\n"))
	}
	check("right after the interrupt")

	// The agent notices the end of the session: still the old file, still
	// nothing beside it. Then a sync over the healed link completes it.
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	check("after the link healed")
	r := devsyncOK(t, ns, local, "deploy/demo", "--dest", "/srv/i", "--once")
	if !strings.Contains(r.Stdout, "synced 1 file") {
		t.Errorf("the sync after the interrupt: %q", r.Stdout)
	}
	waitSameTree(t, ns, "deploy/demo", "/srv/i", local, time.Minute)
}
