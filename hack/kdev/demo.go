//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-dev/kubectl-dev/hack/internal/images"
	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

func init() { register("demo", runDemo) }

const demoManifest = `apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
  namespace: demo
  labels: {app: demo}
spec:
  replicas: 1
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers:
      - name: app
        image: %s
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /add/2/3, port: 8080}
          periodSeconds: 1
`

// runDemo tells the project's story on the local cluster, printing each
// command as a user would type it. `make demo` starts the cluster and pushes
// the images first.
func runDemo(ctx context.Context, args []string) error {
	kubectl := testbed.Kubectl()
	os.Setenv("KUBECONFIG", testbed.Kubeconfig())
	// The plugins are found as a user's kubectl finds them: on PATH, beside kdev.
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	bin := filepath.Dir(exe)
	os.Setenv("PATH", bin+string(os.PathListSeparator)+testbed.BinDir()+string(os.PathListSeparator)+os.Getenv("PATH"))
	os.Setenv("KUBECTL_DEV_AGENT_IMAGE", testbed.Image("devagent", testbed.Getenv("KDEV_VERSION", "v0.0.0-dev")))
	run := func(stdin string, args ...string) error {
		fmt.Printf("$ kubectl %s\n", shellQuote(args))
		cmd := exec.CommandContext(ctx, kubectl, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
		}
		return nil
	}
	// The pipeline starts where a user's does: the app's Dockerfile, built
	// with BuildKit, rootless and daemonless, and pushed to the registry
	// (`make images` built it already: this run comes from BuildKit's cache).
	if err := demoBuild(ctx, filepath.Join(bin, "kdev")); err != nil {
		return err
	}
	manifest := fmt.Sprintf(demoManifest, testbed.Image("demo-python", "latest"))
	if err := run(manifest, "apply", "--server-side", "--field-manager=kdev-demo", "-f", "-"); err != nil {
		return err
	}
	if err := run("", "-n", "demo", "rollout", "status", "deploy/demo", "--timeout=3m"); err != nil {
		return err
	}
	fmt.Println("$ kubectl -n demo port-forward deploy/demo :8080 &  curl http://127.0.0.1:PORT/add/2/3")
	answer, err := demoAdd(ctx, kubectl)
	if err != nil {
		return err
	}
	fmt.Println(answer)

	// The story: inject the agent with the supervisor, sync a local copy of
	// the app with --restart, edit it, see the answer change without a
	// container restart, and take everything away again: the spec is
	// restored exactly, because server-side apply's field ownership says
	// which fields devpatch added.
	containers := []string{"-n", "demo", "get", "deploy/demo", "-o", "jsonpath=containers: {.spec.template.spec.containers[*].name}{\"\\n\"}"}
	for _, step := range [][]string{
		{"devpatch", "deploy/demo", "-n", "demo", "--supervise"},
		containers,
		// A command in the app's view of the pod, over SSH through port-forward.
		{"devssh", "-n", "demo", "deploy/demo", "--", "sh", "-c", "id; pwd; ls e2e_k8s"},
	} {
		if err := run("", step...); err != nil {
			return err
		}
	}
	after, err := demoSync(ctx, kubectl)
	if err != nil {
		return err
	}
	for _, step := range [][]string{
		{"devpatch", "--remove", "deploy/demo", "-n", "demo"},
		containers,
	} {
		if err := run("", step...); err != nil {
			return err
		}
	}
	fmt.Printf(`
The demo app answered /add/2/3 with %s, and %s after the edit, without a container restart. Next:
  export KUBECONFIG=%s PATH=%s:%s:$PATH KUBECTL_DEV_AGENT_IMAGE=%s
  kubectl devpatch -n demo deploy/demo --supervise
  kubectl devsync -n demo ./hack/images/demo-python deploy/demo --dest /app --restart
  kubectl devssh -n demo deploy/demo          # a shell in the app's view of the pod
`, answer, after, testbed.Kubeconfig(), testbed.BinDir(), bin, os.Getenv("KUBECTL_DEV_AGENT_IMAGE"))
	return nil
}

