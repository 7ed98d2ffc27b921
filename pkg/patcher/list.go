package patcher

import (
	"context"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Entry is one patched object of List.
type Entry struct {
	Namespace    string
	Kind         Kind
	Name         string
	Target       string
	Mode         string
	AgentVersion string
	Agent        string
}

// List finds the patched workloads (and bare pods with the ephemeral agent)
// of a namespace, or of all namespaces when namespace is "".
func (p *Patcher) List(ctx context.Context, namespace string) ([]Entry, error) {
	var out []Entry
	add := func(kind Kind, meta metav1.Object, annotations map[string]string) {
		if annotations[wire.AnnotationMode] == "" {
			return
		}
		if kind != KindDeployment && kind != KindPod && metav1.GetControllerOf(meta) != nil {
			return // a ReplicaSet of a patched Deployment
		}
		out = append(out, Entry{
			Namespace: meta.GetNamespace(), Kind: kind, Name: meta.GetName(),
			Target: annotations[wire.AnnotationTarget], Mode: annotations[wire.AnnotationMode],
			AgentVersion: annotations[wire.AnnotationAgentVersion], Agent: annotations[wire.AnnotationAgentContainer],
		})
	}
	opts := metav1.ListOptions{}
	apps := p.Client.AppsV1()
	ds, err := apps.Deployments(namespace).List(ctx, opts)
	if err != nil {
		return nil, listError(err)
	}
	for i := range ds.Items {
		add(KindDeployment, &ds.Items[i], ds.Items[i].Spec.Template.Annotations)
	}
	ss, err := apps.StatefulSets(namespace).List(ctx, opts)
	if err != nil {
		return nil, listError(err)
	}
	for i := range ss.Items {
		add(KindStatefulSet, &ss.Items[i], ss.Items[i].Spec.Template.Annotations)
	}
	dss, err := apps.DaemonSets(namespace).List(ctx, opts)
	if err != nil {
		return nil, listError(err)
	}
	for i := range dss.Items {
		add(KindDaemonSet, &dss.Items[i], dss.Items[i].Spec.Template.Annotations)
	}
	rss, err := apps.ReplicaSets(namespace).List(ctx, opts)
	if err != nil {
		return nil, listError(err)
	}
	for i := range rss.Items {
		add(KindReplicaSet, &rss.Items[i], rss.Items[i].Spec.Template.Annotations)
	}
	cjs, err := p.Client.BatchV1().CronJobs(namespace).List(ctx, opts)
	switch {
	case err == nil:
		for i := range cjs.Items {
			add(KindCronJob, &cjs.Items[i], cjs.Items[i].Spec.JobTemplate.Spec.Template.Annotations)
		}
	case isForbidden(err):
		// Not every developer may read CronJobs: the others are listed.
	default:
		return nil, listError(err)
	}
	pods, err := p.Client.CoreV1().Pods(namespace).List(ctx, opts)
	if err != nil {
		return nil, listError(err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if hasEphemeral(pod, pod.Annotations[wire.AnnotationAgentContainer]) {
			add(KindPod, pod, pod.Annotations)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	return out, nil
}

func hasEphemeral(pod *corev1.Pod, name string) bool {
	for _, ec := range pod.Spec.EphemeralContainers {
		if name != "" && ec.Name == name {
			return true
		}
	}
	return false
}

func isForbidden(err error) bool {
	s, ok := err.(interface{ Status() metav1.Status })
	return ok && s.Status().Reason == metav1.StatusReasonForbidden
}

func listError(err error) error {
	if s, ok := err.(interface{ Status() metav1.Status }); ok && s.Status().Reason == metav1.StatusReasonForbidden {
		return forbiddenError(err)
	}
	return err
}
