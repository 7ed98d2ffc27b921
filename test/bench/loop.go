//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/hack/buildkit"
	"github.com/kubectl-dev/kubectl-dev/hack/link"
	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

// The basic loop against ours (issue #19): one edit of the demo app, timed
// until the new answer comes back through a forward.
//
//   - basic: BuildKit rebuilds the demo image from its Dockerfile with its
//     cache (a running daemon, as docker, buildx or a CI builder has) and
//     pushes it; `kubectl set image` to the new digest; the node pulls it
//     and the new pod is Ready (`kubectl rollout status`); `kubectl
//     port-forward` to the new pod answers the new result.
//   - in place: `kubectl devsync --restart` of the same edit into the
//     running pod; `kubectl devssh -L` (started once: it outlives the app's
//     restart, docs/devsync.md) answers the new result.
//
// Over a link profile, every kubectl and plugin run crosses the API
// server's link, and the push and the node's pull cross a second link of
// the same profile in front of the registry (testbed.RegistryLinkAddr), as
// they would to a cloud registry.

// loopRound is one edit of each side, split into its steps.
type loopRound struct {
	build, push, rollout, basicAnswer time.Duration // basic loop
	sync, restart, inplaceAnswer      time.Duration // in place
}

func (r loopRound) basic() time.Duration   { return r.build + r.push + r.rollout + r.basicAnswer }
func (r loopRound) inPlace() time.Duration { return r.sync + r.restart + r.inplaceAnswer }

// loopEdits are the edits of demo.py, in turn: each answer differs from the
// one before it.
var loopEdits = []struct{ op, want string }{{"*", "6"}, {"-", "-1"}, {"+", "5"}}

const loopDeploy = "loop"

