package agentconn

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/jobstatus"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// Target is a pod with a ready agent, and what the client needs to reach it.
type Target struct {
	Namespace string
	Pod       *corev1.Pod
	// Agent is the agent container's name.
	Agent string
	// Container is the app container and ContainerID its runtime ID (64 hex).
	Container   string
	ContainerID string
	// SecretName holds the agent's host key; HostKey is the key itself.
	SecretName string
	HostKey    ssh.PublicKey
}

// Ref names the pod as kubectl does.
func (t *Target) Ref() string { return "pod/" + t.Pod.Name }

// Env is what the client sends so that the agent finds the app: its
// container ID and name, and the view (app or agent).
func (t *Target) Env(view string) []string {
	env := []string{wire.EnvContainerName + "=" + t.Container}
	if t.ContainerID != "" {
		env = append(env, wire.EnvContainerID+"="+t.ContainerID)
	}
	if view != "" {
		env = append(env, wire.EnvTarget+"="+view)
	}
	return env
}

// NotPatchedError is a workload without the agent.
type NotPatchedError struct {
	Ref string
	// Remedy is the devpatch command to run, with the user's flags
	// (default: "kubectl devpatch REF").
	Remedy string
}

func (e *NotPatchedError) Error() string {
	remedy := e.Remedy
	if remedy == "" {
		remedy = kubectlcmd.Flags{}.Command("devpatch", e.Ref)
	}
	return fmt.Sprintf("%s has no devagent: run %q first", e.Ref, remedy)
}

// NoRunningPodError is a Job none of whose pods runs: there is nothing to
// connect to, and waiting does not help.
type NoRunningPodError struct {
	Ref string
	// What says what its pods did ("1 succeeded").
	What string
}

func (e *NoRunningPodError) Error() string {
	return fmt.Sprintf("%s has no running pod (%s): devssh and devsync reach a Job only while one of its pods runs", e.Ref, e.What)
}

// ResolveOptions tune Resolve.
type ResolveOptions struct {
	// Ref is how the user named the object (e.g. "deploy/demo"), for messages.
	Ref string
	// Container overrides the app container recorded by devpatch (-c).
	Container string
	// Timeout is how long to wait for a pod whose agent is ready.
	Timeout time.Duration
	// Remedy holds the user's -n, --context and --kubeconfig, for the
	// commands errors suggest.
	Remedy kubectlcmd.Flags
}

func (o ResolveOptions) notPatched() error {
	return &NotPatchedError{Ref: o.Ref, Remedy: o.Remedy.Command("devpatch", o.Ref)}
}

// Resolve finds a running pod of obj (a pod or a workload) whose agent is
// ready, waiting up to o.Timeout, and reads the agent's host key.
func Resolve(ctx context.Context, client kubernetes.Interface, obj runtime.Object, o ResolveOptions) (*Target, error) {
	t, err := ResolvePod(ctx, client, obj, o)
	if err != nil {
		return nil, err
	}
	if err := t.ReadHostKey(ctx, client); err != nil {
		return nil, err
	}
	return t, nil
}

