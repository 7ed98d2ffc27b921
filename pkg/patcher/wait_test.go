package patcher

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWaitEndsWithTheKubeletsReason(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	ctx := context.Background()
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Wait, cfg.Timeout = true, 5*time.Second
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-abc", Namespace: ns, Labels: map[string]string{"app": "demo"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}, {Name: "devagent"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", Ready: false},
			{Name: "devagent", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "ImagePullBackOff", Message: `Back-off pulling image "reg/devagent:nope"`}}},
		}},
	}
	if _, err := h.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := h.deployment(t)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	if _, err := h.client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := h.p.Patch(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), `pod/demo-abc: container "devagent": ImagePullBackOff: Back-off pulling image "reg/devagent:nope"`) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(h.log.String(), "1 old replicas are pending termination") {
		t.Fatalf("no rollout progress shown:\n%s", h.log.String())
	}
}

func TestWaitSucceedsWhenAgentReady(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	ctx := context.Background()
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Wait, cfg.Timeout = true, 5*time.Second
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-abc", Namespace: ns, Labels: map[string]string{"app": "demo"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}, {Name: "devagent"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", Ready: true}, {Name: "devagent", Ready: true},
		}},
	}
	if _, err := h.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := h.deployment(t)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	if _, err := h.client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := h.p.Patch(ctx, cfg)
	if err != nil || !res.Waited {
		t.Fatalf("Patch = %+v, %v", res, err)
	}
}
