package patcher

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// AgentSpec is everything the injected fields depend on. The functions below
// turn it into apply configurations without any clock or randomness, so equal
// specs give byte-identical objects.
type AgentSpec struct {
	// Name is the agent container's name.
	Name  string
	Image string
	// Target is the app container the agent serves.
	Target string
	Mode   Mode
	// App is the target's identity (uid/gid and capabilities), for the
	// agent's security context.
	App AppIdentity
	// SecretName is the Secret with the agent's keys.
	SecretName string
	// Supervise, when set, wraps the app's command in the agent's
	// supervisor (kubectl devpatch --supervise).
	Supervise *SuperviseSpec
	// Sidecar runs the agent as a native sidecar, an init container with
	// restartPolicy Always (a CronJob's Jobs): the kubelet stops it when
	// the app's containers have ended, so that the Job completes. As a
	// plain container it would keep the pod, and the Job, running.
	Sidecar bool
}

// VolumeName is the name of the volume that holds the agent's keys.
func (s AgentSpec) VolumeName() string { return s.Name + "-keys" }

// Annotations are the pod-template annotations devpatch records.
func (s AgentSpec) Annotations() map[string]string {
	a := map[string]string{
		wire.AnnotationTarget:         s.Target,
		wire.AnnotationMode:           string(s.Mode),
		wire.AnnotationAgentVersion:   ImageVersion(s.Image),
		wire.AnnotationAgentContainer: s.Name,
	}
	if s.Supervise != nil {
		b, _ := json.Marshal(s.Supervise.Original)
		a[AnnotationSupervise] = string(b)
	}
	return a
}

// Args are the agent's command-line arguments.
func (s AgentSpec) Args() []string {
	return []string{"--target-container=" + s.Target, "--key-dir=" + wire.KeyMountPath}
}

// The agent's resources: a small request, and limits so that a runaway agent
// cannot take the node. Under contention the CPU is shared by requests, so
// the app (whatever it requests) comes before the agent's 10m. The CPU limit
// is two CPUs: devsync writes several files at once, and creating files is
// kernel work (inode and directory entry allocation) charged to the agent's
// cgroup; at 500m an initial sync of 10,000 files took twice as long as at
// one CPU, and several writers need more than one (docs/benchmarks.md).
//
// The memory limit is 1Gi although the agent itself stays below 40 MiB
// while it writes a 200 MB file: the kernel charges the page cache of the
// files the agent writes to the agent's cgroup. At a 256Mi limit, once the
// agent had written about 200 MB, every further write reclaimed the
// cgroup's cache and made the kernel's flusher write dirty pages back
// during the sync (14% of all CPU samples of a 10,000-file sync went to
// ext4 writeback then, none for tar in the app container, which has no
// limit). A limit there still must be: a namespace with a ResourceQuota on
// limits.memory refuses containers without one.
var (
	agentRequests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}
	agentLimits   = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")}
)

// AgentSecurityContext is the agent's security context in a mode:
//
//   - same-user: the app's uid and gid, no capabilities, no privilege
//     escalation, RuntimeDefault seccomp (passes Pod Security "restricted");
//   - root: uid 0 with the app's gid and the runtime's default capabilities
//     plus any the app adds, so that they are a superset of the app's
//     (passes "baseline");
//   - ptrace: uid 0 with SYS_PTRACE, which reaches any app ("privileged" only).
func AgentSecurityContext(mode Mode, app AppIdentity) *corev1.SecurityContext {
	switch mode {
	case ModeSameUser:
		return &corev1.SecurityContext{
			RunAsUser:                ptr.To(ptr.Deref(app.UID, 0)),
			RunAsGroup:               ptr.To(agentGID(app)),
			RunAsNonRoot:             ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}
	case ModeRoot:
		sc := &corev1.SecurityContext{
			RunAsUser:    ptr.To[int64](0),
			RunAsGroup:   ptr.To(agentGID(app)),
			RunAsNonRoot: ptr.To(false),
		}
		if len(app.AddedCaps) > 0 {
			sc.Capabilities = &corev1.Capabilities{}
			for _, c := range app.AddedCaps {
				sc.Capabilities.Add = append(sc.Capabilities.Add, corev1.Capability(c))
			}
		}
		return sc
	default: // ptrace
		return &corev1.SecurityContext{
			RunAsUser:    ptr.To[int64](0),
			RunAsGroup:   ptr.To(agentGID(app)),
			RunAsNonRoot: ptr.To(false),
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_PTRACE"}},
		}
	}
}

