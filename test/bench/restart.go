//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

// restarts: edit demo.py, wait until the restarted app serves the new code.
func (b *bench) restarts(ctx context.Context, pod *corev1.Pod, res *results) error {
	root := b.env.Root
	local, err := os.MkdirTemp("", "bench-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(local)
	src, err := os.ReadFile(filepath.Join(root, "hack/images/demo-python/e2e_k8s/demo.py"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(local, "e2e_k8s"), 0o755); err != nil {
		return err
	}
	for _, f := range []string{"__init__.py"} {
		if b, err := os.ReadFile(filepath.Join(root, "hack/images/demo-python/e2e_k8s", f)); err == nil {
			_ = os.WriteFile(filepath.Join(local, "e2e_k8s", f), b, 0o644)
		}
	}
	demo := filepath.Join(local, "e2e_k8s/demo.py")
	if err := os.WriteFile(demo, src, 0o644); err != nil {
		return err
	}
	stop, err := b.startDevsync(ctx, local, "deploy/demo", "--dest", "/app", "--restart")
	if err != nil {
		return err
	}
	defer stop()
	// devssh -L (over the API server's port-forward): kubectl port-forward
	// ends at the first connection that the restarting app refuses.
	pf := exec.Command(b.env.Kubectl, "devssh", "-n", b.ns, "pod/"+pod.Name, "-N", "-L", "18089:localhost:8080")
	var pfOut framework.LockedBuffer
	pf.Stdout, pf.Stderr = &pfOut, &pfOut
	if err := pf.Start(); err != nil {
		return err
	}
	defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
	var lastErr error
	get := func() string {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(c, http.MethodGet, "http://127.0.0.1:18089/add/2/3", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			lastErr = err
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		lastErr = fmt.Errorf("%s: %s", resp.Status, body)
		return strings.TrimSpace(string(body))
	}
	for deadline := time.Now().Add(time.Minute); get() != "5"; {
		if time.Now().After(deadline) {
			return fmt.Errorf("the demo does not answer 5 through the port-forward: %v (port-forward: %s)", lastErr, pfOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ops := []struct{ op, want string }{{"*", "6"}, {"-", "-1"}, {"+", "5"}}
	for i := range *restart {
		o := ops[i%len(ops)]
		code := strings.Replace(string(src), "Response(str(x + y))", "Response(str(x "+o.op+" y))", 1)
		// Each edit changes the size: Python's .pyc check compares the
		// source's size and mtime in whole seconds, and these edits come
		// faster than one a second.
		code += "\n# edit " + strings.Repeat("#", i+1) + "\n"
		start := time.Now()
		if err := os.WriteFile(demo, []byte(code), 0o644); err != nil {
			return err
		}
		for get() != o.want {
			if time.Since(start) > time.Minute {
				return fmt.Errorf("restart %d: the app did not answer %s within a minute", i, o.want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		res.restart = append(res.restart, time.Since(start))
		b.logf("restart %d: %s", i, time.Since(start).Round(time.Millisecond))
	}
	p, err := b.env.Client.CoreV1().Pods(b.ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, st := range p.Status.ContainerStatuses {
		if st.Name == "app" {
			res.restartCount = st.RestartCount
		}
	}
	return nil
}
