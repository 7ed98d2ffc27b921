package patcher

import (
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestReadAgentOfABarePod(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: map[string]string{
		wire.AnnotationMode: "root", wire.AnnotationAgentVersion: "v0.1.0", wire.AnnotationAgentContainer: "devagent-1",
	}}}
	pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "app"}}
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "devagent-1", Image: "r/devagent:v0.1.0"}}}
	a, err := ReadAgent(t.Context(), fake.NewClientset(pod), KindPod, "ns", "p")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Patched || a.Version != "v0.1.0" || a.Image != "r/devagent:v0.1.0" || a.Container != "devagent-1" || a.Ref() != "pod/p" {
		t.Fatalf("%+v", a)
	}
}

func TestSkew(t *testing.T) {
	for _, c := range []struct{ agent, plugin, want string }{
		{"v0.1.0", "v0.1.0", ""},
		{"v0.1.0", "v0.2.0", "the agent is v0.1.0 and this plugin is v0.2.0; upgrade the agent: kubectl devpatch deploy/d"},
		{"v0.3.0", "v0.2.0", "newer than this plugin v0.2.0; upgrade the plugins: kubectl krew upgrade"},
		{"sha256:abc", "v0.2.0", `the agent's version is unknown ("sha256:abc")`},
	} {
		got := Skew(c.agent, c.plugin, "deploy/d")
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("Skew(%q, %q) = %q, want %q", c.agent, c.plugin, got, c.want)
		}
	}
}
