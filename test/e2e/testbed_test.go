package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// The first tests prove the bed itself: the behaviours every plugin relies on.

// sharedPIDDemo deploys demo-python with a busybox sidecar in one process
// namespace and returns the namespace.
func sharedPIDDemo(t *testing.T) string {
	ns := env.Namespace(t)
	d := env.DemoDeployment("demo", env.Image("demo-python", "latest"))
	d.Spec.Template.Spec.ShareProcessNamespace = ptr.To(true)
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{
		Name:    "sidecar",
		Image:   env.AgentImage(),
		Command: []string{"/bin/sleep", "infinity"},
	})
	env.CreateDeployment(t, ns, d)
	return ns
}

func TestSharedProcessNamespaceAndExec(t *testing.T) {
	ns := sharedPIDDemo(t)
	// exec works, and the sidecar sees the app's python process: the PID
	// namespace really is shared.
	out := env.KubectlT(t, "-n", ns, "exec", "deploy/demo", "-c", "sidecar", "--", "ps", "-o", "pid,args")
	if !strings.Contains(out, "e2e_k8s.demo") {
		t.Fatalf("the sidecar does not see the app's process; ps printed:\n%s", out)
	}
	// A remote exit code comes back through exec.
	r, err := env.Run(context.Background(), nil, env.Kubectl, "-n", ns, "exec", "deploy/demo", "-c", "sidecar", "--", "sh", "-c", "exit 7")
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode != 7 {
		t.Fatalf("exit code through kubectl exec = %d, want 7 (stderr: %s)", r.ExitCode, r.Stderr)
	}
}

func TestPortForwardReachesDemo(t *testing.T) {
	ns := env.Namespace(t)
	env.CreateDeployment(t, ns, env.DemoDeployment("demo", env.Image("demo-go", "latest")))
	port := portForward(t, ns, "deploy/demo", demoPort)
	body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%s/add/2/3", port))
	if body != "5" {
		t.Fatalf("/add/2/3 through port-forward = %q, want %q", body, "5")
	}
}

func TestPluginDiscovery(t *testing.T) {
	out := env.KubectlT(t, "plugin", "list")
	for _, p := range []string{"kubectl-devpatch", "kubectl-devssh", "kubectl-devsync"} {
		if !strings.Contains(out, p) {
			t.Errorf("kubectl plugin list does not show %s:\n%s", p, out)
		}
	}
	for _, p := range []string{"devpatch", "devssh", "devsync"} {
		help := env.KubectlT(t, p, "--help")
		if !strings.Contains(help, "kubectl "+p) || !strings.Contains(help, "--kubeconfig") || !strings.Contains(help, "--namespace") {
			t.Errorf("kubectl %s --help does not read like a kubectl command:\n%s", p, help)
		}
		version := env.KubectlT(t, p, "--version")
		if !strings.Contains(version, env.Version) {
			t.Errorf("kubectl %s --version = %q, want it to name %s", p, version, env.Version)
		}
	}
}

const demoPort = "8080" // framework.DemoPort as a port-forward argument

var forwardingRE = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

// portForward runs `kubectl port-forward` to remotePort of target on a
// random local port and returns that port; it stops when the test ends.
func portForward(t *testing.T, ns, target, remotePort string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, env.Kubectl, "-n", ns, "port-forward", target, ":"+remotePort)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := forwardingRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		close(found)
	}()
	select {
	case port, ok := <-found:
		if !ok {
			t.Fatalf("kubectl port-forward exited before forwarding: %s", stderr.String())
		}
		return port
	case <-time.After(time.Minute):
		t.Fatalf("kubectl port-forward did not start forwarding within a minute: %s", stderr.String())
	}
	return ""
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	var body string
	env.WaitFor(t, "GET "+url, 30*time.Second, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err
		}
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("%s: %s", resp.Status, b)
		}
		body = strings.TrimSpace(string(b))
		return true, nil
	})
	return body
}

// TestWorkloadCompletion: each plugin completes TYPE/NAME from the cluster,
// as `kubectl <plugin> <TAB>` asks it through cobra's __complete.
func TestWorkloadCompletion(t *testing.T) {
	ns := env.Namespace(t)
	env.CreateDeployment(t, ns, env.DemoDeployment("demo", env.Image("demo-go", "latest")))
	for plugin, args := range map[string][]string{
		"kubectl-devpatch": {"deploy/"},
		"kubectl-devssh":   {"deploy/"},
		"kubectl-devsync":  {"./src", "deploy/"},
	} {
		full := append([]string{"__complete", "-n", ns}, args...)
		r, err := env.Run(context.Background(), nil, plugin, full...)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("%s %s: %v %d %s", plugin, strings.Join(full, " "), err, r.ExitCode, r.Stderr)
		}
		if !strings.Contains(r.Stdout, "deploy/demo\n") {
			t.Errorf("%s does not complete deploy/ to deploy/demo:\n%s", plugin, r.Stdout)
		}
	}
}
