//go:build linux

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// devssh times a remote command's round trip and a stream on stdin, each
// against kubectl exec on the same pod, interleaved (medians). devssh's
// stdin is one SSH channel: its 2 MiB window (see the limits text) bounds
// the stream.
func (b *bench) devssh(ctx context.Context, pod *corev1.Pod, res *results) error {
	var ssh, ex []time.Duration
	timeit := func(stdin func() (io.ReadCloser, error), args ...string) (time.Duration, error) {
		var in io.ReadCloser
		if stdin != nil {
			var err error
			if in, err = stdin(); err != nil {
				return 0, err
			}
			defer in.Close()
		}
		start := time.Now()
		var r io.Reader
		if in != nil {
			r = in
		}
		_, err := b.kubectl(ctx, r, args...)
		return time.Since(start), err
	}
	for range 7 {
		d, err := timeit(nil, "devssh", "-n", b.ns, "deploy/demo", "--", "true")
		if err != nil {
			return err
		}
		ssh = append(ssh, d)
		if d, err = timeit(nil, "exec", "-n", b.ns, "deploy/demo", "-c", "app", "--", "true"); err != nil {
			return err
		}
		ex = append(ex, d)
	}
	res.sshTrue, res.execTrue = pct(ssh, 50), pct(ex, 50)
	dir, err := os.MkdirTemp("", "bench-stdin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res.stdinMB = min(100, max(10, *bigMB/2))
	file := filepath.Join(dir, "stdin.bin")
	if _, err := writeRandomFile(file, res.stdinMB); err != nil {
		return err
	}
	open := func() (io.ReadCloser, error) { return os.Open(file) }
	ssh, ex = nil, nil
	for range 3 {
		d, err := timeit(open, "devssh", "-n", b.ns, "deploy/demo", "--", "sh", "-c", "cat > /dev/null")
		if err != nil {
			return err
		}
		ssh = append(ssh, d)
		if d, err = timeit(open, "exec", "-i", "-n", b.ns, pod.Name, "-c", "app", "--", "sh", "-c", "cat > /dev/null"); err != nil {
			return err
		}
		ex = append(ex, d)
	}
	res.sshStdin, res.execStdin = pct(ssh, 50), pct(ex, 50)
	b.logf("devssh: -- true %s vs exec %s; %d MB stdin %s vs exec %s", res.sshTrue, res.execTrue, res.stdinMB, res.sshStdin, res.execStdin)
	return nil
}
