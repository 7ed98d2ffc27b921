package patcher

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
	"io"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
)

// Patcher runs devpatch against a cluster.
type Patcher struct {
	Client kubernetes.Interface
	// Status receives progress lines (the command's stderr); may be nil.
	Status io.Writer
	// Warn receives warnings; may be nil (then they go to Status).
	Warn func(string)
	// PollInterval is how often waits look again (default 1s).
	PollInterval time.Duration
	// ImageConfig reads an image's entrypoint and cmd (--supervise);
	// RegistryImageConfig when nil.
	ImageConfig ImageConfigFunc
	// Remedy holds the user's -n, --context and --kubeconfig, repeated in
	// the commands that errors and warnings suggest.
	Remedy kubectlcmd.Flags
}

// Result is what a patch did or would do.
type Result struct {
	Kind Kind
	Name string
	// Ref names the object, e.g. "deployment.apps/demo".
	Ref    string
	Target string
	Mode   Mode
	// Applied is the apply configuration (or, for a pod, the ephemeral
	// container patch) as sent, for -o yaml|json.
	Applied map[string]any
	// Diff is the change to the live pod template (Config.Diff).
	Diff string
	// Changed is whether the pod template changed (so pods are replaced).
	Changed bool
	// Secret is "created", "updated" or "unchanged" (empty for client dry-run).
	Secret string
	// Ephemeral is true for a bare pod or a Job; Reused when its agent was
	// already there.
	Ephemeral, Reused bool
	// Pods are the pods of a Job that run the ephemeral agent.
	Pods []string
	// Waited is true when the rollout was waited for and finished.
	Waited bool
}

func (p *Patcher) status(format string, args ...any) {
	if p.Status != nil {
		fmt.Fprintf(p.Status, format+"\n", args...)
	}
}

func (p *Patcher) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.Warn != nil {
		p.Warn(msg)
		return
	}
	p.status("Warning: %s", msg)
}

func (p *Patcher) pollInterval() time.Duration {
	if p.PollInterval > 0 {
		return p.PollInterval
	}
	return time.Second
}

func (cfg Config) dryRunOpt() []string {
	if cfg.DryRun == DryRunServer {
		return []string{metav1.DryRunAll}
	}
	return nil
}

