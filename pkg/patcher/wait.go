package patcher

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
)

// rolloutStatus says whether a workload has rolled out its latest pod
// template, with kubectl rollout status's wording. It returns an error when
// the rollout cannot finish (progress deadline, pods the controller cannot
// create).
func rolloutStatus(w *workload) (string, bool, error) {
	switch o := w.obj.(type) {
	case *appsv1.Deployment:
		if o.Generation > o.Status.ObservedGeneration {
			return "Waiting for deployment spec update to be observed...", false, nil
		}
		for _, c := range o.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
				return "", false, fmt.Errorf("deployment %q exceeded its progress deadline: %s", o.Name, c.Message)
			}
			if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
				return "", false, fmt.Errorf("deployment %q cannot create pods: %s", o.Name, c.Message)
			}
		}
		want := ptr.Deref(o.Spec.Replicas, 1)
		s := o.Status
		switch {
		case s.UpdatedReplicas < want:
			return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d out of %d new replicas have been updated...", o.Name, s.UpdatedReplicas, want), false, nil
		case s.Replicas > s.UpdatedReplicas:
			return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d old replicas are pending termination...", o.Name, s.Replicas-s.UpdatedReplicas), false, nil
		case s.AvailableReplicas < s.UpdatedReplicas:
			return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d of %d updated replicas are available...", o.Name, s.AvailableReplicas, s.UpdatedReplicas), false, nil
		}
		return fmt.Sprintf("deployment %q successfully rolled out", o.Name), true, nil
	case *appsv1.StatefulSet:
		if o.Status.ObservedGeneration == 0 || o.Generation > o.Status.ObservedGeneration {
			return "Waiting for statefulset spec update to be observed...", false, nil
		}
		want := ptr.Deref(o.Spec.Replicas, 1)
		if o.Status.ReadyReplicas < want {
			return fmt.Sprintf("Waiting for %d pods to be ready...", want-o.Status.ReadyReplicas), false, nil
		}
		if ru := o.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
			if o.Status.UpdatedReplicas < want-*ru.Partition {
				return fmt.Sprintf("Waiting for partitioned roll out to finish: %d out of %d new pods have been updated...", o.Status.UpdatedReplicas, want-*ru.Partition), false, nil
			}
			return fmt.Sprintf("partitioned roll out complete: %d new pods have been updated...", o.Status.UpdatedReplicas), true, nil
		}
		if o.Status.UpdateRevision != o.Status.CurrentRevision || o.Status.UpdatedReplicas < want {
			return fmt.Sprintf("waiting for statefulset rolling update to complete %d pods at revision %s...", o.Status.UpdatedReplicas, o.Status.UpdateRevision), false, nil
		}
		return fmt.Sprintf("statefulset rolling update complete %d pods at revision %s...", o.Status.CurrentReplicas, o.Status.CurrentRevision), true, nil
	case *appsv1.DaemonSet:
		if o.Generation > o.Status.ObservedGeneration {
			return "Waiting for daemon set spec update to be observed...", false, nil
		}
		s := o.Status
		if s.UpdatedNumberScheduled < s.DesiredNumberScheduled {
			return fmt.Sprintf("Waiting for daemon set %q rollout to finish: %d out of %d new pods have been updated...", o.Name, s.UpdatedNumberScheduled, s.DesiredNumberScheduled), false, nil
		}
		if s.NumberAvailable < s.DesiredNumberScheduled {
			return fmt.Sprintf("Waiting for daemon set %q rollout to finish: %d of %d updated pods are available...", o.Name, s.NumberAvailable, s.DesiredNumberScheduled), false, nil
		}
		return fmt.Sprintf("daemon set %q successfully rolled out", o.Name), true, nil
	case *appsv1.ReplicaSet:
		// A ReplicaSet does not replace its pods when its template changes.
		if o.Generation > o.Status.ObservedGeneration {
			return "Waiting for replica set spec update to be observed...", false, nil
		}
		return fmt.Sprintf("replica set %q updated", o.Name), true, nil
	}
	return "", false, fmt.Errorf("no rollout status for %T", w.obj)
}

// rollsPods is whether a template change replaces the workload's pods by itself.
func rollsPods(w *workload, remedy kubectlcmd.Flags) (bool, string) {
	switch o := w.obj.(type) {
	case *appsv1.Deployment:
		if o.Spec.Paused {
			return false, fmt.Sprintf("%s is paused: its pods get the change when it is resumed (%s)", w.ref(), remedy.Kubectl("rollout", "resume", w.kind.Short(o.Name)))
		}
	case *appsv1.StatefulSet:
		if o.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
			return false, fmt.Sprintf("%s updates its pods only when they are deleted (updateStrategy OnDelete): delete them to get the change", w.ref())
		}
	case *appsv1.DaemonSet:
		if o.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
			return false, fmt.Sprintf("%s updates its pods only when they are deleted (updateStrategy OnDelete): delete them to get the change", w.ref())
		}
	case *appsv1.ReplicaSet:
		return false, fmt.Sprintf("%s does not replace its running pods when its template changes: delete them to get the change", w.ref())
	case *batchv1.CronJob:
		// Its next Jobs get the change; nothing rolls (Patch says so).
		return false, ""
	}
	return true, ""
}

