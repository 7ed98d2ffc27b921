package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"
)

// documentedRole is the first YAML block of docs/devpatch.md that defines the
// Role platform engineers are told to grant: the test proves the docs.
func documentedRole(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.Root, "docs", "devpatch.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		if strings.Contains(block[1], "kind: Role\n") {
			return block[1]
		}
	}
	t.Fatal("docs/devpatch.md has no yaml block with kind: Role")
	return ""
}

// TestDevpatchDocumentedRBAC runs devpatch as a user who has only the Role
// from docs/devpatch.md (through impersonation, so RBAC really decides), and
// as one who lacks the patch permission.
func TestDevpatchDocumentedRBAC(t *testing.T) {
	ns := env.Namespace(t)
	env.CreateDeployment(t, ns, env.DemoDeployment("demo", env.Image("demo-go", "latest")))
	role := strings.ReplaceAll(documentedRole(t), "jane@example.com", "jane")
	env.KubectlT(t, "-n", ns, "apply", "--server-side", "--field-manager=e2e", "-f", writeFile(t, "role.yaml", role))

	// jane has the documented Role: patch and remove both work.
	devpatchOK(t, ns, "deploy/demo", "--as", "jane")
	if p := agentPod(t, ns, "demo"); p.Name == "" {
		t.Fatal("no pod with a ready agent after devpatch as jane")
	}
	devpatchOK(t, ns, "--remove", "deploy/demo", "--as", "jane")

	// bob may read but not patch: one line that names the verb and resource.
	env.KubectlT(t, "-n", ns, "create", "role", "read-only", "--verb=get,list", "--resource=deployments.apps,pods,secrets")
	env.KubectlT(t, "-n", ns, "create", "rolebinding", "bob-read-only", "--role=read-only", "--user=bob")
	r := devpatch(t, ns, "deploy/demo", "--as", "bob")
	if r.ExitCode == 0 {
		t.Fatal("devpatch as bob (no patch permission) succeeded")
	}
	var errLines []string
	for _, line := range strings.Split(r.Stderr, "\n") {
		if strings.HasPrefix(line, "error:") {
			errLines = append(errLines, line)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], "forbidden") || !strings.Contains(errLines[0], `"bob"`) ||
		!strings.Contains(errLines[0], "docs/devpatch.md") {
		t.Fatalf("devpatch without permission should fail with one error line naming the user, what is forbidden and the Role to grant; stderr:\n%s", r.Stderr)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// clientSideManifest is a user's manifest applied with client-side
// `kubectl apply` (the last-applied-configuration annotation, three-way
// merges), as Helm 3 and Argo CD's default sync do.
func clientSideManifest(image, greeting string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
  labels: {app: demo, kubectl-dev.io/e2e-app: demo}
spec:
  replicas: 1
  selector:
    matchLabels: {app: demo, kubectl-dev.io/e2e-app: demo}
  template:
    metadata:
      labels: {app: demo, kubectl-dev.io/e2e-app: demo}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: ` + image + `
        env:
        - {name: GREETING, value: ` + greeting + `}
        readinessProbe:
          httpGet: {path: /add/2/3, port: 8080}
          periodSeconds: 1
`
}

// TestDevpatchSurvivesClientSideApply: a user re-applying their manifest with
// client-side apply keeps the agent; --remove then leaves exactly what the
// user's manifest says.
func TestDevpatchSurvivesClientSideApply(t *testing.T) {
	ns := env.Namespace(t)
	image := env.Image("demo-go", "latest")
	env.KubectlT(t, "-n", ns, "apply", "-f", writeFile(t, "v1.yaml", clientSideManifest(image, "one")))
	env.WaitRollout(t, ns, "demo", 3*time.Minute)
	devpatchOK(t, ns, "deploy/demo")

	env.KubectlT(t, "-n", ns, "apply", "-f", writeFile(t, "v2.yaml", clientSideManifest(image, "two")))
	env.WaitRollout(t, ns, "demo", 3*time.Minute)
	d := getDeployment(t, ns, "demo")
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 2 || spec.Containers[1].Name != "devagent" || !ptr.Deref(spec.ShareProcessNamespace, false) {
		t.Fatalf("after the user's client-side apply the agent is gone: containers %v, shareProcessNamespace %v", spec.Containers, spec.ShareProcessNamespace)
	}
	if got := spec.Containers[0].Env[0].Value; got != "two" {
		t.Fatalf("the user's change did not land: GREETING=%q", got)
	}

	devpatchOK(t, ns, "--remove", "deploy/demo")
	// What is left equals a deployment created from the user's manifest alone.
	ref := env.Namespace(t)
	env.KubectlT(t, "-n", ref, "apply", "-f", writeFile(t, "v2.yaml", clientSideManifest(image, "two")))
	if got, want := rawSpec(t, ns, "demo"), rawSpec(t, ref, "demo"); got != want {
		t.Fatalf("after --remove the spec differs from the user's manifest:\n got: %s\nwant: %s", got, want)
	}
}