func (cfg Config) withDefaults() Config {
	if cfg.AgentContainer == "" {
		cfg.AgentContainer = wire.DefaultAgentContainer
	}
	if cfg.FieldManager == "" {
		cfg.FieldManager = DefaultFieldManager
	}
	if cfg.Image == "" {
		cfg.Image = DefaultImage()
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeAuto
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	return cfg
}

// plan is what devpatch decided for one object before changing anything.
type plan struct {
	w    *workload
	spec AgentSpec
}

// prepare reads the object and decides the target, the mode and the agent
// spec, refusing what cannot work.
func (p *Patcher) prepare(ctx context.Context, cfg Config) (*plan, error) {
	w, err := getWorkload(ctx, p.Client, cfg.Kind, cfg.Namespace, cfg.Name)
	if err != nil {
		return nil, err
	}
	ref := w.ref()
	if cfg.Kind == KindReplicaSet {
		if owner := metav1.GetControllerOf(w.meta); owner != nil {
			return nil, fmt.Errorf("%s is managed by %s/%s, which would undo the change: patch it instead (%s)", ref, strings.ToLower(owner.Kind), owner.Name, p.Remedy.Command("devpatch", strings.ToLower(owner.Kind)+"/"+owner.Name))
		}
	}
	if cfg.Supervise && (cfg.Kind == KindCronJob || cfg.Kind == KindJob) {
		return nil, fmt.Errorf("%s: --supervise works on deployments, statefulsets, daemonsets and replicasets, not on %s: patch without it", ref, strings.ToLower(string(cfg.Kind))+"s")
	}
	requested := cfg.TargetContainer
	if rec := w.template.Annotations[wire.AnnotationTarget]; requested == "" && rec != "" && rec != cfg.AgentContainer {
		for _, c := range w.template.Spec.Containers {
			if c.Name == rec {
				// Patched before: the app container devpatch recorded.
				requested = rec
			}
		}
	}
	target, warnings, err := SelectContainer(w.template.Spec.Containers, w.template.Annotations, requested, ref)
	if err != nil {
		return nil, err
	}
	for _, wmsg := range warnings {
		p.warn("%s", wmsg)
	}
	if target == cfg.AgentContainer {
		return nil, fmt.Errorf("container %q of %s is the agent's own name: choose the app container with -c, or another agent name with --container-name", target, ref)
	}
	if !cfg.Kind.Ephemeral() {
		own, err := AnalyzeOwnership(w.meta, cfg.FieldManager, cfg.Kind.TemplatePath()...)
		if err != nil {
			return nil, err
		}
		for _, c := range w.template.Spec.Containers {
			if c.Name == cfg.AgentContainer && !own.HasContainer(c.Name) {
				return nil, fmt.Errorf("%s already has a container %q that field manager %q did not add: choose another name with --container-name", ref, c.Name, cfg.FieldManager)
			}
		}
		for _, c := range w.template.Spec.InitContainers {
			if c.Name == cfg.AgentContainer && !own.HasContainer(c.Name) {
				return nil, fmt.Errorf("%s already has an init container %q that field manager %q did not add: choose another name with --container-name", ref, c.Name, cfg.FieldManager)
			}
		}
	}
	var container *corev1.Container
	for i := range w.template.Spec.Containers {
		if w.template.Spec.Containers[i].Name == target {
			container = &w.template.Spec.Containers[i]
		}
	}
	id := EffectiveIdentity(&w.template.Spec, container)
	mode, warnings, err := SelectMode(cfg.Mode, target, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if err := p.checkPodSecurity(ctx, cfg, mode, target, id); err != nil {
		return nil, err
	}
	for _, wmsg := range warnings {
		p.warn("%s", wmsg)
	}
	if id.ReadOnlyRootFS {
		p.warn("container %q of %s has readOnlyRootFilesystem: devsync cannot write to its root filesystem, only to its writable volumes", target, ref)
	}
	spec := AgentSpec{
		Name:       cfg.AgentContainer,
		Image:      cfg.Image,
		Target:     target,
		Mode:       mode,
		App:        id,
		SecretName: wire.SecretName(cfg.Name),
		Sidecar:    cfg.Kind == KindCronJob,
	}
	supervised := w.template.Annotations[AnnotationSupervise] != "" && w.template.Annotations[wire.AnnotationTarget] == target
	if supervised && !cfg.Supervise && !cfg.Kind.Ephemeral() {
		p.warn("%s: container %q runs under the agent's supervisor (kubectl devpatch --supervise): kept; kubectl devpatch --remove undoes it", ref, target)
	}
	if (cfg.Supervise || supervised) && !cfg.Kind.Ephemeral() {
		if spec.Supervise, err = p.superviseSpec(ctx, cfg, w, container); err != nil {
			return nil, err
		}
	}
	return &plan{w: w, spec: spec}, nil
}

func (p *Patcher) checkPodSecurity(ctx context.Context, cfg Config, mode Mode, target string, id AppIdentity) error {
	ns, err := p.Client.CoreV1().Namespaces().Get(ctx, cfg.Namespace, metav1.GetOptions{})
	if err != nil {
		p.warn("cannot read namespace %q (%v): its Pod Security level was not checked", cfg.Namespace, firstLine(err.Error()))
		return nil
	}
	return CheckPodSecurity(cfg.Namespace, ns.Labels[PodSecurityEnforceLabel], mode, cfg.Mode, target, id)
}

// Patch injects the agent into the object of cfg (a workload's pod
// template, or a bare pod's ephemeral containers).
func (p *Patcher) Patch(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := ValidateFieldManager(cfg.FieldManager); err != nil {
		return nil, err
	}
	if cfg.Kind == KindJob {
		// Nothing to patch in a Job without a running pod: say so first,
		// in one line (before the warnings about the pods' spec).
		if err := p.checkJobRuns(ctx, cfg); err != nil {
			return nil, err
		}
	}
	pl, err := p.prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	switch cfg.Kind {
	case KindPod:
		return p.patchPod(ctx, cfg, pl)
	case KindJob:
		return p.patchJob(ctx, cfg, pl)
	}
	w, spec := pl.w, pl.spec
	ref := w.ref()
	res := &Result{Kind: cfg.Kind, Name: cfg.Name, Ref: ref, Target: spec.Target, Mode: spec.Mode}
	ac, err := WorkloadApplyConfig(cfg.Kind, cfg.Namespace, cfg.Name, PodTemplate(spec))
	if err != nil {
		return nil, err
	}
	if res.Applied, err = ToMap(ac); err != nil {
		return nil, err
	}
	opts := metav1.ApplyOptions{FieldManager: cfg.FieldManager, Force: cfg.ForceConflicts}
	if spec.Supervise != nil && spec.Supervise.Original.Command != nil {
		// Taking over the user's command (recorded, restored by --remove)
		// conflicts with its manager by design.
		opts.Force = true
	}

	// A server-side dry run tells what the template becomes (and any conflict).
	var preview *workload
	// (A client dry run sends nothing, unless --diff asks for the server's view.)
	if cfg.Diff || cfg.DryRun == DryRunServer {
		dry := opts
		dry.DryRun = []string{metav1.DryRunAll}
		preview, err = applyWorkload(ctx, p.Client, cfg.Kind, cfg.Namespace, ac, dry)
		if err != nil {
			if cfg.DryRun == DryRunClient && !apierrors.IsConflict(err) && !apierrors.IsForbidden(err) {
				preview = nil // client dry-run: the server's opinion is a bonus
			} else {
				return nil, translateApplyError(err, ref)
			}
		}
		if preview != nil {
			res.Changed = !reflect.DeepEqual(w.template, preview.template)
			if cfg.Diff {
				if res.Diff, err = UnifiedDiff(ref+" "+strings.Join(cfg.Kind.TemplatePath(), "."), w.template, preview.template); err != nil {
					return nil, err
				}
			}
		}
	}
	if scaledToZero(w) {
		p.warn("%s is scaled to 0: patched, but no pod runs the agent until it is scaled up", ref)
	}
	if rolls, why := rollsPods(w, p.Remedy); !rolls && why != "" {
		p.warn("%s", why)
	}
	if cfg.DryRun == DryRunClient {
		return res, nil
	}

	created, action, err := p.ensureSecret(ctx, cfg, w)
	if err != nil {
		return nil, err
	}
	res.Secret = action
	opts.DryRun = cfg.dryRunOpt()
	after, err := applyWorkload(ctx, p.Client, cfg.Kind, cfg.Namespace, ac, opts)
	if err != nil {
		if created && cfg.DryRun == DryRunNone {
			_ = p.Client.CoreV1().Secrets(cfg.Namespace).Delete(ctx, spec.SecretName, metav1.DeleteOptions{})
		}
		return nil, translateApplyError(err, ref)
	}
	if cfg.DryRun == DryRunServer {
		res.Changed = !reflect.DeepEqual(w.template, after.template)
		return res, nil
	}
	res.Changed = !reflect.DeepEqual(w.template, after.template)
	switch {
	case cfg.Kind == KindCronJob && res.Changed:
		p.status("%s: job template patched (agent %q as a native sidecar, target container %q, mode %s): the Jobs it starts from now on carry the agent; Jobs already running do not (%s adds it to their pods)", ref, spec.Name, spec.Target, spec.Mode, p.Remedy.Command("devpatch", "job/NAME"))
	case cfg.Kind == KindCronJob:
		p.status("%s: already patched, no change", ref)
	case res.Changed:
		p.status("%s: pod template patched (agent %q, target container %q, mode %s)", ref, spec.Name, spec.Target, spec.Mode)
	default:
		p.status("%s: already patched, no change (no rollout)", ref)
	}
	if cfg.Wait && cfg.Kind != KindCronJob && !scaledToZero(after) {
		if err := p.waitRollout(ctx, after, spec.Name, true, cfg.Timeout); err != nil {
			return res, err
		}
		res.Waited = true
	}
	return res, nil
}

func scaledToZero(w *workload) bool {
	v := reflect.ValueOf(w.obj).Elem().FieldByName("Spec")
	if !v.IsValid() {
		return false
	}
	r := v.FieldByName("Replicas")
	return r.IsValid() && r.Kind() == reflect.Pointer && !r.IsNil() && r.Elem().Int() == 0
}

// ensureSecret creates the agent's Secret, or adds the user's keys to the
// one there (keeping the other developers' keys and the host key). It
// returns whether it created it, and "created", "updated" or "unchanged".
func (p *Patcher) ensureSecret(ctx context.Context, cfg Config, w *workload) (bool, string, error) {
	secrets := p.Client.CoreV1().Secrets(cfg.Namespace)
	name := wire.SecretName(cfg.Name)
	created, action := false, "unchanged"
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			ak, _, err := keys.MergeAuthorizedKeys(nil, cfg.AuthorizedKeys...)
			if err != nil {
				return err
			}
			hk, err := keys.NewHostKey(cfg.Name)
			if err != nil {
				return err
			}
			s := AgentSecret(cfg.Namespace, name, w.ownerReference(), w.ref(), hk, ak)
			if _, err := secrets.Create(ctx, s, metav1.CreateOptions{FieldManager: cfg.FieldManager, DryRun: cfg.dryRunOpt()}); err != nil {
				return err
			}
			created, action = true, "created"
			return nil
		}
		if err != nil {
			return err
		}
		if cur.Labels[LabelManagedBy] != secretManagedByLabelValue {
			return fmt.Errorf("secret/%s exists in namespace %q and was not created by devpatch (no label %s=%s): delete or rename it", name, cfg.Namespace, LabelManagedBy, secretManagedByLabelValue)
		}
		upd := cur.DeepCopy()
		if upd.Data == nil {
			upd.Data = map[string][]byte{}
		}
		changed := false
		if _, err := keys.CheckHostKey(upd.Data[keys.HostKeyFile]); err != nil {
			hk, err := keys.NewHostKey(cfg.Name)
			if err != nil {
				return err
			}
			upd.Data[keys.HostKeyFile], upd.Data[keys.HostPublicKeyFile] = hk.PrivatePEM, []byte(hk.PublicLine+"\n")
			p.warn("secret/%s had no usable host key: a new one was generated (ssh clients that pinned the old one will complain)", name)
			changed = true
		}
		ak, added, err := keys.MergeAuthorizedKeys(upd.Data[keys.AuthorizedKeysFile], cfg.AuthorizedKeys...)
		if err != nil {
			return err
		}
		if added {
			upd.Data[keys.AuthorizedKeysFile] = ak
			changed = true
		}
		owner := w.ownerReference()
		hasOwner := false
		for _, o := range upd.OwnerReferences {
			if o.UID == owner.UID {
				hasOwner = true
			}
		}
		if !hasOwner {
			// A Secret left by an earlier object of the same name.
			upd.OwnerReferences = []metav1.OwnerReference{owner}
			changed = true
		}
		if !changed {
			return nil
		}
		if _, err := secrets.Update(ctx, upd, metav1.UpdateOptions{FieldManager: cfg.FieldManager, DryRun: cfg.dryRunOpt()}); err != nil {
			return err
		}
		action = "updated"
		return nil
	})
	if apierrors.IsForbidden(err) {
		return false, "", forbiddenError(err)
	}
	if err != nil {
		return false, "", fmt.Errorf("secret/%s: %w", name, err)
	}
	return created, action, nil
}

