package patcher

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kubectl-dev/kubectl-dev/pkg/jobstatus"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// patchJob adds the agent to the running pods of a Job as ephemeral
// containers: a Job's pod template cannot change once it is created. The
// keys come from the Secret of the Job (NAME-devagent, owned by the Job),
// shared by all its pods. A Job started from a patched CronJob already
// carries the agent in its template: nothing to add.
func (p *Patcher) patchJob(ctx context.Context, cfg Config, pl *plan) (*Result, error) {
	job := pl.w.obj.(*batchv1.Job)
	spec := pl.spec
	ref := pl.w.ref()
	res := &Result{Kind: KindJob, Name: job.Name, Ref: ref, Target: spec.Target, Mode: spec.Mode}
	_, patch := ephemeralPatch(spec)
	var err error
	if res.Applied, err = ToMap(patch); err != nil {
		return nil, err
	}
	if templateHasAgent(pl.w.template, spec.Name) {
		from := ""
		if owner := metav1.GetControllerOf(job); owner != nil && owner.Kind == string(KindCronJob) {
			from = " (from cronjob/" + owner.Name + ")"
		}
		p.status("%s already carries the agent %q in its pod template%s: nothing to add", ref, spec.Name, from)
		res.Reused = true
		return res, nil
	}
	res.Ephemeral = true
	pods, err := p.Client.CoreV1().Pods(cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: jobSelector(job)})
	if err != nil {
		return nil, listError(err)
	}
	running, pending := RunningJobPods(pods.Items)
	if len(running) == 0 {
		return nil, p.noRunningPodError(job, pending)
	}
	var todo []*corev1.Pod
	for _, pod := range running {
		podRef := "pod/" + pod.Name
		reused, err := existingEphemeral(pod, spec.Name, podRef)
		if err != nil {
			return nil, err
		}
		if reused {
			res.Pods = append(res.Pods, pod.Name)
			p.status("%s already has the ephemeral agent %q: reusing it", podRef, spec.Name)
			continue
		}
		todo = append(todo, pod)
	}
	if cfg.Diff {
		var b strings.Builder
		for _, pod := range todo {
			ec, _ := ephemeralPatch(spec)
			after := append(append([]corev1.EphemeralContainer(nil), pod.Spec.EphemeralContainers...), ec)
			d, err := UnifiedDiff("pod/"+pod.Name+" spec.ephemeralContainers", pod.Spec.EphemeralContainers, after)
			if err != nil {
				return nil, err
			}
			b.WriteString(d)
		}
		res.Diff = b.String()
	}
	res.Changed = len(todo) > 0
	res.Reused = !res.Changed
	if cfg.DryRun == DryRunClient {
		return res, nil
	}
	if res.Changed {
		_, action, err := p.ensureSecret(ctx, cfg, pl.w)
		if err != nil {
			return nil, err
		}
		res.Secret = action
	}
	var added []string
	for _, pod := range todo {
		if err := p.sendEphemeral(ctx, cfg, pod, spec, patch, "pod/"+pod.Name); err != nil {
			return nil, err
		}
		added = append(added, pod.Name)
		res.Pods = append(res.Pods, pod.Name)
	}
	sort.Strings(res.Pods)
	if cfg.DryRun == DryRunServer {
		return res, nil
	}
	if len(added) > 0 {
		p.status("%s: a Job's pod template cannot change, so its running pods get the agent as an ephemeral container: %q added to pod/%s (target container %q, mode %s); pods the Job starts later do not get it (run devpatch again), and it stays until the pod ends",
			ref, spec.Name, strings.Join(added, ", pod/"), spec.Target, spec.Mode)
	}
	if cfg.Wait {
		for _, name := range res.Pods {
			if err := p.waitEphemeral(ctx, cfg.Namespace, name, spec.Name, cfg.Timeout); err != nil {
				return res, err
			}
		}
		res.Waited = true
	}
	return res, nil
}

// checkJobRuns refuses a Job none of whose pods runs, unless its template
// carries the agent already (a Job of a patched CronJob).
func (p *Patcher) checkJobRuns(ctx context.Context, cfg Config) error {
	w, err := getWorkload(ctx, p.Client, KindJob, cfg.Namespace, cfg.Name)
	if err != nil {
		return err
	}
	job := w.obj.(*batchv1.Job)
	if templateHasAgent(w.template, cfg.AgentContainer) {
		return nil
	}
	pods, err := p.Client.CoreV1().Pods(cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: jobSelector(job)})
	if err != nil {
		return listError(err)
	}
	if running, pending := RunningJobPods(pods.Items); len(running) == 0 {
		return p.noRunningPodError(job, pending)
	}
	return nil
}

// noRunningPodError is the one line for a Job without a running pod: what
// its pods did, and what to do instead.
func (p *Patcher) noRunningPodError(job *batchv1.Job, pending int) error {
	ref := KindJob.Ref(job.Name)
	what := jobstatus.Describe(job, pending)
	remedy := "run devpatch while one of its pods runs"
	if pending > 0 {
		remedy = "run devpatch again when its pod runs"
	}
	if owner := metav1.GetControllerOf(job); owner != nil && owner.Kind == string(KindCronJob) {
		remedy += fmt.Sprintf(", or patch cronjob/%s so that the Jobs it starts carry the agent (%s)", owner.Name, p.Remedy.Command("devpatch", "cronjob/"+owner.Name))
	}
	return fmt.Errorf("%s has no running pod (%s): a Job's pod template cannot change, so devpatch adds the agent to its running pods only; %s", ref, what, remedy)
}

// RunningJobPods are the pods that run (not being deleted), newest first,
// and the number of pods still pending.
func RunningJobPods(pods []corev1.Pod) ([]*corev1.Pod, int) {
	var running []*corev1.Pod
	pending := 0
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		switch pod.Status.Phase {
		case corev1.PodRunning:
			running = append(running, pod)
		case corev1.PodPending, "":
			pending++
		}
	}
	sort.SliceStable(running, func(i, j int) bool {
		return running[j].CreationTimestamp.Before(&running[i].CreationTimestamp)
	})
	return running, pending
}

// jobSelector is the label selector of a Job's pods.
func jobSelector(job *batchv1.Job) string {
	if job.Spec.Selector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(job.Spec.Selector); err == nil {
			return sel.String()
		}
	}
	return batchv1.ControllerUidLabel + "=" + string(job.UID)
}

// templateHasAgent is whether a pod template carries the agent (patched
// through a CronJob: devpatch's annotations and the agent container).
func templateHasAgent(t *corev1.PodTemplateSpec, agent string) bool {
	if t.Annotations[wire.AnnotationMode] == "" {
		return false
	}
	for _, c := range append(append([]corev1.Container(nil), t.Spec.Containers...), t.Spec.InitContainers...) {
		if c.Name == agent {
			return true
		}
	}
	return false
}
