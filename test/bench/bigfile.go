//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	cgportforward "k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/kubectl-dev/kubectl-dev/pkg/portforward"
	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

func (b *bench) bigFile(ctx context.Context, pod *corev1.Pod, res *results) error {
	local, err := os.MkdirTemp("", "bench-big-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(local)
	big, empty := filepath.Join(local, "big"), filepath.Join(local, "empty")
	for _, dir := range []string{big, empty} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
	}
	path := filepath.Join(big, "big.bin")
	n, err := writeRandomFile(path, *bigMB)
	if err != nil {
		return err
	}
	res.bigMB, res.bigRounds = *bigMB, *rounds
	dialer, err := b.podDialer(pod.Name)
	if err != nil {
		return err
	}
	stock, err := b.stockDialer(pod.Name)
	if err != nil {
		return err
	}
	// devsync of one folder into a new destination each round (the same
	// file already there would not be sent again).
	devsync := func(dir, dest string) (time.Duration, error) {
		defer func() {
			_, _ = b.kubectl(context.Background(), nil, "exec", "-n", b.ns, pod.Name, "-c", "app", "--", "rm", "-rf", dest)
		}()
		agent0, agentErr := b.agentCPU(ctx, pod.Name)
		start := time.Now()
		cmd := exec.CommandContext(ctx, b.env.Kubectl, "devsync", "-n", b.ns, dir, "deploy/demo", "--dest", dest, "--once", "-q")
		var e bytes.Buffer
		cmd.Stderr = &e
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%w: %s", err, e.String())
		}
		d := time.Since(start)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			// The largest child: kubectl-devsync itself.
			res.bigClientRSS = max(res.bigClientRSS, ru.Maxrss*1024)
		}
		// Where the time goes: the CPU of the client and of the agent's
		// container (and how long its CPU limit throttled it).
		agent1, err := b.agentCPU(ctx, pod.Name)
		if err = errors.Join(agentErr, err); err != nil {
			b.logf("big file: the agent's CPU is not known: %v", err)
		} else {
			b.logf("big file, devsync of %s: %s; CPU: client user %s sys %s, agent container %s, throttled %s",
				filepath.Base(dir), d.Round(time.Millisecond), cmd.ProcessState.UserTime().Round(time.Millisecond), cmd.ProcessState.SystemTime().Round(time.Millisecond),
				(agent1["usage"] - agent0["usage"]).Round(time.Millisecond), (agent1["throttled"] - agent0["throttled"]).Round(time.Millisecond))
		}
		return d, nil
	}
	var dDevsync, dEmpty, dForward, dStock, dExec []time.Duration
	methods := []struct {
		name string
		run  func(r int) (time.Duration, error)
		ds   *[]time.Duration
	}{
		{"devsync --once", func(r int) (time.Duration, error) {
			return devsync(big, fmt.Sprintf("/srv/big-r%d", r))
		}, &dDevsync},
		// devsync's fixed cost: process start, API lookups, port-forward,
		// SSH handshake, an empty comparison.
		{"devsync --once, empty folder", func(r int) (time.Duration, error) {
			return devsync(empty, fmt.Sprintf("/srv/big-empty-r%d", r))
		}, &dEmpty},
		{"port-forward stream", func(int) (time.Duration, error) {
			return b.forwardStream(ctx, pod.Name, dialer, path, n)
		}, &dForward},
		{"port-forward stream, client-go's dialer", func(int) (time.Duration, error) {
			return b.forwardStream(ctx, pod.Name, stock, path, n)
		}, &dStock},
		{"kubectl exec -i stream", func(int) (time.Duration, error) {
			in, err := os.Open(path)
			if err != nil {
				return 0, err
			}
			defer in.Close()
			start := time.Now()
			if _, err := b.kubectl(ctx, in, "exec", "-i", "-n", b.ns, pod.Name, "-c", "app", "--", "sh", "-c", "cat > /dev/null"); err != nil {
				return 0, err
			}
			return time.Since(start), nil
		}, &dExec},
	}
	for r := range *rounds {
		for i := range methods {
			m := methods[(i+r)%len(methods)]
			settle()
			d, err := m.run(r)
			if err != nil {
				return fmt.Errorf("big file, %s: %w", m.name, err)
			}
			rate := fmt.Sprintf(" (%.0f MB/s)", mbps(n, d))
			if m.ds == &dEmpty {
				rate = ""
			}
			b.logf("big file, %s: %s%s", m.name, d.Round(time.Millisecond), rate)
			*m.ds = append(*m.ds, d)
		}
	}
	res.bigDevsync, res.bigEmpty, res.bigForward, res.bigStock, res.bigStream = pct(dDevsync, 50), pct(dEmpty, 50), pct(dForward, 50), pct(dStock, 50), pct(dExec, 50)
	res.bigRuns = fmt.Sprintf("devsync %s; devsync of an empty folder %s; port-forward stream %s; the same through client-go's dialer %s; exec stream %s", msList(dDevsync), msList(dEmpty), msList(dForward), msList(dStock), msList(dExec))
	if out, err := b.kubectl(ctx, nil, "exec", "-n", b.ns, pod.Name, "-c", "devagent", "--", "sh", "-c", `for p in $(pidof devagent); do grep VmHWM /proc/$p/status; done | sort -k2 -n | tail -1`); err == nil {
		res.agentHWM = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "VmHWM:"))
	}
	b.logf("big file, medians of %d: devsync %s (empty folder %s), port-forward stream %s (devsync at %.0f%% of it), exec stream %s; client max RSS %d MiB, agent VmHWM %s",
		*rounds, res.bigDevsync.Round(time.Millisecond), res.bigEmpty.Round(time.Millisecond), res.bigForward.Round(time.Millisecond), 100*res.bigForward.Seconds()/res.bigDevsync.Seconds(),
		res.bigStream.Round(time.Millisecond), res.bigClientRSS>>20, res.agentHWM)
	return nil
}