// patchPod adds the agent to a bare pod as an ephemeral container, or
// reuses the one already there.
func (p *Patcher) patchPod(ctx context.Context, cfg Config, pl *plan) (*Result, error) {
	pod := pl.w.obj.(*corev1.Pod)
	spec := pl.spec
	ref := pl.w.ref()
	res := &Result{Kind: KindPod, Name: pod.Name, Ref: ref, Target: spec.Target, Mode: spec.Mode, Ephemeral: true}
	ec, patch := ephemeralPatch(spec)
	var err error
	if res.Applied, err = ToMap(patch); err != nil {
		return nil, err
	}
	if owner := metav1.GetControllerOf(pod); owner != nil {
		if owner.Kind == "Job" {
			p.warn("%s belongs to job/%s: the agent goes away with the pod; %s adds it to every running pod of the Job", ref, owner.Name, p.Remedy.Command("devpatch", "job/"+owner.Name))
		} else {
			p.warn("%s belongs to %s/%s: the agent goes away when the pod is replaced; patch the %s to keep it", ref, strings.ToLower(owner.Kind), owner.Name, strings.ToLower(owner.Kind))
		}
	}
	reused, err := existingEphemeral(pod, spec.Name, ref)
	if err != nil {
		return nil, err
	}
	if reused {
		res.Reused = true
		p.status("%s already has the ephemeral agent %q: reusing it", ref, spec.Name)
		if cfg.DryRun == DryRunNone && cfg.Wait {
			if err := p.waitEphemeral(ctx, cfg.Namespace, pod.Name, spec.Name, cfg.Timeout); err != nil {
				return res, err
			}
			res.Waited = true
		}
		return res, nil
	}
	if cfg.Diff {
		after := append(append([]corev1.EphemeralContainer(nil), pod.Spec.EphemeralContainers...), ec)
		if res.Diff, err = UnifiedDiff(ref+" spec.ephemeralContainers", pod.Spec.EphemeralContainers, after); err != nil {
			return nil, err
		}
	}
	res.Changed = true
	if cfg.DryRun == DryRunClient {
		return res, nil
	}
	_, action, err := p.ensureSecret(ctx, cfg, pl.w)
	if err != nil {
		return nil, err
	}
	res.Secret = action
	if err := p.sendEphemeral(ctx, cfg, pod, spec, patch, ref); err != nil {
		return nil, err
	}
	if cfg.DryRun == DryRunServer {
		return res, nil
	}
	p.status("%s: ephemeral agent %q added (target container %q, mode %s); ephemeral containers cannot be removed: it stays until the pod is deleted", ref, spec.Name, spec.Target, spec.Mode)
	if cfg.Wait {
		if err := p.waitEphemeral(ctx, cfg.Namespace, pod.Name, spec.Name, cfg.Timeout); err != nil {
			return res, err
		}
		res.Waited = true
	}
	return res, nil
}