// AgentContainer is the sidecar container.
func AgentContainer(s AgentSpec) *corev1ac.ContainerApplyConfiguration {
	return corev1ac.Container().
		WithName(s.Name).
		WithImage(s.Image).
		WithImagePullPolicy(corev1.PullPolicy(PullPolicy(s.Image))).
		WithArgs(s.Args()...).
		WithResources(corev1ac.ResourceRequirements().WithRequests(agentRequests).WithLimits(agentLimits)).
		// The agent listens on loopback only: an exec probe is the one that reaches it.
		WithReadinessProbe(corev1ac.Probe().
			WithExec(corev1ac.ExecAction().WithCommand(wire.AgentBinary, "probe")).
			WithPeriodSeconds(2).WithTimeoutSeconds(2).WithFailureThreshold(3)).
		WithSecurityContext(securityContextAC(AgentSecurityContext(s.Mode, s.App))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(s.VolumeName()).WithMountPath(wire.KeyMountPath).WithReadOnly(true)).
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError)
}

// PodTemplate is the partial pod template devpatch applies: the shared
// process namespace, the agent container, its key volume and the annotations.
func PodTemplate(s AgentSpec) *corev1ac.PodTemplateSpecApplyConfiguration {
	spec := corev1ac.PodSpec().
		WithShareProcessNamespace(true)
	// With --supervise the app container's entry comes first: server-side
	// apply keeps the applier's order, and the app must stay before the agent.
	superviseAppContainer(s, spec)
	if s.Sidecar {
		spec.WithInitContainers(AgentContainer(s).WithRestartPolicy(corev1.ContainerRestartPolicyAlways))
	} else {
		spec.WithContainers(AgentContainer(s))
	}
	spec.WithVolumes(corev1ac.Volume().
		WithName(s.VolumeName()).
		WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(s.SecretName).
			// Readable by the agent whatever its uid; the mount is read-only.
			WithDefaultMode(0o444)))
	supervisePodSpec(s, spec)
	return corev1ac.PodTemplateSpec().
		WithAnnotations(s.Annotations()).
		WithSpec(spec)
}

// WorkloadApplyConfig is the apply configuration of a workload holding only
// tpl; a nil tpl gives the empty configuration that removes everything the
// field manager owned.
func WorkloadApplyConfig(kind Kind, namespace, name string, tpl *corev1ac.PodTemplateSpecApplyConfiguration) (any, error) {
	switch kind {
	case KindDeployment:
		ac := appsv1ac.Deployment(name, namespace)
		if tpl != nil {
			ac.WithSpec(appsv1ac.DeploymentSpec().WithTemplate(tpl))
		}
		return ac, nil
	case KindStatefulSet:
		ac := appsv1ac.StatefulSet(name, namespace)
		if tpl != nil {
			ac.WithSpec(appsv1ac.StatefulSetSpec().WithTemplate(tpl))
		}
		return ac, nil
	case KindDaemonSet:
		ac := appsv1ac.DaemonSet(name, namespace)
		if tpl != nil {
			ac.WithSpec(appsv1ac.DaemonSetSpec().WithTemplate(tpl))
		}
		return ac, nil
	case KindReplicaSet:
		ac := appsv1ac.ReplicaSet(name, namespace)
		if tpl != nil {
			ac.WithSpec(appsv1ac.ReplicaSetSpec().WithTemplate(tpl))
		}
		return ac, nil
	case KindCronJob:
		ac := batchv1ac.CronJob(name, namespace)
		if tpl != nil {
			ac.WithSpec(batchv1ac.CronJobSpec().WithJobTemplate(batchv1ac.JobTemplateSpec().WithSpec(batchv1ac.JobSpec().WithTemplate(tpl))))
		}
		return ac, nil
	}
	return nil, fmt.Errorf("%s has no pod template to patch", kind)
}