// badWaitingReasons are the kubelet's reasons that a container will not
// start by itself; the wait ends with them instead of a timeout.
var badWaitingReasons = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
	"CrashLoopBackOff": true,
}

// containerProblem describes why a container will not become ready, or "".
func containerProblem(pod *corev1.Pod, st corev1.ContainerStatus) string {
	if w := st.State.Waiting; w != nil && badWaitingReasons[w.Reason] {
		msg := fmt.Sprintf("pod/%s: container %q: %s", pod.Name, st.Name, w.Reason)
		if w.Message != "" {
			msg += ": " + firstLine(w.Message)
		}
		if t := st.LastTerminationState.Terminated; t != nil && t.Message != "" {
			msg += fmt.Sprintf(" (last exit %d: %s)", t.ExitCode, firstLine(t.Message))
		}
		return msg
	}
	return ""
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// podsState checks the pods of a workload: an error when the agent (or any
// container of the new pods) cannot start, and whether every live pod runs
// the agent with it ready (want true) or runs no agent (want false).
func (p *Patcher) podsState(ctx context.Context, w *workload, agentName string, want bool) (bool, string, error) {
	if w.selector == nil {
		return true, "", nil
	}
	sel, err := metav1.LabelSelectorAsSelector(w.selector)
	if err != nil {
		return false, "", err
	}
	pods, err := p.Client.CoreV1().Pods(w.meta.GetNamespace()).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return false, "", err
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	ok, notReady := true, ""
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		hasAgent := false
		for _, c := range pod.Spec.Containers {
			if c.Name == agentName {
				hasAgent = true
			}
		}
		if hasAgent != want {
			ok = false
			continue
		}
		// The pods of the new template: one that cannot start ends the wait.
		for _, st := range pod.Status.ContainerStatuses {
			if msg := containerProblem(pod, st); msg != "" {
				return false, "", errors.New(msg)
			}
		}
		if want {
			ready := false
			for _, st := range pod.Status.ContainerStatuses {
				if st.Name == agentName && st.Ready {
					ready = true
				}
			}
			if !ready {
				ok, notReady = false, fmt.Sprintf("Waiting for container %q in pod/%s to be ready...", agentName, pod.Name)
			}
		}
	}
	return ok, notReady, nil
}

// waitRollout waits until the workload has rolled out and, when
// wantAgent, the agent is ready in every pod; it prints progress lines.
func (p *Patcher) waitRollout(ctx context.Context, w *workload, agentName string, wantAgent bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	show := func(msg string) {
		if msg != "" && msg != last {
			p.status("%s", msg)
			last = msg
		}
	}
	rolls, _ := rollsPods(w, p.Remedy)
	for {
		cur, err := getWorkload(ctx, p.Client, w.kind, w.meta.GetNamespace(), w.meta.GetName())
		if err == nil {
			msg, done, serr := rolloutStatus(cur)
			if serr != nil {
				return fmt.Errorf("%s: %w", w.ref(), serr)
			}
			show(msg)
			podsOK, podMsg, perr := true, "", error(nil)
			if rolls {
				podsOK, podMsg, perr = p.podsState(ctx, cur, agentName, wantAgent)
			}
			if perr != nil {
				return fmt.Errorf("%s: the rollout cannot finish: %w", w.ref(), perr)
			}
			if done && podsOK {
				return nil
			}
			if done {
				show(podMsg)
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timed out after %s waiting for the rollout of %s (last status: %s); see %s and its pods", timeout, w.ref(), strings.TrimSuffix(last, "..."), p.Remedy.Kubectl("describe", w.kind.Short(w.meta.GetName())))
			}
			return ctx.Err()
		case <-time.After(p.pollInterval()):
		}
	}
}

// waitEphemeral waits until the ephemeral agent of a pod runs.
func (p *Patcher) waitEphemeral(ctx context.Context, ns, pod, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		cur, err := p.Client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err == nil {
			for _, st := range cur.Status.EphemeralContainerStatuses {
				if st.Name != name {
					continue
				}
				if st.State.Running != nil {
					return nil
				}
				if t := st.State.Terminated; t != nil {
					return fmt.Errorf("pod/%s: ephemeral container %q exited with code %d: %s", pod, name, t.ExitCode, firstLine(t.Reason+" "+t.Message))
				}
				if msg := containerProblem(cur, st); msg != "" {
					return errors.New(msg)
				}
				if w := st.State.Waiting; w != nil && w.Reason != last {
					p.status("Waiting for ephemeral container %q in pod/%s: %s...", name, pod, w.Reason)
					last = w.Reason
				}
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timed out after %s waiting for ephemeral container %q in pod/%s to run", timeout, name, pod)
			}
			return ctx.Err()
		case <-time.After(p.pollInterval()):
		}
	}
}