// ephemeralPatch is the agent as an ephemeral container, and the patch of
// the pods/ephemeralcontainers subresource that adds it.
func ephemeralPatch(spec AgentSpec) (corev1.EphemeralContainer, map[string]any) {
	ec := EphemeralAgent(spec)
	return ec, map[string]any{"spec": map[string]any{"ephemeralContainers": []corev1.EphemeralContainer{ec}}}
}

// existingEphemeral is whether pod already has the ephemeral agent name;
// one that has exited is an error (it can be neither restarted nor removed).
func existingEphemeral(pod *corev1.Pod, name, ref string) (bool, error) {
	for _, existing := range pod.Spec.EphemeralContainers {
		if existing.Name != name {
			continue
		}
		for _, st := range pod.Status.EphemeralContainerStatuses {
			if st.Name == name && st.State.Terminated != nil {
				return false, fmt.Errorf("%s: its ephemeral container %q has exited (%s) and cannot be restarted or removed: add another with --container-name %s-2, or delete the pod", ref, name, st.State.Terminated.Reason, name)
			}
		}
		return true, nil
	}
	return false, nil
}

// sendEphemeral adds the ephemeral agent to pod and records it in the
// pod's annotations.
func (p *Patcher) sendEphemeral(ctx context.Context, cfg Config, pod *corev1.Pod, spec AgentSpec, patch map[string]any, ref string) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = p.Client.CoreV1().Pods(cfg.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, body,
		metav1.PatchOptions{FieldManager: cfg.FieldManager, DryRun: cfg.dryRunOpt()}, "ephemeralcontainers")
	if err != nil {
		if se, ok := err.(apierrors.APIStatus); ok && apierrors.IsNotFound(err) && (se.Status().Details == nil || se.Status().Details.Name == "") {
			return fmt.Errorf("this cluster does not support ephemeral containers (the pods/ephemeralcontainers subresource is not found): %s cannot get the agent without a restart; patch its workload instead", ref)
		}
		if apierrors.IsForbidden(err) {
			return forbiddenError(err)
		}
		return fmt.Errorf("adding the ephemeral agent to %s: %w", ref, err)
	}
	// Record the agent on the pod, as on a pod template (for --list and devssh).
	annot := corev1ac.Pod(pod.Name, cfg.Namespace).WithAnnotations(spec.Annotations())
	if _, err := p.Client.CoreV1().Pods(cfg.Namespace).Apply(ctx, annot, metav1.ApplyOptions{FieldManager: cfg.FieldManager, DryRun: cfg.dryRunOpt()}); err != nil {
		p.warn("%s: could not record the agent in its annotations: %v", ref, firstLine(err.Error()))
	}
	return nil
}
