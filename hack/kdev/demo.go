package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

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

	// Inject the agent, look at the pod, and take the agent away again: the
	// spec is restored exactly, because server-side apply's field ownership
	// says which fields devpatch added.
	containers := []string{"-n", "demo", "get", "deploy/demo", "-o", "jsonpath=containers: {.spec.template.spec.containers[*].name}{\"\\n\"}"}
	for _, step := range [][]string{
		{"devpatch", "deploy/demo", "-n", "demo"},
		containers,
		// A command in the app's view of the pod, over SSH through port-forward.
		{"devssh", "-n", "demo", "deploy/demo", "--", "sh", "-c", "id; pwd; ls e2e_k8s"},
		{"devpatch", "--remove", "deploy/demo", "-n", "demo"},
		containers,
	} {
		if err := run("", step...); err != nil {
			return err
		}
	}
	fmt.Printf(`
The demo app answers /add/2/3 with %s. Next:
  export KUBECONFIG=%s PATH=%s:%s:$PATH KUBECTL_DEV_AGENT_IMAGE=%s
  kubectl devpatch -n demo deploy/demo
  kubectl devssh -n demo deploy/demo          # a shell in the app's view of the pod
`, answer, testbed.Kubeconfig(), testbed.BinDir(), bin, os.Getenv("KUBECTL_DEV_AGENT_IMAGE"))
	return nil
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
