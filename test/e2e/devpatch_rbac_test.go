package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