// agentCPU reads the CPU used by the agent container's cgroup and the time
// its limit throttled it: "usage" and "throttled", from cpu.stat (cgroup
// v2) or from cpuacct.usage and cpu.stat (v1).
func (b *bench) agentCPU(ctx context.Context, pod string) (map[string]time.Duration, error) {
	out, err := b.kubectl(ctx, nil, "exec", "-n", b.ns, pod, "-c", "devagent", "--", "sh", "-c",
		"cat /sys/fs/cgroup/cpu.stat 2>/dev/null || { cat /sys/fs/cgroup/cpu/cpu.stat && echo usage_ns $(cat /sys/fs/cgroup/cpuacct/cpuacct.usage); }")
	if err != nil {
		return nil, err
	}
	m := map[string]time.Duration{}
	for _, l := range strings.Split(out, "\n") {
		var k string
		var v int64
		if _, err := fmt.Sscan(l, &k, &v); err != nil {
			continue
		}
		switch k {
		case "usage_usec":
			m["usage"] = time.Duration(v) * time.Microsecond
		case "throttled_usec":
			m["throttled"] = time.Duration(v) * time.Microsecond
		case "usage_ns":
			m["usage"] = time.Duration(v)
		case "throttled_time":
			m["throttled"] = time.Duration(v)
		}
	}
	if _, ok := m["usage"]; !ok {
		return nil, fmt.Errorf("no CPU usage in the agent's cgroup: %s", out)
	}
	return m, nil
}

// writeRandomFile writes mb MiB of random bytes to path.
func writeRandomFile(path string, mb int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	for range mb {
		_, _ = rand.Read(buf)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return 0, err
		}
	}
	return int64(mb) << 20, f.Close()
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// podDialer is a port-forward dialer for the pod, built as devsync and
// kubectl port-forward build theirs.
// stockDialer is client-go's dialer as kubectl port-forward builds it
// (SPDY over WebSocket, SPDY when the upgrade fails), without
// pkg/portforward's coalescing of the SPDY framer's writes.
func (b *bench) stockDialer(pod string) (httpstream.Dialer, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", b.env.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	u := portforward.URL(cs.CoreV1().RESTClient(), b.ns, pod)
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	tunneling, err := cgportforward.NewSPDYOverWebsocketDialer(u, cfg)
	if err != nil {
		return nil, err
	}
	return cgportforward.NewFallbackDialer(tunneling, spdyDialer, portforward.ShouldFallback), nil
}

// sinkPort is the port of the TCP sink in the app container (the agent
// has 2222, the demo 8080).
const sinkPort = 17071

// sinkScript accepts one connection on 127.0.0.1:PORT, reads exactly N
// bytes from it, answers "ok" and exits; it gives up after 2 minutes idle.
const sinkScript = `import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(1)
s.settimeout(120)
print("listening", flush=True)
c, _ = s.accept()
c.settimeout(120)
buf = bytearray(1 << 20)
left = n
while left:
    k = c.recv_into(buf, min(left, len(buf)))
    if not k:
        sys.exit("sink: the stream ended %d bytes short" % left)
    left -= k
c.sendall(b"ok\n")
c.close()
`

// forwardStream writes the file at path (n bytes) through a new
// port-forward connection to a sink in the app container and times it
// from the start of the dial until the sink's reply that it has every
// byte.
func (b *bench) forwardStream(ctx context.Context, pod string, dialer httpstream.Dialer, path string, n int64) (time.Duration, error) {
	wait, err := b.startSink(ctx, pod, n)
	if err != nil {
		return 0, err
	}
	in, err := os.Open(path)
	if err != nil {
		_ = wait(true)
		return 0, err
	}
	defer in.Close()
	start := time.Now()
	d, err := func() (time.Duration, error) {
		conn, err := portforward.Dial(dialer, portforward.Target{Namespace: b.ns, Pod: pod, Port: sinkPort})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		if _, err := io.Copy(conn, in); err != nil {
			return 0, fmt.Errorf("writing to the sink: %w", err)
		}
		reply := make([]byte, 3)
		if _, err := io.ReadFull(conn, reply); err != nil {
			return 0, fmt.Errorf("reading the sink's reply: %w", err)
		}
		if string(reply) != "ok\n" {
			return 0, fmt.Errorf("the sink replied %q", reply)
		}
		return time.Since(start), nil
	}()
	if werr := wait(err != nil); err == nil && werr != nil {
		err = werr
	}
	return d, err
}

// startSink runs sinkScript in the app container and waits until it
// listens. wait waits for it to exit (kill: stop it first).
func (b *bench) startSink(ctx context.Context, pod string, n int64) (wait func(kill bool) error, err error) {
	cmd := exec.CommandContext(ctx, b.env.Kubectl, "exec", "-n", b.ns, pod, "-c", "app", "--",
		"python3", "-c", sinkScript, fmt.Sprint(sinkPort), fmt.Sprint(n))
	out := &framework.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	wait = func(kill bool) error {
		if kill {
			_ = cmd.Process.Kill()
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-done
		}
		if !cmd.ProcessState.Success() && !kill {
			return fmt.Errorf("sink: %s: %s", cmd.ProcessState, out.String())
		}
		return nil
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "listening") {
		select {
		case <-done:
			return nil, fmt.Errorf("the sink exited: %s: %s", cmd.ProcessState, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = wait(true)
			return nil, fmt.Errorf("the sink does not listen after a minute: %s", out.String())
		}
	}
	return wait, nil
}
