package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

// waitForDone is a Job's app that ends when /tmp/done appears in its
// container (so the test decides when the Job completes).
var waitForDone = []string{"sh", "-c", "until [ -e /tmp/done ]; do sleep 0.2; done; echo done"}

func jobPodSpec(command []string) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		TerminationGracePeriodSeconds: ptr.To[int64](2),
		Containers:                    []corev1.Container{{Name: "app", Image: env.Image("demo-python", "latest"), Command: command}},
	}
}

// jobCondition is whether Job ns/name has condition typ true.
func jobCondition(ctx context.Context, ns, name string, typ batchv1.JobConditionType) (bool, error) {
	j, err := env.Client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return true, nil
		}
	}
	return false, nil
}

// oneLine fails the test unless a command failed with one line of stderr
// that contains every want.
func oneLine(t *testing.T, what string, r framework.Result, want ...string) {
	t.Helper()
	msg := strings.TrimSpace(r.Stderr)
	if r.ExitCode == 0 || strings.Contains(msg, "\n") {
		t.Fatalf("%s: exit %d, stderr %q; want one line", what, r.ExitCode, r.Stderr)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("%s: stderr %q; want it to contain %q", what, msg, w)
		}
	}
}

// TestDevpatchCronJob: the CronJob's job template gets the agent as a native
// sidecar; a Job started from it carries the agent, devssh reaches it, and
// it still completes when its app ends; --remove restores the spec byte
// for byte.
func TestDevpatchCronJob(t *testing.T) {
	ns := env.Namespace(t)
	ctx := context.Background()
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 3 1 1 *",
			// Jobs start only when the test creates them.
			Suspend: ptr.To(true),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](0),
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{framework.AppLabel: "nightly"}},
					Spec:       jobPodSpec(waitForDone),
				},
			}},
		},
	}
	if _, err := env.Client.BatchV1().CronJobs(ns).Create(ctx, cj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := rawWorkloadSpec(t, ns, "cronjob/nightly")
	gen0 := generation(t, ns, "cronjob/nightly")

	// --dry-run=server -o yaml prints the apply and changes nothing.
	r := devpatchOK(t, ns, "cronjob/nightly", "--dry-run=server", "-o", "yaml")
	if !strings.Contains(r.Stdout, "kind: CronJob") || !strings.Contains(r.Stdout, "jobTemplate:") || !strings.Contains(r.Stdout, "restartPolicy: Always") {
		t.Fatalf("--dry-run=server -o yaml printed:\n%s", r.Stdout)
	}
	if rawWorkloadSpec(t, ns, "cronjob/nightly") != before || generation(t, ns, "cronjob/nightly") != gen0 {
		t.Fatal("--dry-run=server changed the cronjob")
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Get(ctx, "nightly-devagent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("--dry-run=server left the secret (err %v)", err)
	}

	r = devpatchOK(t, ns, "cronjob/nightly")
	if !strings.Contains(r.Stdout, "cronjob.batch/nightly patched") || !strings.Contains(r.Stderr, "the Jobs it starts from now on carry the agent") ||
		!strings.Contains(r.Stdout, "kubectl devssh -n "+ns+" job/NAME") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
	gen := generation(t, ns, "cronjob/nightly")
	if r := devpatchOK(t, ns, "cronjob/nightly"); !strings.Contains(r.Stdout, "unchanged") || generation(t, ns, "cronjob/nightly") != gen {
		t.Fatalf("re-run: %s (generation %s, was %s)", r.Stdout, generation(t, ns, "cronjob/nightly"), gen)
	}

	// A Job started from it carries the agent; devssh reaches it through job/NAME.
	env.KubectlT(t, "-n", ns, "create", "job", "run1", "--from=cronjob/nightly")
	out := devsshOK(t, ns, "job/run1", "--pod-running-timeout=3m", "--", "sh", "-c", "echo reached $(cat /proc/1/cmdline | tr '\\0' ' '); touch /tmp/done")
	if !strings.Contains(out, "reached") {
		t.Fatalf("devssh job/run1: %q", out)
	}
	// The agent is a native sidecar: the Job completes when its app ends.
	env.WaitFor(t, "job/run1 complete", 2*time.Minute, func(ctx context.Context) (bool, error) {
		return jobCondition(ctx, ns, "run1", batchv1.JobComplete)
	})

	// A Job with no running pod: one line, at once, from devssh and devpatch.
	start := time.Now()
	oneLine(t, "devssh of a finished job", devssh(t, ns, nil, "job/run1", "--", "true"), "job/run1 has no running pod (1 succeeded")
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("devssh of a finished job took %v: it should not wait", d)
	}
	// Its template carries the agent: devpatch job/run1 has nothing to add.
	if r := devpatchOK(t, ns, "job/run1"); !strings.Contains(r.Stdout, "job.batch/run1 unchanged") {
		t.Fatalf("devpatch job/run1: %s", r.Stdout)
	}

	devpatchOK(t, ns, "--remove", "cronjob/nightly")
	if after := rawWorkloadSpec(t, ns, "cronjob/nightly"); after != before {
		t.Fatalf("cronjob spec after --remove:\n%s\nwant\n%s", after, before)
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Get(ctx, "nightly-devagent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("--remove left the secret (err %v)", err)
	}

	// A Job of the unpatched CronJob that has ended: devpatch says, in one
	// line, that it has no running pod, and its remedy (patch the CronJob)
	// carries the -n given, so that pasting it patches this namespace.
	env.KubectlT(t, "-n", ns, "create", "job", "run2", "--from=cronjob/nightly")
	env.WaitFor(t, "job/run2 complete", 3*time.Minute, func(ctx context.Context) (bool, error) {
		if done, err := jobCondition(ctx, ns, "run2", batchv1.JobComplete); done || err != nil {
			return done, err
		}
		// Touch /tmp/done once its pod runs (the exec fails until then).
		_, _ = env.KubectlRun(ctx, "-n", ns, "exec", "job/run2", "--", "touch", "/tmp/done")
		return false, nil
	})
	oneLine(t, "devpatch of a finished job", devpatch(t, ns, "job/run2"),
		"job.batch/run2 has no running pod (1 succeeded", "kubectl devpatch -n "+ns+" cronjob/nightly")
}

// TestDevpatchJobEphemeral: a Job's running pod gets the ephemeral agent;
// devssh and devsync reach it through job/NAME; before that, the error's
// remedy carries the user's -n and --context.
func TestDevpatchJobEphemeral(t *testing.T) {
	ns := env.Namespace(t)
	ctx := context.Background()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "batch"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{framework.AppLabel: "batch"}},
				Spec:       jobPodSpec(waitForDone),
			},
		},
	}
	if _, err := env.Client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(t, "a running pod of job/batch", 3*time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=batch"})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				return true, nil
			}
		}
		return false, nil
	})

	// Not patched yet: the remedy is a command that works when pasted.
	kctx := strings.TrimSpace(env.KubectlT(t, "config", "current-context"))
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r, err := env.Run(runCtx, nil, env.Kubectl, "devssh", "-n", ns, "--context", kctx, "job/batch", "--", "true")
	if err != nil {
		t.Fatal(err)
	}
	oneLine(t, "devssh of an unpatched job", r, `run "kubectl devpatch -n `+ns+` --context=`+kctx+` job/batch" first`)

	r = devpatchOK(t, ns, "job/batch")
	if !strings.Contains(r.Stdout, "job.batch/batch patched (ephemeral agent in its running pod/batch-") || !strings.Contains(r.Stderr, "a Job's pod template cannot change") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout, "--remove") {
		t.Errorf("devpatch job/batch offers an undo that cannot work:\n%s", r.Stdout)
	}
	if r := devpatchOK(t, ns, "job/batch"); !strings.Contains(r.Stdout, "unchanged") {
		t.Errorf("second run: %s", r.Stdout)
	}
	if out := env.KubectlT(t, "devpatch", "-n", ns, "version", "job/batch"); !strings.Contains(out, "agent in job.batch/batch: "+env.Version) {
		t.Errorf("devpatch version job/batch:\n%s", out)
	}

	// devssh reaches the app's files through job/NAME.
	if out := devsshOK(t, ns, "job/batch", "--", "ls", "/app/e2e_k8s"); !strings.Contains(out, "demo.py") {
		t.Fatalf("devssh job/batch ls /app/e2e_k8s: %q", out)
	}
	// devsync --once to job/NAME, checked through devssh.
	local := t.TempDir()
	if err := os.WriteFile(filepath.Join(local, "hello.txt"), []byte("hello from the laptop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	devsyncOK(t, ns, local, "job/batch", "--dest", "/srv/synced", "--once")
	if out := devsshOK(t, ns, "job/batch", "--", "cat", "/srv/synced/hello.txt"); out != "hello from the laptop\n" {
		t.Fatalf("synced file: %q", out)
	}
	// -c with a container the pod does not have names the ones it has.
	oneLine(t, "devsync -c nosuch", devsync(t, ns, local, "job/batch", "-c", "nosuch", "--once"),
		`container "nosuch" not found in pod/batch-`, "its containers are: app")

	oneLine(t, "devpatch --remove job/batch", devpatch(t, ns, "--remove", "job/batch"), "cannot be removed")

	// The ephemeral agent does not keep the pod running: the Job completes
	// when its app ends.
	devsshOK(t, ns, "job/batch", "--", "touch", "/tmp/done")
	env.WaitFor(t, "job/batch complete", 2*time.Minute, func(ctx context.Context) (bool, error) {
		return jobCondition(ctx, ns, "batch", batchv1.JobComplete)
	})
}
