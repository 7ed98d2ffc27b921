package framework

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// AppLabel marks the pods of the test workloads (Dump reads their logs).
const AppLabel = "kubectl-dev.io/e2e-app"

// DemoPort is the HTTP port of the demo images.
const DemoPort = 8080

// DemoDeployment is a Deployment of one of the demo images with a readiness
// probe on /add/2/3. Tests adjust it before creating it.
func (e *Env) DemoDeployment(name, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name, AppLabel: name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Containers: []corev1.Container{{
						Name:  "app",
						Image: image,
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: DemoPort}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
								Path: "/add/2/3", Port: intstr.FromInt32(DemoPort),
							}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
}

// CreateDeployment creates d in ns and waits until its rollout is complete
// and every replica is ready.
func (e *Env) CreateDeployment(t *testing.T, ns string, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	created, err := e.Client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating deployment %s/%s: %v", ns, d.Name, err)
	}
	e.WaitRollout(t, ns, d.Name, 3*time.Minute)
	return created
}

// WaitRollout waits until deployment ns/name has rolled out its latest
// generation with every replica updated and ready, as `kubectl rollout status`.
func (e *Env) WaitRollout(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	e.WaitFor(t, fmt.Sprintf("rollout of deployment/%s in %s", name, ns), timeout, func(ctx context.Context) (bool, error) {
		d, err := e.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		want := ptr.Deref(d.Spec.Replicas, 1)
		s := d.Status
		return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want &&
			s.ReadyReplicas == want && s.Replicas == want && s.AvailableReplicas == want, nil
	})
}

// RunningPods lists the running, ready pods of deployment ns/name.
func (e *Env) RunningPods(t *testing.T, ns, name string) []corev1.Pod {
	t.Helper()
	pods, err := e.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: AppLabel + "=" + name})
	if err != nil {
		t.Fatalf("listing pods of deployment/%s: %v", name, err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}
