package cli

import (
	"encoding/json"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-dev/kubectl-dev/pkg/patcher"
	"github.com/kubectl-dev/kubectl-dev/pkg/version"
)

func deployment(agentVersion string) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "demo"}}
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "demo:1"}}
	if agentVersion != "" {
		d.Spec.Template.Annotations = map[string]string{
			wire.AnnotationMode:           "same-user",
			wire.AnnotationAgentVersion:   agentVersion,
			wire.AnnotationAgentContainer: "devagent",
		}
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers,
			corev1.Container{Name: "devagent", Image: "ghcr.io/kubectl-dev/devagent:" + agentVersion})
	}
	return d
}

func runVersion(t *testing.T, o *VersionOptions) (string, string) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o.IOStreams = streams
	if o.Plugin == "" {
		o.Plugin = "kubectl devpatch"
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := o.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String()
}

func withVersion(t *testing.T, v string) {
	old := version.Version
	version.Version = v
	t.Cleanup(func() { version.Version = old })
}

func TestVersionOfThePluginOnly(t *testing.T) {
	withVersion(t, "v0.2.0")
	out, errOut := runVersion(t, &VersionOptions{})
	if !strings.HasPrefix(out, "kubectl devpatch v0.2.0 (commit ") || errOut != "" {
		t.Fatalf("stdout %q, stderr %q", out, errOut)
	}
}

func TestVersionOfTheAgent(t *testing.T) {
	withVersion(t, "v0.2.0")
	for _, c := range []struct {
		agent      string
		explicitNS bool
		wantOut    string
		wantErr    string
	}{
		{"v0.2.0", false, "agent in deployment.apps/demo: v0.2.0 (image ghcr.io/kubectl-dev/devagent:v0.2.0, container devagent)", ""},
		{"v0.1.0", true, "agent in deployment.apps/demo: v0.1.0", "Warning: the agent is v0.1.0 and this plugin is v0.2.0; upgrade the agent: kubectl devpatch -n demo deploy/demo\n"},
		{"v0.3.0", false, "agent in deployment.apps/demo: v0.3.0", "newer than this plugin v0.2.0; upgrade the plugins: kubectl krew upgrade"},
		{"latest", false, "", `the agent's version is unknown ("latest")`},
		{"", false, "agent in deployment.apps/demo: none (not patched; add it with: kubectl devpatch deploy/demo)", ""},
	} {
		t.Run(c.agent, func(t *testing.T) {
			o := &VersionOptions{Kind: patcher.KindDeployment, Name: "demo", Namespace: "demo", ExplicitNS: c.explicitNS,
				Client: fake.NewClientset(deployment(c.agent))}
			out, errOut := runVersion(t, o)
			if !strings.HasPrefix(out, "kubectl devpatch v0.2.0 ") || !strings.Contains(out, c.wantOut) {
				t.Errorf("stdout %q, want it to contain %q", out, c.wantOut)
			}
			if (c.wantErr == "") != (errOut == "") || !strings.Contains(errOut, c.wantErr) {
				t.Errorf("stderr %q, want %q", errOut, c.wantErr)
			}
		})
	}
}

func TestVersionJSON(t *testing.T) {
	withVersion(t, "v0.2.0")
	o := &VersionOptions{Output: "json", Kind: patcher.KindDeployment, Name: "demo", Namespace: "demo",
		Client: fake.NewClientset(deployment("v0.1.0"))}
	out, errOut := runVersion(t, o)
	var info VersionInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if info.Plugin.Name != "devpatch" || info.Plugin.Version != "v0.2.0" || info.Agent == nil ||
		info.Agent.Version != "v0.1.0" || !info.Agent.Patched || !strings.Contains(info.Agent.Skew, "kubectl devpatch deploy/demo") {
		t.Fatalf("%+v %+v", info, info.Agent)
	}
	if errOut != "" {
		t.Fatalf("stderr %q", errOut)
	}
	if err := (&VersionOptions{Output: "wide"}).Validate(); err == nil {
		t.Fatal("-o wide accepted")
	}
}

func TestVersionMissingWorkload(t *testing.T) {
	o := &VersionOptions{Kind: patcher.KindDeployment, Name: "gone", Namespace: "demo", Client: fake.NewClientset(),
		IOStreams: genericiooptions.NewTestIOStreamsDiscard()}
	err := o.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), `"gone" not found in namespace "demo"`) {
		t.Fatalf("err = %v", err)
	}
}

// A root that takes TYPE/NAME keeps taking it next to the version subcommand.
func TestRootKeepsItsArguments(t *testing.T) {
	var got []string
	newCmd := func(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
		return &cobra.Command{Use: "devfoo TYPE/NAME", RunE: func(cmd *cobra.Command, args []string) error {
			got = args
			return nil
		}}
	}
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := NewRoot(newCmd, streams)
	root.SetArgs([]string{"deploy/demo"})
	if err := root.Execute(); err != nil || len(got) != 1 || got[0] != "deploy/demo" {
		t.Fatalf("args %q, err %v", got, err)
	}
	root = NewRoot(newCmd, streams)
	root.SetOut(out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil || !strings.HasPrefix(out.String(), "kubectl devfoo "+version.Version) {
		t.Fatalf("version: %q, err %v", out.String(), err)
	}
}
