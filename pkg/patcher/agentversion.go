package patcher

import (
	"context"
	"fmt"

	"github.com/kubectl-dev/kubectl-dev/pkg/wire"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilversion "k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"
)

// AgentInfo is what a workload (or a bare pod) records about the agent
// devpatch put into it.
type AgentInfo struct {
	Kind      Kind
	Namespace string
	Name      string
	// Patched is false when devpatch's annotations are absent.
	Patched bool
	// Version is the pod template's devpatch.kubectl-dev.io/agent-version.
	Version string
	// Image and Container are the agent container's, when it is there.
	Image     string
	Container string
}

// Ref names the object as kubectl prints it, e.g. "deployment.apps/demo".
func (a AgentInfo) Ref() string { return a.Kind.Ref(a.Name) }

// ReadAgent reads the agent's version and image from the workload's pod
// template (a bare pod: from its annotations and ephemeral containers; a
// Job whose template has no agent: from its newest running pod's).
func ReadAgent(ctx context.Context, c kubernetes.Interface, kind Kind, namespace, name string) (*AgentInfo, error) {
	w, err := getWorkload(ctx, c, kind, namespace, name)
	if err != nil {
		return nil, err
	}
	if job, ok := w.obj.(*batchv1.Job); ok && w.template.Annotations[wire.AnnotationMode] == "" {
		// The ephemeral agent of devpatch job/NAME: read its newest running pod.
		pods, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: jobSelector(job)})
		if err != nil {
			return nil, listError(err)
		}
		if running, _ := RunningJobPods(pods.Items); len(running) > 0 {
			w = newWorkload(KindPod, running[0])
		}
	}
	annotations := w.template.Annotations
	info := &AgentInfo{Kind: kind, Namespace: namespace, Name: name,
		Version: annotations[wire.AnnotationAgentVersion], Container: annotations[wire.AnnotationAgentContainer]}
	info.Patched = annotations[wire.AnnotationMode] != "" || info.Version != ""
	if info.Container == "" {
		info.Container = wire.DefaultAgentContainer
	}
	for _, ct := range w.template.Spec.Containers {
		if ct.Name == info.Container {
			info.Image = ct.Image
		}
	}
	for _, ct := range w.template.Spec.InitContainers {
		if ct.Name == info.Container {
			info.Image = ct.Image
		}
	}
	for _, ec := range w.template.Spec.EphemeralContainers {
		if ec.Name == info.Container {
			info.Image = ec.Image
		}
	}
	if !info.Patched {
		info.Container, info.Image = "", ""
	}
	return info, nil
}

// Skew compares the agent's version with the plugin's. It returns "" when
// they match, else a sentence for the user that names both versions and says
// how to upgrade: an older agent by running kubectl devpatch of this version
// on the workload again (it applies the agent of its own version and rolls
// the pods), older plugins with krew. target is how the user names the
// workload, with its namespace flag if any ("-n demo deploy/demo").
func Skew(agentVersion, pluginVersion, target string) string {
	if agentVersion == pluginVersion {
		return ""
	}
	upgradeAgent := "kubectl devpatch " + target
	a, aerr := utilversion.ParseSemantic(agentVersion)
	p, perr := utilversion.ParseSemantic(pluginVersion)
	switch {
	case aerr != nil:
		return fmt.Sprintf("the agent's version is unknown (%q), this plugin is %s; to run the agent of this version: %s", agentVersion, pluginVersion, upgradeAgent)
	case perr == nil && a.GreaterThan(p):
		return fmt.Sprintf("the agent is %s, newer than this plugin %s; upgrade the plugins: kubectl krew upgrade devpatch devssh devsync (or put this version's agent back: %s)", agentVersion, pluginVersion, upgradeAgent)
	}
	return fmt.Sprintf("the agent is %s and this plugin is %s; upgrade the agent: %s", agentVersion, pluginVersion, upgradeAgent)
}
