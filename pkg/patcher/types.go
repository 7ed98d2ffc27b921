// Package patcher is the engine of "kubectl devpatch": it injects the
// devagent sidecar into a workload's pod template by server-side apply under
// a field manager of its own, removes it again with an empty apply by the
// same manager, and, for bare pods, adds the agent as an ephemeral container.
//
// It has no cobra or pflag dependency: the command fills a Config and hands
// it a kubernetes.Interface. The apply configurations are built by pure
// functions (PodTemplate, AgentContainer, AgentSecurityContext, ...) so that
// the applied object is the same on every run: a re-run causes no rollout.
package patcher

import (
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/version"
)

// Kind is a kind of object devpatch works on.
type Kind string

// The kinds devpatch supports.
const (
	KindDeployment  Kind = "Deployment"
	KindStatefulSet Kind = "StatefulSet"
	KindDaemonSet   Kind = "DaemonSet"
	KindReplicaSet  Kind = "ReplicaSet"
	KindPod         Kind = "Pod"
	// KindCronJob is patched in spec.jobTemplate.spec.template: the Jobs it
	// starts from then on carry the agent (see JobTemplate).
	KindCronJob Kind = "CronJob"
	// KindJob cannot change its pod template: its running pods get the
	// agent as an ephemeral container, as a bare pod does.
	KindJob Kind = "Job"
)

// Kinds lists the supported kinds, workloads first.
var Kinds = []Kind{KindDeployment, KindStatefulSet, KindDaemonSet, KindReplicaSet, KindCronJob, KindJob, KindPod}

// KindNames is the sentence that lists the supported kinds, for errors.
const KindNames = "deployments, statefulsets, daemonsets, replicasets, cronjobs, jobs and pods"

// KindForGroupKind returns the supported kind of an API group and kind.
func KindForGroupKind(group, kind string) (Kind, bool) {
	for _, k := range Kinds {
		if string(k) == kind && k.Group() == group {
			return k, true
		}
	}
	return "", false
}

// Group is the kind's API group.
func (k Kind) Group() string {
	switch k {
	case KindPod:
		return ""
	case KindCronJob, KindJob:
		return "batch"
	}
	return "apps"
}

// APIVersion is the kind's group/version, as in an owner reference.
func (k Kind) APIVersion() string {
	switch k.Group() {
	case "":
		return "v1"
	case "batch":
		return "batch/v1"
	}
	return "apps/v1"
}

// TemplatePath is the field path of the kind's pod template
// (spec.template; a CronJob's spec.jobTemplate.spec.template), or nil for
// kinds whose pods cannot change through a template (pods and Jobs).
func (k Kind) TemplatePath() []string {
	switch k {
	case KindPod, KindJob:
		return nil
	case KindCronJob:
		return []string{"spec", "jobTemplate", "spec", "template"}
	}
	return []string{"spec", "template"}
}

// Ephemeral is whether the kind gets the agent as an ephemeral container
// (a pod, or the running pods of a Job).
func (k Kind) Ephemeral() bool { return k == KindPod || k == KindJob }

// Resource is the kind's plural resource name.
func (k Kind) Resource() string { return strings.ToLower(string(k)) + "s" }

// GroupResource is how API errors name the kind, e.g. "deployments.apps".
func (k Kind) GroupResource() string {
	if k.Group() == "" {
		return k.Resource()
	}
	return k.Resource() + "." + k.Group()
}

// Ref names an object of the kind as kubectl prints it, e.g. "deployment.apps/demo".
func (k Kind) Ref(name string) string {
	s := strings.ToLower(string(k))
	if k.Group() != "" {
		s += "." + k.Group()
	}
	return s + "/" + name
}

// Short names an object the way a user types it, e.g. "deploy/demo".
func (k Kind) Short(name string) string {
	short := map[Kind]string{KindDeployment: "deploy", KindStatefulSet: "sts", KindDaemonSet: "ds", KindReplicaSet: "rs", KindPod: "pod",
		KindCronJob: "cronjob", KindJob: "job"}
	return short[k] + "/" + name
}