// EphemeralAgent is the agent as an ephemeral container of a bare pod: no
// probe, resources or volumes are allowed there, so the keys come from the
// Secret through environment variables.
func EphemeralAgent(s AgentSpec) corev1.EphemeralContainer {
	secretEnv := func(name, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: s.SecretName}, Key: key,
		}}}
	}
	return corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name:            s.Name,
			Image:           s.Image,
			ImagePullPolicy: corev1.PullPolicy(PullPolicy(s.Image)),
			Args:            []string{"--target-container=" + s.Target},
			Env: []corev1.EnvVar{
				secretEnv(wire.EnvAgentAuthorizedKeys, keys.AuthorizedKeysFile),
				secretEnv(wire.EnvAgentHostKey, keys.HostKeyFile),
			},
			SecurityContext:          AgentSecurityContext(s.Mode, s.App),
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		},
		TargetContainerName: s.Target,
	}
}

// AgentSecret is the Secret that holds the agent's host key and the
// authorized public keys, owned by the patched object so that deleting it
// deletes the Secret.
func AgentSecret(namespace, name string, owner metav1.OwnerReference, workloadRef string, host *keys.HostKey, authorizedKeys []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       namespace,
			Labels:          map[string]string{LabelManagedBy: secretManagedByLabelValue},
			Annotations:     map[string]string{wire.AnnotationSecretWorkload: workloadRef},
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			keys.HostKeyFile:        host.PrivatePEM,
			keys.HostPublicKeyFile:  []byte(host.PublicLine + "\n"),
			keys.AuthorizedKeysFile: authorizedKeys,
		},
	}
}

// SelectContainer picks the target container: the requested one (-c), else
// the one named by the kubectl.kubernetes.io/default-container annotation,
// else the first. An unknown -c names the containers that exist.
func SelectContainer(containers []corev1.Container, annotations map[string]string, requested, ref string) (string, []string, error) {
	names := make([]string, 0, len(containers))
	for _, c := range containers {
		names = append(names, c.Name)
	}
	has := func(n string) bool {
		for _, x := range names {
			if x == n {
				return true
			}
		}
		return false
	}
	if len(names) == 0 {
		return "", nil, fmt.Errorf("%s has no containers", ref)
	}
	if requested != "" {
		if !has(requested) {
			return "", nil, fmt.Errorf("container %q not found in %s; its containers are: %s", requested, ref, strings.Join(names, ", "))
		}
		return requested, nil, nil
	}
	if d := annotations[DefaultContainerAnnotKey]; d != "" {
		if has(d) {
			return d, nil, nil
		}
		return names[0], []string{fmt.Sprintf("%s: annotation %s names container %q, which does not exist; using %q", ref, DefaultContainerAnnotKey, d, names[0])}, nil
	}
	return names[0], nil, nil
}

// ToMap renders an apply configuration (or any object) as the generic map
// that kubectl's printers take.
func ToMap(obj any) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func securityContextAC(sc *corev1.SecurityContext) *corev1ac.SecurityContextApplyConfiguration {
	ac := corev1ac.SecurityContext()
	if sc.RunAsUser != nil {
		ac.WithRunAsUser(*sc.RunAsUser)
	}
	if sc.RunAsGroup != nil {
		ac.WithRunAsGroup(*sc.RunAsGroup)
	}
	if sc.RunAsNonRoot != nil {
		ac.WithRunAsNonRoot(*sc.RunAsNonRoot)
	}
	if sc.AllowPrivilegeEscalation != nil {
		ac.WithAllowPrivilegeEscalation(*sc.AllowPrivilegeEscalation)
	}
	if sc.Capabilities != nil {
		caps := corev1ac.Capabilities()
		if len(sc.Capabilities.Add) > 0 {
			add := append([]corev1.Capability(nil), sc.Capabilities.Add...)
			sort.Slice(add, func(i, j int) bool { return add[i] < add[j] })
			caps.WithAdd(add...)
		}
		if len(sc.Capabilities.Drop) > 0 {
			caps.WithDrop(sc.Capabilities.Drop...)
		}
		ac.WithCapabilities(caps)
	}
	if sc.SeccompProfile != nil {
		ac.WithSeccompProfile(corev1ac.SeccompProfile().WithType(sc.SeccompProfile.Type))
	}
	return ac
}
