package patcher

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	"k8s.io/client-go/kubernetes"
)

// workload is a live object with a pod template, whatever its kind.
type workload struct {
	kind     Kind
	obj      runtime.Object
	meta     metav1.Object
	template *corev1.PodTemplateSpec
	selector *metav1.LabelSelector
}

func (w *workload) ref() string { return w.kind.Ref(w.meta.GetName()) }

func (w *workload) ownerReference() metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: w.kind.APIVersion(),
		Kind:       string(w.kind),
		Name:       w.meta.GetName(),
		UID:        w.meta.GetUID(),
	}
}

func newWorkload(kind Kind, obj runtime.Object) *workload {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &workload{kind: kind, obj: o, meta: o, template: &o.Spec.Template, selector: o.Spec.Selector}
	case *appsv1.StatefulSet:
		return &workload{kind: kind, obj: o, meta: o, template: &o.Spec.Template, selector: o.Spec.Selector}
	case *appsv1.DaemonSet:
		return &workload{kind: kind, obj: o, meta: o, template: &o.Spec.Template, selector: o.Spec.Selector}
	case *appsv1.ReplicaSet:
		return &workload{kind: kind, obj: o, meta: o, template: &o.Spec.Template, selector: o.Spec.Selector}
	case *batchv1.CronJob:
		return &workload{kind: kind, obj: o, meta: o, template: &o.Spec.JobTemplate.Spec.Template}
	case *batchv1.Job:
		return &workload{kind: kind, obj: o, meta: o, template: &o.Spec.Template, selector: o.Spec.Selector}
	case *corev1.Pod:
		return &workload{kind: kind, obj: o, meta: o, template: &corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec}}
	}
	return nil
}

// getWorkload reads the object; a missing one is an error naming it and
// its namespace.
func getWorkload(ctx context.Context, c kubernetes.Interface, kind Kind, ns, name string) (*workload, error) {
	var obj runtime.Object
	var err error
	opts := metav1.GetOptions{}
	switch kind {
	case KindDeployment:
		obj, err = c.AppsV1().Deployments(ns).Get(ctx, name, opts)
	case KindStatefulSet:
		obj, err = c.AppsV1().StatefulSets(ns).Get(ctx, name, opts)
	case KindDaemonSet:
		obj, err = c.AppsV1().DaemonSets(ns).Get(ctx, name, opts)
	case KindReplicaSet:
		obj, err = c.AppsV1().ReplicaSets(ns).Get(ctx, name, opts)
	case KindCronJob:
		obj, err = c.BatchV1().CronJobs(ns).Get(ctx, name, opts)
	case KindJob:
		obj, err = c.BatchV1().Jobs(ns).Get(ctx, name, opts)
	case KindPod:
		obj, err = c.CoreV1().Pods(ns).Get(ctx, name, opts)
	default:
		return nil, fmt.Errorf("devpatch does not support %s", kind)
	}
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s %q not found in namespace %q", kind.GroupResource(), name, ns)
	}
	if apierrors.IsForbidden(err) {
		return nil, forbiddenError(err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s in namespace %q: %w", kind.Ref(name), ns, err)
	}
	return newWorkload(kind, obj), nil
}

// applyWorkload sends an apply configuration built by WorkloadApplyConfig.
func applyWorkload(ctx context.Context, c kubernetes.Interface, kind Kind, ns string, ac any, opts metav1.ApplyOptions) (*workload, error) {
	var obj runtime.Object
	var err error
	switch a := ac.(type) {
	case *appsv1ac.DeploymentApplyConfiguration:
		obj, err = c.AppsV1().Deployments(ns).Apply(ctx, a, opts)
	case *appsv1ac.StatefulSetApplyConfiguration:
		obj, err = c.AppsV1().StatefulSets(ns).Apply(ctx, a, opts)
	case *appsv1ac.DaemonSetApplyConfiguration:
		obj, err = c.AppsV1().DaemonSets(ns).Apply(ctx, a, opts)
	case *appsv1ac.ReplicaSetApplyConfiguration:
		obj, err = c.AppsV1().ReplicaSets(ns).Apply(ctx, a, opts)
	case *batchv1ac.CronJobApplyConfiguration:
		obj, err = c.BatchV1().CronJobs(ns).Apply(ctx, a, opts)
	default:
		return nil, fmt.Errorf("unexpected apply configuration %T", ac)
	}
	if err != nil {
		return nil, err
	}
	return newWorkload(kind, obj), nil
}

// forbiddenError turns a 403 into one line naming the missing permission.
func forbiddenError(err error) error {
	var se apierrors.APIStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		se = s
	}
	if se == nil {
		return err
	}
	return fmt.Errorf("%s (see the RBAC Role in docs/devpatch.md)", se.Status().Message)
}