// demoBuild runs `kdev build` of the demo app's Dockerfile, as `kdev images
// build` does, showing BuildKit's progress.
func demoBuild(ctx context.Context, kdev string) error {
	args, err := images.KdevBuildArgs(ctx, io.Discard, "demo-python", "latest")
	if err != nil {
		return err
	}
	root, err := images.RepoRoot()
	if err != nil {
		return err
	}
	fmt.Printf("$ kdev build %s\n", shellQuote(args))
	cmd := exec.CommandContext(ctx, kdev, append([]string{"build"}, args...)...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kdev build %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// demoSync copies the demo's source into a temporary folder, runs kubectl
// devsync --restart on it, edits demo.py so that add multiplies, and waits
// for /add/2/3 to answer 6 (through devssh -L, over a port-forward). It
// returns the new answer.
func demoSync(ctx context.Context, kubectl string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	src, err := demoSource()
	if err != nil {
		return "", err
	}
	local, err := os.MkdirTemp("", "kdev-demo-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(local)
	old := time.Now().Add(-time.Hour) // a checkout from a while ago
	for _, f := range []string{"__init__.py", "demo.py"} {
		b, err := os.ReadFile(filepath.Join(src, "e2e_k8s", f))
		if err != nil {
			return "", err
		}
		p := filepath.Join(local, "e2e_k8s", f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", err
		}
		_ = os.Chtimes(p, old, old)
	}
	restarts := func() string {
		out, _ := exec.CommandContext(ctx, kubectl, "-n", "demo", "get", "pods", "-l", "app=demo", "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}: app restarts {.status.containerStatuses[?(@.name=="app")].restartCount}{"\n"}{end}`).Output()
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if name, rest, ok := strings.Cut(l, " :"); ok { // not being deleted
				lines = append(lines, "pod/"+name+":"+rest)
			}
		}
		return strings.Join(lines, "\n")
	}
	sync := []string{"devsync", "-n", "demo", local, "deploy/demo", "--dest", "/app", "--restart"}
	fmt.Printf("$ kubectl %s &\n", shellQuote(sync))
	ds := exec.CommandContext(ctx, kubectl, sync...)
	ds.Stdout, ds.Stderr = os.Stdout, os.Stderr
	if err := ds.Start(); err != nil {
		return "", err
	}
	defer func() { _ = ds.Process.Signal(os.Interrupt); _ = ds.Wait() }()

	port, stop, err := demoForward(ctx, kubectl)
	if err != nil {
		return "", err
	}
	defer stop()
	fmt.Println(restarts())
	get := func(want string) (string, error) {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
		var last string
		for {
			resp, err := client.Get("http://127.0.0.1:" + port + "/add/2/3")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				last = strings.TrimSpace(string(b))
				if resp.StatusCode == http.StatusOK && last == want {
					return last, nil
				}
			}
			select {
			case <-ctx.Done():
				return last, fmt.Errorf("/add/2/3 did not answer %s (last answer %q)", want, last)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	fmt.Printf("$ curl http://127.0.0.1:%s/add/2/3\n", port)
	if _, err := get("5"); err != nil {
		return "", err
	}
	fmt.Println("5")
	demo := filepath.Join(local, "e2e_k8s", "demo.py")
	b, err := os.ReadFile(demo)
	if err != nil {
		return "", err
	}
	fmt.Printf("$ sed -i 's/Response(str(x + y))/Response(str(x * y))/' %s\n", demo)
	edited := strings.Replace(string(b), "Response(str(x + y))", "Response(str(x * y))", 1)
	start := time.Now()
	if err := os.WriteFile(demo, []byte(edited), 0o644); err != nil {
		return "", err
	}
	answer, err := get("6")
	if err != nil {
		return "", err
	}
	fmt.Printf("$ curl http://127.0.0.1:%s/add/2/3\n%s\n", port, answer)
	fmt.Printf("(the new code answered %s after the edit)\n", time.Since(start).Round(time.Millisecond))
	fmt.Println(restarts())
	return answer, nil
}

// demoSource is hack/images/demo-python in the repository kdev runs from.
func demoSource() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "hack", "images", "demo-python")
		if _, err := os.Stat(filepath.Join(p, "e2e_k8s", "demo.py")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("hack/images/demo-python not found above %s: run kdev demo from the repository", dir)
		}
		dir = parent
	}
}

// demoForward runs "kubectl devssh -N -L" to the demo's port 8080: unlike
// kubectl port-forward, it survives the moments when the restarting app
// refuses connections.
func demoForward(ctx context.Context, kubectl string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	args := []string{"devssh", "-n", "demo", "deploy/demo", "-N", "-L", port + ":localhost:8080"}
	fmt.Printf("$ kubectl %s &\n", shellQuote(args))
	// Its stderr is left out: it names every connection that the
	// restarting app refuses.
	cmd := exec.CommandContext(ctx, kubectl, args...)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			return port, stop, nil
		}
		select {
		case <-ctx.Done():
			stop()
			return "", nil, fmt.Errorf("kubectl devssh -L %s did not start listening", port)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

// demoAdd asks the demo for /add/2/3 through a port-forward.
func demoAdd(ctx context.Context, kubectl string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	pf := exec.CommandContext(ctx, kubectl, "-n", "demo", "port-forward", "deploy/demo", ":8080")
	out, err := pf.StdoutPipe()
	if err != nil {
		return "", err
	}
	pf.Stderr = os.Stderr
	if err := pf.Start(); err != nil {
		return "", err
	}
	defer func() { cancel(); _ = pf.Wait() }()
	sc := bufio.NewScanner(out)
	port := ""
	for port == "" && sc.Scan() {
		if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
			port = m[1]
		}
	}
	if port == "" {
		return "", fmt.Errorf("kubectl port-forward deploy/demo did not start forwarding")
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/add/2/3", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET /add/2/3 through the port-forward: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /add/2/3: %s: %s", resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// shellQuote renders args as a user would type them.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$;{}*?\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