// ResolvePod is Resolve without reading the host key: t.HostKey is nil and
// t.SecretName names the Secret that holds it (see ReadHostKey). A
// workload costs two requests (the object was read by the caller's
// builder), a pod one: the pod list, or the pod.
func ResolvePod(ctx context.Context, client kubernetes.Interface, obj runtime.Object, o ResolveOptions) (*Target, error) {
	var pick func(ctx context.Context) (*corev1.Pod, error)
	switch v := obj.(type) {
	case *corev1.Pod:
		ns, name := v.Namespace, v.Name
		pick = func(ctx context.Context) (*corev1.Pod, error) {
			p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			if agentName(p) == "" {
				return nil, o.notPatched()
			}
			if agentReady(p) {
				return p, nil
			}
			return nil, nil
		}
	case *batchv1.CronJob:
		return nil, fmt.Errorf("%s: a CronJob has no pods of its own: name one of its Jobs (kubectl get jobs%s), or start one: kubectl create job%s --from=cronjob/%s NAME",
			o.Ref, nsFlags(o.Remedy), nsFlags(o.Remedy), v.Name)
	case *batchv1.Job:
		pick = o.pickJobPod(client, v)
	default:
		if tpl := podTemplate(obj); tpl != nil && tpl.Annotations[wire.AnnotationMode] == "" {
			return nil, o.notPatched()
		}
		ns, sel, err := selectorsForObject(obj)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.Ref, err)
		}
		pick = func(ctx context.Context) (*corev1.Pod, error) {
			pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
			if err != nil {
				return nil, err
			}
			var ready []*corev1.Pod
			for i := range pods.Items {
				if p := &pods.Items[i]; agentReady(p) {
					ready = append(ready, p)
				}
			}
			if len(ready) == 0 {
				return nil, nil
			}
			// The newest pod: after a devpatch rollout, the patched one.
			sort.Slice(ready, func(i, j int) bool {
				return ready[j].CreationTimestamp.Before(&ready[i].CreationTimestamp)
			})
			return ready[0], nil
		}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	var pod *corev1.Pod
	var last error
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := pick(ctx)
		switch {
		case terminal(err):
			return false, err
		case err != nil:
			last = err
			return false, nil //nolint:nilerr // a transient error: kept in last for the timeout's message, and polled again
		}
		pod = p
		return p != nil, nil
	})
	if err != nil {
		if terminal(err) {
			return nil, err
		}
		if last != nil {
			return nil, fmt.Errorf("%s: no running pod with a ready devagent within %s: %w", o.Ref, timeout, last)
		}
		return nil, fmt.Errorf("%s: no running pod with a ready devagent within %s (is it patched? see %s; raise --pod-running-timeout to wait longer)", o.Ref, timeout, o.Remedy.Command("devpatch", "--list"))
	}
	t := &Target{Namespace: pod.Namespace, Pod: pod, Agent: agentName(pod)}
	t.Container = o.Container
	if t.Container == "" {
		t.Container = pod.Annotations[wire.AnnotationTarget]
	}
	if t.Container == "" {
		return nil, fmt.Errorf("%s: the pod does not record the app container (annotation %s); give it with -c", t.Ref(), wire.AnnotationTarget)
	}
	found := false
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == t.Container {
			found = true
			t.ContainerID = ContainerID(cs.ContainerID)
		}
	}
	if !found {
		var names []string
		for _, c := range pod.Spec.Containers {
			if c.Name != t.Agent {
				names = append(names, c.Name)
			}
		}
		if len(names) == 0 {
			for _, cs := range pod.Status.ContainerStatuses {
				if cs.Name != t.Agent {
					names = append(names, cs.Name)
				}
			}
		}
		return nil, fmt.Errorf("container %q not found in %s; its containers are: %s", t.Container, t.Ref(), strings.Join(names, ", "))
	}
	t.SecretName = secretName(pod, t.Agent)
	return t, nil
}

// ReadHostKey reads the agent's host key from t.SecretName into t.HostKey
// (one request).
func (t *Target) ReadHostKey(ctx context.Context, client kubernetes.Interface) error {
	k, err := readHostKey(ctx, client, t.Namespace, t.SecretName)
	if err != nil {
		return err
	}
	t.HostKey = k
	return nil
}

func readHostKey(ctx context.Context, client kubernetes.Interface, namespace, name string) (ssh.PublicKey, error) {
	sec, err := client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("reading secret/%s to pin the agent's host key: you need \"get\" on secrets in namespace %s (or use \"kubectl devssh config\" from someone who has it)", name, namespace)
		}
		return nil, fmt.Errorf("reading secret/%s to pin the agent's host key: %w", name, err)
	}
	k, err := HostKeyFromSecret(sec)
	if err != nil {
		return nil, fmt.Errorf("secret/%s: %w", name, err)
	}
	return k, nil
}

// HostKeyFromSecret reads the agent's public host key from its Secret.
func HostKeyFromSecret(sec *corev1.Secret) (ssh.PublicKey, error) {
	if line := sec.Data[keys.HostPublicKeyFile]; len(line) > 0 {
		pk, _, _, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			return nil, fmt.Errorf("%s is not a public key: %w", keys.HostPublicKeyFile, err)
		}
		return pk, nil
	}
	signer, err := keys.CheckHostKey(sec.Data[keys.HostKeyFile])
	if err != nil {
		return nil, err
	}
	return signer.PublicKey(), nil
}

// ContainerID strips the runtime prefix of a containerStatuses[].containerID.
func ContainerID(s string) string {
	if _, id, ok := strings.Cut(s, "://"); ok {
		return id
	}
	return s
}

func agentName(p *corev1.Pod) string {
	if n := p.Annotations[wire.AnnotationAgentContainer]; n != "" {
		return n
	}
	if p.Annotations[wire.AnnotationMode] != "" {
		return wire.DefaultAgentContainer
	}
	return ""
}

// agentReady: the pod runs, is not being deleted, and its agent container
// is ready (an ephemeral agent, which has no probe: running).
func agentReady(p *corev1.Pod) bool {
	name := agentName(p)
	if name == "" || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name {
			return cs.Ready
		}
	}
	// A native sidecar (a CronJob's Jobs): an init container that keeps running.
	for _, cs := range p.Status.InitContainerStatuses {
		if cs.Name == name {
			return cs.Ready
		}
	}
	for _, cs := range p.Status.EphemeralContainerStatuses {
		if cs.Name == name {
			return cs.State.Running != nil
		}
	}
	return false
}

