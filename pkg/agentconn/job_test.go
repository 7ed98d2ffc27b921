package agentconn

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

func testJob() *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "batch", Namespace: "ns", UID: "uid-batch"},
		Spec:       batchv1.JobSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"job": "batch"}}},
	}
}

func jobPod(name string, created time.Time, phase corev1.PodPhase, ephemeralAgent bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"job": "batch"}, CreationTimestamp: metav1.NewTime(created)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", Ready: true, ContainerID: "containerd://" + strings.Repeat("b", 64)},
		}},
	}
	if ephemeralAgent {
		p.Annotations = map[string]string{wire.AnnotationMode: "root", wire.AnnotationTarget: "app", wire.AnnotationAgentContainer: "devagent"}
		p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "devagent",
			Env: []corev1.EnvVar{{Name: wire.EnvAgentHostKey, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "batch-devagent"}, Key: "k"}}}}}}}
		p.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "devagent", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	}
	return p
}

func TestResolveJobNewestRunningPodWithAgent(t *testing.T) {
	now := time.Now()
	cs := fake.NewClientset(testJob(),
		jobPod("done", now.Add(-time.Hour), corev1.PodSucceeded, true),
		jobPod("older", now.Add(-time.Minute), corev1.PodRunning, true),
		jobPod("newer", now, corev1.PodRunning, true))
	tg, err := ResolvePod(context.Background(), cs, testJob(), ResolveOptions{Ref: "job/batch", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Pod.Name != "newer" || tg.Container != "app" || tg.SecretName != "batch-devagent" {
		t.Fatalf("resolved pod %s container %s secret %s", tg.Pod.Name, tg.Container, tg.SecretName)
	}
}

func TestResolveJobNativeSidecar(t *testing.T) {
	job := testJob()
	annot := map[string]string{wire.AnnotationMode: "root", wire.AnnotationTarget: "app", wire.AnnotationAgentContainer: "devagent"}
	job.Spec.Template.Annotations = annot
	p := jobPod("run", time.Now(), corev1.PodRunning, false)
	p.Annotations = annot
	p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "devagent", Ready: true}}
	tg, err := ResolvePod(context.Background(), fake.NewClientset(job, p), job, ResolveOptions{Ref: "job/batch", Timeout: time.Second})
	if err != nil || tg.Pod.Name != "run" {
		t.Fatalf("resolve: %v", err)
	}
}

func TestResolveJobWithoutRunningPodIsOneLineAtOnce(t *testing.T) {
	job := testJob()
	job.Status.Succeeded = 1
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	cs := fake.NewClientset(job, jobPod("done", time.Now(), corev1.PodSucceeded, true))
	start := time.Now()
	_, err := ResolvePod(context.Background(), cs, job, ResolveOptions{Ref: "job/batch", Timeout: 10 * time.Second})
	var nr *NoRunningPodError
	if !errors.As(err, &nr) || time.Since(start) > 5*time.Second {
		t.Fatalf("no running pod: %v after %v", err, time.Since(start))
	}
	if msg := err.Error(); msg != "job/batch has no running pod (1 succeeded, the Job is complete): devssh and devsync reach a Job only while one of its pods runs" {
		t.Fatalf("message %q", msg)
	}
}

func TestResolveJobNotPatchedNamesTheRemedyWithFlags(t *testing.T) {
	cs := fake.NewClientset(testJob(), jobPod("run", time.Now(), corev1.PodRunning, false))
	remedy := kubectlcmd.New("ns", true, kubectlcmd.Flag{Name: "context", Value: "kind-dev"})
	_, err := ResolvePod(context.Background(), cs, testJob(), ResolveOptions{Ref: "job/batch", Timeout: 10 * time.Second, Remedy: remedy})
	var np *NotPatchedError
	if !errors.As(err, &np) || !strings.Contains(err.Error(), `run "kubectl devpatch -n ns --context=kind-dev job/batch" first`) {
		t.Fatalf("not patched: %v", err)
	}
}

func TestResolveCronJobNamesItsJobs(t *testing.T) {
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "ns"}}
	_, err := ResolvePod(context.Background(), fake.NewClientset(), cj, ResolveOptions{Ref: "cronjob/nightly", Remedy: kubectlcmd.New("ns", true)})
	if err == nil || !strings.Contains(err.Error(), "kubectl create job -n ns --from=cronjob/nightly NAME") {
		t.Fatalf("cronjob: %v", err)
	}
}
