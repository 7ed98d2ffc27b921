package patcher

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

func demoPodSpec() corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy:   corev1.RestartPolicyNever,
		SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000)},
		Containers:      []corev1.Container{{Name: "app", Image: "demo:latest"}},
	}
}

func demoCronJob() *batchv1.CronJob {
	return &batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns, UID: "uid-nightly"},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 3 * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "nightly"}}, Spec: demoPodSpec()},
			}},
		},
	}
}

func demoJob(owner *batchv1.CronJob) *batchv1.Job {
	labels := map[string]string{batchv1.ControllerUidLabel: "uid-job"}
	j := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: "nightly-1", Namespace: ns, UID: "uid-job"},
		Spec: batchv1.JobSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: demoPodSpec()},
		},
	}
	if owner != nil {
		j.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: owner.Name, UID: owner.UID, Controller: ptr.To(true)}}
	}
	return j
}

func jobPod(name string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{batchv1.ControllerUidLabel: "uid-job"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "nightly-1", UID: "uid-job", Controller: ptr.To(true)}}},
		Spec:   demoPodSpec(),
		Status: corev1.PodStatus{Phase: phase},
	}
}

func (h *harness) create(t *testing.T, objs ...any) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *batchv1.CronJob:
			_, err = h.client.BatchV1().CronJobs(ns).Create(ctx, o, metav1.CreateOptions{FieldManager: "kubectl-create"})
		case *batchv1.Job:
			_, err = h.client.BatchV1().Jobs(ns).Create(ctx, o, metav1.CreateOptions{FieldManager: "kubectl-create"})
		case *corev1.Pod:
			_, err = h.client.CoreV1().Pods(ns).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func cronJobSpecJSON(t *testing.T, h *harness) (string, *batchv1.CronJob) {
	t.Helper()
	cj, err := h.client.BatchV1().CronJobs(ns).Get(context.Background(), "nightly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), cj
}

func TestCronJobPatchThenRemoveRestoresTheSpec(t *testing.T) {
	h := newHarness(t, namespace(""))
	h.create(t, demoCronJob())
	ctx := context.Background()
	before, _ := cronJobSpecJSON(t, h)
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Kind, cfg.Name = KindCronJob, "nightly"

	res, err := h.p.Patch(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Ref != "cronjob.batch/nightly" || res.Applied["kind"] != "CronJob" {
		t.Fatalf("result %+v", res)
	}
	patched, cj := cronJobSpecJSON(t, h)
	spec := cj.Spec.JobTemplate.Spec.Template.Spec
	// A native sidecar: the Job completes when its app does.
	if !ptr.Deref(spec.ShareProcessNamespace, false) || len(spec.Containers) != 1 || len(spec.InitContainers) != 1 ||
		spec.InitContainers[0].Name != "devagent" || ptr.Deref(spec.InitContainers[0].RestartPolicy, "") != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("patched job template: %+v", spec)
	}
	if cj.Spec.JobTemplate.Spec.Template.Annotations[wire.AnnotationMode] != "same-user" {
		t.Fatalf("annotations %v", cj.Spec.JobTemplate.Spec.Template.Annotations)
	}
	sec, err := h.client.CoreV1().Secrets(ns).Get(ctx, "nightly-devagent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o := sec.OwnerReferences; len(o) != 1 || o[0].Kind != "CronJob" || o[0].APIVersion != "batch/v1" || o[0].UID != "uid-nightly" {
		t.Fatalf("secret owner %+v", o)
	}
	if !strings.Contains(h.log.String(), "the Jobs it starts from now on carry the agent") {
		t.Fatalf("status:\n%s", h.log)
	}
	if _, err := h.p.Patch(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if again, _ := cronJobSpecJSON(t, h); again != patched {
		t.Fatalf("a re-run changed the spec:\n%s\n%s", patched, again)
	}
	entries, err := h.p.List(ctx, ns)
	if err != nil || len(entries) != 1 || entries[0].Kind != KindCronJob {
		t.Fatalf("list = %+v, %v", entries, err)
	}

	rr, err := h.p.Remove(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := cronJobSpecJSON(t, h); after != before {
		t.Fatalf("after --remove the spec is\n%s\nwant\n%s", after, before)
	}
	if len(rr.Kept) != 0 || rr.Secret != "deleted" || !strings.Contains(strings.Join(rr.Removed, ","), `init container "devagent"`) {
		t.Fatalf("remove result %+v", rr)
	}
}

func TestCronJobRefusesSupervise(t *testing.T) {
	h := newHarness(t, namespace(""))
	h.create(t, demoCronJob())
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Kind, cfg.Name, cfg.Supervise = KindCronJob, "nightly", true
	if _, err := h.p.Patch(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--supervise") {
		t.Fatalf("--supervise on a cronjob: %v", err)
	}
}

func TestJobRunningPodsGetEphemeralAgent(t *testing.T) {
	h := newHarness(t, namespace(""))
	h.create(t, demoJob(nil), jobPod("nightly-1-a", corev1.PodSucceeded), jobPod("nightly-1-b", corev1.PodRunning))
	ctx := context.Background()
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Kind, cfg.Name = KindJob, "nightly-1"
	res, err := h.p.Patch(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Ephemeral || !res.Changed || strings.Join(res.Pods, ",") != "nightly-1-b" || res.Secret != "created" {
		t.Fatalf("result %+v", res)
	}
	for name, want := range map[string]int{"nightly-1-a": 0, "nightly-1-b": 1} {
		p, _ := h.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if len(p.Spec.EphemeralContainers) != want {
			t.Fatalf("pod %s: %d ephemeral containers, want %d", name, len(p.Spec.EphemeralContainers), want)
		}
		if want == 1 {
			ec := p.Spec.EphemeralContainers[0]
			if ec.TargetContainerName != "app" || ec.Env[0].ValueFrom.SecretKeyRef.Name != "nightly-1-devagent" || p.Annotations[wire.AnnotationTarget] != "app" {
				t.Fatalf("pod %s: ephemeral agent %+v, annotations %v", name, ec, p.Annotations)
			}
		}
	}
	sec, err := h.client.CoreV1().Secrets(ns).Get(ctx, "nightly-1-devagent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o := sec.OwnerReferences; len(o) != 1 || o[0].Kind != "Job" || o[0].APIVersion != "batch/v1" {
		t.Fatalf("secret owner %+v", o)
	}
	if !strings.Contains(h.log.String(), "a Job's pod template cannot change") {
		t.Fatalf("status does not say why it is ephemeral:\n%s", h.log)
	}
	res, err = h.p.Patch(ctx, cfg)
	if err != nil || !res.Reused || res.Changed {
		t.Fatalf("second run: %+v %v", res, err)
	}
	if info, err := ReadAgent(ctx, h.client, KindJob, ns, "nightly-1"); err != nil || !info.Patched || info.Version != "v1.0.0" || info.Image != "reg/devagent:v1.0.0" {
		t.Fatalf("ReadAgent of the job: %+v %v", info, err)
	}
	if _, err := h.p.Remove(ctx, cfg); err == nil || !strings.Contains(err.Error(), "cannot be removed") {
		t.Fatalf("remove on a job: %v", err)
	}
}

func TestJobFromPatchedCronJobIsUnchanged(t *testing.T) {
	h := newHarness(t, namespace(""))
	job := demoJob(demoCronJob())
	job.Spec.Template.Annotations = map[string]string{wire.AnnotationMode: "same-user", wire.AnnotationTarget: "app", wire.AnnotationAgentContainer: "devagent"}
	job.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "devagent", Image: "reg/devagent:v1.0.0", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}}
	h.create(t, job, jobPod("nightly-1-b", corev1.PodRunning))
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Kind, cfg.Name = KindJob, "nightly-1"
	res, err := h.p.Patch(context.Background(), cfg)
	if err != nil || !res.Reused || res.Ephemeral {
		t.Fatalf("result %+v, %v", res, err)
	}
	if !strings.Contains(h.log.String(), "from cronjob/nightly") {
		t.Fatalf("status:\n%s", h.log)
	}
}

func TestJobWithoutRunningPodIsOneLine(t *testing.T) {
	h := newHarness(t, namespace(""))
	job := demoJob(demoCronJob())
	job.Status.Succeeded = 1
	h.create(t, job, jobPod("nightly-1-a", corev1.PodSucceeded))
	h.p.Remedy = kubectlcmd.New("team-a", true, kubectlcmd.Flag{Name: "context", Value: "prod"})
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Kind, cfg.Name = KindJob, "nightly-1"
	_, err := h.p.Patch(context.Background(), cfg)
	if err == nil {
		t.Fatal("patched a Job without a running pod")
	}
	msg := err.Error()
	for _, want := range []string{"job.batch/nightly-1 has no running pod (1 succeeded)", "kubectl devpatch -n team-a --context=prod cronjob/nightly"} {
		if !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
			t.Fatalf("error %q: want one line containing %q", msg, want)
		}
	}
}