func (b *bench) loop(ctx context.Context, pod *corev1.Pod, res *results) error {
	registry := testbed.RegistryAddr()
	if b.link != nil {
		// The registry's link: the node pulls 127.0.0.1:5001 through the
		// containerd mirror the test bed configures for it.
		regLink, err := link.Start(b.link.Profile, testbed.RegistryLinkAddr(), testbed.RegistryAddr())
		if err != nil {
			return fmt.Errorf("the registry's link: %w", err)
		}
		defer regLink.Close()
		registry = regLink.Addr()
	}
	dir, err := os.MkdirTemp("", "bench-loop-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctxDir := filepath.Join(dir, "context")
	if err := copyTree(filepath.Join(b.env.Root, "hack/images/demo-python"), ctxDir); err != nil {
		return err
	}
	demo := filepath.Join(ctxDir, "e2e_k8s/demo.py")
	src, err := os.ReadFile(demo)
	if err != nil {
		return err
	}
	const plus = "Response(str(x + y))"
	if !bytes.Contains(src, []byte(plus)) {
		return fmt.Errorf("%s has no %q to edit", demo, plus)
	}
	edited := func(op string) []byte {
		return bytes.Replace(src, []byte(plus), []byte("Response(str(x "+op+" y))"), 1)
	}

	if err := buildkit.Ensure(ctx, os.Stderr); err != nil {
		return err
	}
	var blog bytes.Buffer
	d, err := buildkit.Start(ctx, buildkit.DaemonOptions{Log: &blog})
	if err != nil {
		return fmt.Errorf("starting buildkitd: %w\n%s", err, blog.String())
	}
	defer func() { _ = d.Stop() }()
	image := registry + "/kubectl-dev/bench-loop"
	build := func(tag string) (string, time.Duration, time.Duration, error) {
		var out bytes.Buffer
		start := time.Now()
		digest, err := d.Build(ctx, buildkit.BuildOptions{Dir: ctxDir, Image: image + ":" + tag, Target: "latest", BuildArgs: demoBuildArgs(), Output: &out})
		total := time.Since(start)
		if err != nil {
			return "", 0, 0, fmt.Errorf("buildkit build of %s: %w\n%s", ctxDir, err, out.String())
		}
		push := pushTime(out.String())
		return digest, total - push, push, nil
	}
	// The first build fills BuildKit's cache and the node's image store:
	// the loop below then rebuilds and pulls one changed layer, as a
	// developer's does.
	digest, _, _, err := build("base")
	if err != nil {
		return err
	}
	dep := b.env.DemoDeployment(loopDeploy, image+"@"+digest)
	dep.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	if _, err := b.env.Client.AppsV1().Deployments(b.ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := b.kubectl(ctx, nil, "-n", b.ns, "rollout", "status", "deploy/"+loopDeploy, "--timeout", "3m"); err != nil {
		return err
	}

	// The in-place side: demo.py of deploy/demo, watched by devsync.
	local := filepath.Join(dir, "local")
	if err := os.MkdirAll(filepath.Join(local, "e2e_k8s"), 0o755); err != nil {
		return err
	}
	init, _ := os.ReadFile(filepath.Join(ctxDir, "e2e_k8s/__init__.py"))
	if err := os.WriteFile(filepath.Join(local, "e2e_k8s/__init__.py"), init, 0o644); err != nil {
		return err
	}
	localDemo := filepath.Join(local, "e2e_k8s/demo.py")
	if err := os.WriteFile(localDemo, src, 0o644); err != nil {
		return err
	}
	lines := &stampedLines{}
	sync, err := b.startWatchOut(ctx, lines, local, "deploy/demo", "--dest", "/app", "--restart")
	if err != nil {
		return err
	}
	defer sync.stop()
	fwd, err := b.devsshForward(ctx, pod.Name, "18089")
	if err != nil {
		return err
	}
	defer fwd()
	if err := waitAnswer(ctx, "http://127.0.0.1:18089", "5", time.Minute); err != nil {
		return fmt.Errorf("in place, before the edits: %w", err)
	}

	for i := range *restart {
		e := loopEdits[i%len(loopEdits)]
		var r loopRound
		// Basic loop.
		start := time.Now()
		if err := os.WriteFile(demo, edited(e.op), 0o644); err != nil {
			return err
		}
		if digest, r.build, r.push, err = build(fmt.Sprintf("edit-%d", i)); err != nil {
			return err
		}
		t := time.Now()
		if _, err := b.kubectl(ctx, nil, "-n", b.ns, "set", "image", "deploy/"+loopDeploy, "app="+image+"@"+digest); err != nil {
			return err
		}
		name, err := b.newPodReady(ctx, image+"@"+digest, 3*time.Minute)
		if err != nil {
			return fmt.Errorf("basic loop, edit %d: %w", i, err)
		}
		r.rollout = time.Since(t)
		t = time.Now()
		if err := b.answerThroughPortForward(ctx, name, e.want); err != nil {
			return fmt.Errorf("basic loop, edit %d: %w", i, err)
		}
		r.basicAnswer = time.Since(t)
		b.logf("basic loop %d: %s (build %s, push %s, rollout %s, answer %s)", i, ms(time.Since(start)), ms(r.build), ms(r.push), ms(r.rollout), ms(r.basicAnswer))

		// In place.
		mark := lines.len()
		start = time.Now()
		if err := os.WriteFile(localDemo, edited(e.op), 0o644); err != nil {
			return err
		}
		synced, err := lines.wait(ctx, mark, "synced ", time.Minute)
		if err != nil {
			return fmt.Errorf("in place, edit %d: %w (devsync: %s)", i, err, sync.stderr.String())
		}
		restarted, err := lines.wait(ctx, mark, "restarted the app", time.Minute)
		if err != nil {
			return fmt.Errorf("in place, edit %d: %w (devsync: %s)", i, err, sync.stderr.String())
		}
		if err := waitAnswer(ctx, "http://127.0.0.1:18089", e.want, time.Minute); err != nil {
			return fmt.Errorf("in place, edit %d: %w", i, err)
		}
		answered := time.Now()
		r.sync, r.restart, r.inplaceAnswer = synced.Sub(start), restarted.Sub(synced), answered.Sub(restarted)
		b.logf("in place %d: %s (sync %s, restart %s, answer %s)", i, ms(answered.Sub(start)), ms(r.sync), ms(r.restart), ms(r.inplaceAnswer))
		res.loop = append(res.loop, r)
	}
	return nil
}

// demoBuildArgs are the build arguments of demo-python's Dockerfile: its
// base, the Debian root filesystem with Python that `kdev images build`
// pushes.
func demoBuildArgs() map[string]string {
	return map[string]string{"BASE": testbed.Image("debian-python-base", "bookworm")}
}

// pushRE matches BuildKit's plain progress lines of the push steps, e.g.
// "#9 pushing layers 0.1s done" and "#9 pushing manifest for ... 0.0s done".
var pushRE = regexp.MustCompile(`(?m)^#\d+ pushing [^\n]*?([0-9]+\.[0-9]+)s done$`)

// pushTime sums the push steps' durations in BuildKit's plain progress.
func pushTime(progress string) time.Duration {
	var d time.Duration
	for _, m := range pushRE.FindAllStringSubmatch(progress, -1) {
		if s, err := strconv.ParseFloat(m[1], 64); err == nil {
			d += time.Duration(s * float64(time.Second))
		}
	}
	return d
}

// newPodReady waits until a pod of the loop deployment that runs image is
// Ready and returns its name. It watches the pods directly (not over the
// link): the basic loop's rollout ends when the new pod can answer, not
// when the old one is gone, as `kubectl rollout status` would wait for.
func (b *bench) newPodReady(ctx context.Context, image string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		pods, err := b.env.Client.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + loopDeploy})
		if err != nil {
			return "", err
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image == image && podReady(&p) {
				return p.Name, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no pod of deploy/%s running %s was Ready within %s", loopDeploy, image, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// answerThroughPortForward forwards a local port to pod name with
// `kubectl port-forward` (over the link) and waits for want.
func (b *bench) answerThroughPortForward(ctx context.Context, name, want string) error {
	cmd := exec.Command(b.env.Kubectl, "-n", b.ns, "port-forward", "pod/"+name, ":8080")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var errBuf framework.LockedBuffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	port := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+)`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				port <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case p := <-port:
		return waitAnswer(ctx, "http://127.0.0.1:"+p, want, time.Minute)
	case <-time.After(time.Minute):
		return fmt.Errorf("kubectl port-forward pod/%s did not start: %s", name, errBuf.String())
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitAnswer polls base/add/2/3 until it answers want.
func waitAnswer(ctx context.Context, base, want string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last string
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		req, _ := http.NewRequestWithContext(c, http.MethodGet, base+"/add/2/3", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == want {
				cancel()
				return nil
			}
		} else {
			last = err.Error()
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/add/2/3 did not answer %s within %s (last: %s)", base, want, within, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// devsshForward runs `kubectl devssh -N -L port:localhost:8080` to pod and
// returns its stop.
func (b *bench) devsshForward(ctx context.Context, pod, port string) (func(), error) {
	pf := exec.CommandContext(ctx, b.env.Kubectl, "devssh", "-n", b.ns, "pod/"+pod, "-N", "-L", port+":localhost:8080")
	var out framework.LockedBuffer
	pf.Stdout, pf.Stderr = &out, &out
	if err := pf.Start(); err != nil {
		return nil, err
	}
	return func() { _ = pf.Process.Kill(); _ = pf.Wait() }, nil
}

// stampedLines records each complete line written to it with the time it
// arrived.
type stampedLines struct {
	mu    sync.Mutex
	buf   []byte
	lines []stampedLine
}

type stampedLine struct {
	at   time.Time
	text string
}

func (s *stampedLines) Write(p []byte) (int, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		s.lines = append(s.lines, stampedLine{at: now, text: string(s.buf[:i])})
		s.buf = s.buf[i+1:]
	}
	return len(p), nil
}

func (s *stampedLines) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// wait returns the arrival time of the first line from index from on that
// starts with prefix.
func (s *stampedLines) wait(ctx context.Context, from int, prefix string, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		for _, l := range s.lines[min(from, len(s.lines)):] {
			if strings.HasPrefix(l.text, prefix) {
				s.mu.Unlock()
				return l.at, nil
			}
		}
		s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("devsync printed no line starting with %q within %s", prefix, within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(target, 0o755)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, fi.Mode().Perm())
		}
		return nil
	})
}