// Mode is how the agent gets access to the app's files through /proc/<pid>/root.
type Mode string

// The access modes; see AgentSecurityContext.
const (
	ModeAuto     Mode = "auto"
	ModeSameUser Mode = "same-user"
	ModeRoot     Mode = "root"
	ModePtrace   Mode = "ptrace"
)

// Modes lists the values of --mode.
var Modes = []Mode{ModeAuto, ModeSameUser, ModeRoot, ModePtrace}

// ParseMode checks a --mode value.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("--mode must be one of auto, same-user, root, ptrace, not %q", s)
}

// DryRun is kubectl's --dry-run strategy.
type DryRun int

// The dry-run strategies, as kubectl's cmdutil.DryRunStrategy.
const (
	DryRunNone DryRun = iota
	DryRunClient
	DryRunServer
)

// Defaults. What the agent must agree on (annotations, the Secret's name,
// the key folder, the agent's path) is in pkg/wire.
const (
	DefaultFieldManager = "devpatch"
	DefaultImageRepo    = "ghcr.io/kubectl-dev/devagent"
	// ImageEnv overrides the default agent image.
	ImageEnv = "KUBECTL_DEV_AGENT_IMAGE"
)

// Labels and annotations of devpatch's own that the agent never reads.
const (
	DefaultContainerAnnotKey  = "kubectl.kubernetes.io/default-container"
	LabelManagedBy            = "app.kubernetes.io/managed-by"
	secretManagedByLabelValue = "kubectl-devpatch"
)

// DefaultImage is the agent image of the plugin's own version.
func DefaultImage() string { return DefaultImageRepo + ":" + version.Version }

// Config is one devpatch run.
type Config struct {
	Namespace string
	Kind      Kind
	Name      string
	// TargetContainer is -c; empty selects the default container.
	TargetContainer string
	// AgentContainer is the sidecar's name (--container-name).
	AgentContainer string
	Image          string
	Mode           Mode
	FieldManager   string
	ForceConflicts bool
	DryRun         DryRun
	// Diff computes the change to the live pod template.
	Diff bool
	Wait bool
	// Timeout bounds the wait.
	Timeout time.Duration
	// AuthorizedKeys are the public keys (authorized_keys lines) to let in.
	AuthorizedKeys []string
	// Supervise wraps the app container's command in the agent's
	// supervisor (see supervise.go); SuperviseCommand is the app's command
	// line when neither the spec nor the image configuration names one.
	Supervise        bool
	SuperviseCommand []string
}

// ValidateFieldManager refuses field managers that other tools treat as
// their own: Flux takes over the fields of any manager whose name starts
// with "kubectl" (and so would roll devpatch's changes back).
func ValidateFieldManager(name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("--field-manager must not be empty")
	}
	if strings.HasPrefix(strings.ToLower(name), "kubectl") {
		return fmt.Errorf("--field-manager %q starts with \"kubectl\": Flux treats such managers as manual kubectl edits and rolls their fields back; use a name of its own such as %q", name, DefaultFieldManager)
	}
	if name == "before-first-apply" {
		return fmt.Errorf("--field-manager %q is reserved by Flux; use a name of its own such as %q", name, DefaultFieldManager)
	}
	return nil
}

// PullPolicy is Always for dev builds, whose tag ("...-dev") is reused by
// every build, and IfNotPresent for released, immutable tags and digests.
func PullPolicy(image string) string {
	if strings.Contains(image, "@") {
		return "IfNotPresent"
	}
	tag := ""
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		tag = image[i+1:]
	}
	if tag == "" || tag == "latest" || strings.HasSuffix(tag, "-dev") {
		return "Always"
	}
	return "IfNotPresent"
}

// ImageVersion is the version recorded for an agent image: its tag, or the
// plugin's version when the image has none.
func ImageVersion(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[i+1:]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return "latest"
}
