package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestVersionReportsTheAgent: "kubectl devpatch version TYPE/NAME" reads the
// agent version recorded in the workload and, when it is not the plugin's,
// says how to upgrade; devssh and devsync answer the same.
func TestVersionReportsTheAgent(t *testing.T) {
	ns := env.Namespace(t)
	d := env.DemoDeployment("old", env.Image("demo-go", "latest"))
	d.Spec.Replicas = ptr.To[int32](0) // only the pod template matters
	d.Spec.Template.Annotations = map[string]string{
		"devpatch.kubectl-dev.io/mode":            "same-user",
		"devpatch.kubectl-dev.io/agent-version":   "v0.0.1",
		"devpatch.kubectl-dev.io/agent-container": "devagent",
	}
	c := d.Spec.Template.Spec.Containers[0]
	c.Name, c.Image, c.Ports = "devagent", "ghcr.io/kubectl-dev/devagent:v0.0.1", nil
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, c)
	if _, err := env.Client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	r, err := env.Run(context.Background(), nil, env.Kubectl, "devpatch", "version", "deployments/old", "-n", ns)
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("kubectl devpatch version: %v %+v", err, r)
	}
	if !strings.HasPrefix(r.Stdout, "kubectl devpatch "+env.Version) || !strings.Contains(r.Stdout, "agent in deployment.apps/old: v0.0.1 (image ghcr.io/kubectl-dev/devagent:v0.0.1") {
		t.Fatalf("stdout:\n%s", r.Stdout)
	}
	// Whichever is newer, the warning names both versions and the command
	// that puts this plugin's agent into the workload.
	if want := "kubectl devpatch -n " + ns + " deploy/old"; !strings.HasPrefix(r.Stderr, "Warning: the agent is v0.0.1") ||
		!strings.Contains(r.Stderr, env.Version) || !strings.Contains(r.Stderr, want) {
		t.Fatalf("stderr %q does not name both versions and %q", r.Stderr, want)
	}

	for _, plugin := range []string{"devssh", "devsync"} {
		out := env.KubectlT(t, plugin, "version", "deploy", "old", "-n", ns, "-o", "json")
		var v struct {
			Plugin struct{ Name, Version string }
			Agent  struct {
				Version, Skew string
				Patched       bool
			}
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%s version -o json: %v\n%s", plugin, err, out)
		}
		if v.Plugin.Name != plugin || v.Plugin.Version != env.Version || !v.Agent.Patched || v.Agent.Version != "v0.0.1" || v.Agent.Skew == "" {
			t.Fatalf("kubectl %s version -o json: %+v", plugin, v)
		}
	}

	// A workload without the agent, and one that does not exist.
	env.CreateDeployment(t, ns, env.DemoDeployment("plain", env.Image("demo-go", "latest")))
	if out := env.KubectlT(t, "devpatch", "version", "deploy/plain", "-n", ns); !strings.Contains(out, "agent in deployment.apps/plain: none (not patched; add it with: kubectl devpatch -n "+ns+" deploy/plain)") {
		t.Fatalf("unpatched:\n%s", out)
	}
	r, _ = env.Run(context.Background(), nil, env.Kubectl, "devpatch", "version", "deploy/nope", "-n", ns)
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, `"nope" not found`) {
		t.Fatalf("missing workload: %+v", r)
	}
}
