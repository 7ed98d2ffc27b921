package agentconn

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

func readyPod(name string, created time.Time, ready bool, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "demo"}, Annotations: annotations, CreationTimestamp: metav1.NewTime(created)},
		Spec:       corev1.PodSpec{Volumes: []corev1.Volume{{Name: "devagent-keys", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "demo-devagent"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", Ready: true, ContainerID: "containerd://" + strings.Repeat("a", 64)},
			{Name: "devagent", Ready: ready},
		}},
	}
}

func TestResolve(t *testing.T) {
	annot := map[string]string{wire.AnnotationMode: "root", wire.AnnotationTarget: "app", wire.AnnotationAgentContainer: "devagent"}
	hk, err := keys.NewHostKey("demo")
	if err != nil {
		t.Fatal(err)
	}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "demo"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: annot}},
		},
	}
	now := time.Now()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "demo-devagent", Namespace: "ns"},
		Data: map[string][]byte{keys.HostPublicKeyFile: []byte(hk.PublicLine + "\n")}}
	cs := fake.NewClientset(deploy, secret,
		readyPod("old", now.Add(-time.Hour), true, annot),
		readyPod("new", now, true, annot),
		readyPod("newest-not-ready", now.Add(time.Minute), false, annot))
	tg, err := Resolve(context.Background(), cs, deploy, ResolveOptions{Ref: "deploy/demo", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Pod.Name != "new" || tg.Container != "app" || tg.ContainerID != strings.Repeat("a", 64) || tg.SecretName != "demo-devagent" || !strings.HasPrefix(hk.PublicLine, tg.HostKey.Type()) {
		t.Fatalf("Resolve = pod %s container %s id %s secret %s", tg.Pod.Name, tg.Container, tg.ContainerID, tg.SecretName)
	}
	env := strings.Join(tg.Env("agent"), " ")
	if !strings.Contains(env, wire.EnvContainerID+"="+strings.Repeat("a", 64)) || !strings.Contains(env, wire.EnvTarget+"=agent") {
		t.Fatalf("Env = %s", env)
	}

	// An unpatched workload: one clear error, no waiting.
	plain := deploy.DeepCopy()
	plain.Spec.Template.Annotations = nil
	start := time.Now()
	_, err = Resolve(context.Background(), cs, plain, ResolveOptions{Ref: "deploy/demo", Timeout: 10 * time.Second})
	var np *NotPatchedError
	if !errors.As(err, &np) || !strings.Contains(err.Error(), `kubectl devpatch deploy/demo`) || time.Since(start) > 5*time.Second {
		t.Fatalf("unpatched: %v", err)
	}
	// -c names a container the pod does not have.
	if _, err := Resolve(context.Background(), cs, deploy, ResolveOptions{Ref: "deploy/demo", Container: "nope", Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), `container "nope" not found in pod/new; its containers are: app`) {
		t.Fatalf("-c nope: %v", err)
	}
}