// terminal is whether an error of a pod pick ends the wait at once.
func terminal(err error) bool {
	var np *NotPatchedError
	var nr *NoRunningPodError
	return errors.As(err, &np) || errors.As(err, &nr) || apierrors.IsNotFound(err) || apierrors.IsForbidden(err)
}

// pickJobPod picks the newest running pod of a Job whose agent is ready,
// as kubectl logs job/NAME picks one of its pods. A Job none of whose
// pods runs or is about to is a NoRunningPodError; running pods none of
// which has the agent (neither through a patched CronJob's template nor
// as an ephemeral container) a NotPatchedError.
func (o ResolveOptions) pickJobPod(client kubernetes.Interface, job *batchv1.Job) func(ctx context.Context) (*corev1.Pod, error) {
	ns, sel := job.Namespace, metav1.FormatLabelSelector(job.Spec.Selector)
	templated := job.Spec.Template.Annotations[wire.AnnotationMode] != ""
	return func(ctx context.Context) (*corev1.Pod, error) {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, err
		}
		var running []*corev1.Pod
		pending, withAgent := 0, 0
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil {
				continue
			}
			switch p.Status.Phase {
			case corev1.PodRunning:
				running = append(running, p)
				if agentName(p) != "" {
					withAgent++
				}
			case corev1.PodPending, "":
				pending++
			}
		}
		if len(running) == 0 && pending == 0 {
			cur, err := client.BatchV1().Jobs(ns).Get(ctx, job.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return nil, &NoRunningPodError{Ref: o.Ref, What: jobstatus.Describe(cur, 0)}
		}
		if len(running) > 0 && withAgent == 0 && !templated {
			return nil, o.notPatched()
		}
		sort.Slice(running, func(i, j int) bool {
			return running[j].CreationTimestamp.Before(&running[i].CreationTimestamp)
		})
		for _, p := range running {
			if agentReady(p) {
				return p, nil
			}
		}
		return nil, nil
	}
}

// nsFlags are the remedy's flags as one string with a leading space, or "".
func nsFlags(f kubectlcmd.Flags) string {
	c := f.String()
	if c == "" {
		return ""
	}
	return " " + c
}

// secretName is the Secret mounted into (or referenced by) the agent.
func secretName(p *corev1.Pod, agent string) string {
	for _, v := range p.Spec.Volumes {
		if v.Name == agent+"-keys" && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	for _, ec := range p.Spec.EphemeralContainers {
		if ec.Name != agent {
			continue
		}
		for _, e := range ec.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				return e.ValueFrom.SecretKeyRef.Name
			}
		}
	}
	if w := p.Annotations[wire.AnnotationSecretWorkload]; w != "" {
		if _, name, ok := strings.Cut(w, "/"); ok {
			return wire.SecretName(name)
		}
	}
	return wire.SecretName(p.Name)
}

func podTemplate(obj runtime.Object) *corev1.PodTemplateSpec {
	switch v := obj.(type) {
	case *appsv1.Deployment:
		return &v.Spec.Template
	case *appsv1.StatefulSet:
		return &v.Spec.Template
	case *appsv1.DaemonSet:
		return &v.Spec.Template
	case *appsv1.ReplicaSet:
		return &v.Spec.Template
	}
	return nil
}

// selectorsForObject is kubectl's polymorphichelpers.SelectorsForObject for
// the versions API servers serve today. That package pulls in kubectl's
// describers, logs and rollout code, whose initialisation every run of the
// plugins paid before its first request.
func selectorsForObject(obj runtime.Object) (string, labels.Selector, error) {
	var ns string
	var ls *metav1.LabelSelector
	switch t := obj.(type) {
	case *appsv1.Deployment:
		ns, ls = t.Namespace, t.Spec.Selector
	case *appsv1.StatefulSet:
		ns, ls = t.Namespace, t.Spec.Selector
	case *appsv1.DaemonSet:
		ns, ls = t.Namespace, t.Spec.Selector
	case *appsv1.ReplicaSet:
		ns, ls = t.Namespace, t.Spec.Selector
	case *batchv1.Job:
		ns, ls = t.Namespace, t.Spec.Selector
	case *corev1.ReplicationController:
		return t.Namespace, labels.SelectorFromSet(t.Spec.Selector), nil
	case *corev1.Service:
		if len(t.Spec.Selector) == 0 {
			return "", nil, fmt.Errorf("invalid service '%s': Service is defined without a selector", t.Name)
		}
		return t.Namespace, labels.SelectorFromSet(t.Spec.Selector), nil
	default:
		return "", nil, fmt.Errorf("selector for %T not implemented", obj)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return "", nil, fmt.Errorf("invalid label selector: %w", err)
	}
	return ns, sel, nil
}
