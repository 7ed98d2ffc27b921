package patcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
	"path"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// kubectl devpatch --supervise: an init container copies the static agent
// into an emptyDir that the app container mounts at SuperviseMountPath, and
// the app container's command becomes
//
//	/.devagent/devagent supervise --socket /.devagent/ctl.sock -- ORIGINAL...
//
// so that kubectl devsync --restart restarts the app process without
// restarting the container. Everything is applied by devpatch's field
// manager; the user's original command (when there was one) is recorded in
// AnnotationSupervise so that --remove puts it back exactly.
const (
	// SuperviseMountPath is where the app container sees the agent binary.
	SuperviseMountPath = "/.devagent"
	// SuperviseBinary is the agent binary in the app container.
	SuperviseBinary = SuperviseMountPath + "/devagent"
	// SuperviseSocket is the supervisor's control socket.
	SuperviseSocket = SuperviseMountPath + "/ctl.sock"
	// AnnotationSupervise records the app container's original command
	// (JSON: {"command": [...] or null, "manager": "..."}).
	AnnotationSupervise = wire.AnnotationPrefix + "supervise"
)

// SuperviseSpec is the supervise part of an AgentSpec.
type SuperviseSpec struct {
	// Command is the app container's new command (the supervisor, then the
	// original argv's command part; the container's args stay).
	Command []string
	// Original is what AnnotationSupervise records.
	Original SuperviseOriginal
}

// SuperviseOriginal is the app container's command before devpatch.
type SuperviseOriginal struct {
	// Command is the user's command; nil when the spec had none.
	Command []string `json:"command"`
	// Manager is the field manager that owned it (restored as its owner).
	Manager string `json:"manager,omitempty"`
}

// BinVolumeName is the emptyDir that carries the agent binary.
func (s AgentSpec) BinVolumeName() string { return s.Name + "-bin" }

// InstallContainerName is the init container that copies the agent binary.
func (s AgentSpec) InstallContainerName() string { return s.Name + "-install" }

// SupervisorCommand wraps base (the command part of the original argv).
func SupervisorCommand(base []string) []string {
	return append([]string{SuperviseBinary, "supervise", "--socket", SuperviseSocket, "--"}, base...)
}

// IsSupervisorCommand reports whether cmd is devpatch's wrapper.
func IsSupervisorCommand(cmd []string) bool {
	return len(cmd) >= 2 && cmd[0] == SuperviseBinary && cmd[1] == "supervise"
}

// superviseAppContainer adds the app container's command and mount.
func superviseAppContainer(s AgentSpec, spec *corev1ac.PodSpecApplyConfiguration) {
	if s.Supervise == nil {
		return
	}
	spec.WithContainers(corev1ac.Container().
		WithName(s.Target).
		WithCommand(s.Supervise.Command...).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(s.BinVolumeName()).WithMountPath(SuperviseMountPath)))
}

// supervisePodSpec adds the init container and the emptyDir to spec.
func supervisePodSpec(s AgentSpec, spec *corev1ac.PodSpecApplyConfiguration) {
	if s.Supervise == nil {
		return
	}
	mount := corev1ac.VolumeMount().WithName(s.BinVolumeName()).WithMountPath(SuperviseMountPath)
	spec.WithInitContainers(corev1ac.Container().
		WithName(s.InstallContainerName()).
		WithImage(s.Image).
		WithImagePullPolicy(corev1.PullPolicy(PullPolicy(s.Image))).
		WithCommand(wire.AgentBinary, "install", SuperviseBinary).
		WithResources(corev1ac.ResourceRequirements().WithRequests(agentRequests).WithLimits(agentLimits)).
		WithSecurityContext(securityContextAC(AgentSecurityContext(s.Mode, s.App))).
		WithVolumeMounts(mount).
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError))
	spec.WithVolumes(corev1ac.Volume().WithName(s.BinVolumeName()).WithEmptyDir(corev1ac.EmptyDirVolumeSource()))
}

// ImageConfigFunc reads an image's entrypoint and cmd from its registry.
type ImageConfigFunc func(ctx context.Context, image string) (entrypoint, cmd []string, err error)

// RegistryImageConfig reads the image configuration with
// go-containerregistry (the keychain of docker/podman for credentials;
// plain HTTP for a registry on localhost or 127.0.0.1).
func RegistryImageConfig(ctx context.Context, image string) ([]string, []string, error) {
	var opts []name.Option
	host := strings.SplitN(image, "/", 2)[0]
	if h := strings.Split(host, ":")[0]; strings.Contains(image, "/") && (h == "localhost" || h == "127.0.0.1") {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(image, opts...)
	if err != nil {
		return nil, nil, err
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return nil, nil, err
	}
	img, err := desc.Image()
	if err != nil {
		return nil, nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, err
	}
	return cf.Config.Entrypoint, cf.Config.Cmd, nil
}

// commandPath is the managed-fields path of the target container's command.
func commandPath(kind Kind, target string) fieldpath.Path {
	parts := []any{"spec", "template", "spec", "containers", fieldpath.KeyByFields("name", target), "command"}
	if kind == KindPod {
		parts = []any{"spec", "containers", fieldpath.KeyByFields("name", target), "command"}
	}
	return fieldpath.MakePathOrDie(parts...)
}

// superviseSpec decides the app container's new command from its original
// argv: its command (the args stay and are appended by the kubelet), else
// the image's entrypoint (with the spec's args) or entrypoint and cmd, else
// fallback (--command).
func (p *Patcher) superviseSpec(ctx context.Context, cfg Config, w *workload, c *corev1.Container) (*SuperviseSpec, error) {
	ref := w.ref()
	if prev := w.template.Annotations[AnnotationSupervise]; prev != "" && IsSupervisorCommand(c.Command) {
		// Already supervised: the original is the recorded one.
		var orig SuperviseOriginal
		if err := json.Unmarshal([]byte(prev), &orig); err != nil {
			return nil, fmt.Errorf("%s: annotation %s: %w", ref, AnnotationSupervise, err)
		}
		return &SuperviseSpec{Command: c.Command, Original: orig}, nil
	}
	if IsSupervisorCommand(c.Command) {
		return nil, fmt.Errorf("%s: container %q already runs the supervisor but the annotation %s is missing: remove the wrapper from its command first", ref, c.Name, AnnotationSupervise)
	}
	if len(c.Command) > 0 {
		if len(cfg.SuperviseCommand) > 0 {
			return nil, fmt.Errorf("%s: container %q has a command: --command is not needed", ref, c.Name)
		}
		orig := SuperviseOriginal{Command: append([]string(nil), c.Command...)}
		sets, _, err := managerSets(w.meta)
		if err != nil {
			return nil, err
		}
		cp := commandPath(w.kind, c.Name)
		for m, s := range sets {
			if m != cfg.FieldManager && s.Has(cp) {
				orig.Manager = m
			}
		}
		p.warn("%s: container %q has its own command: devpatch takes it over to wrap it in the supervisor (kubectl devpatch --remove puts it back)", ref, c.Name)
		return &SuperviseSpec{Command: SupervisorCommand(c.Command), Original: orig}, nil
	}
	if len(cfg.SuperviseCommand) > 0 {
		if len(c.Args) > 0 {
			return nil, fmt.Errorf("%s: container %q has args: --command would be combined with them; drop --command (devpatch reads the image's entrypoint)", ref, c.Name)
		}
		return &SuperviseSpec{Command: SupervisorCommand(cfg.SuperviseCommand)}, nil
	}
	get := p.ImageConfig
	if get == nil {
		get = RegistryImageConfig
	}
	entry, cmd, err := get(ctx, c.Image)
	if err != nil {
		return nil, fmt.Errorf("%s: container %q has no command in its spec and its image's configuration could not be read (%v): give the app's command line with --command", ref, c.Name, firstLine(err.Error()))
	}
	base := append([]string(nil), entry...)
	if len(c.Args) == 0 {
		base = append(base, cmd...)
	}
	if len(base) == 0 && len(c.Args) == 0 {
		return nil, fmt.Errorf("%s: neither container %q nor its image %s names a command: give the app's command line with --command", ref, c.Name, c.Image)
	}
	return &SuperviseSpec{Command: SupervisorCommand(base)}, nil
}

// restoreCommand puts the user's original command back before the empty
// apply, as an update by its original manager, so that it stays when
// devpatch's fields go.
func (p *Patcher) restoreCommand(ctx context.Context, cfg Config, w *workload) error {
	raw := w.template.Annotations[AnnotationSupervise]
	if raw == "" {
		return nil
	}
	var orig SuperviseOriginal
	if err := json.Unmarshal([]byte(raw), &orig); err != nil {
		return fmt.Errorf("%s: annotation %s: %w", w.ref(), AnnotationSupervise, err)
	}
	if orig.Command == nil {
		return nil // devpatch's command goes with the empty apply
	}
	target := w.template.Annotations[wire.AnnotationTarget]
	if target == "" {
		return errors.New("the supervised container is not recorded (annotation " + wire.AnnotationTarget + ")")
	}
	manager := orig.Manager
	if manager == "" {
		manager = "before-devpatch"
	}
	patch := map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []map[string]any{{"name": target, "command": orig.Command}},
	}}}}
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: manager, DryRun: cfg.dryRunOpt()}
	ns, nm := cfg.Namespace, cfg.Name
	switch cfg.Kind {
	case KindDeployment:
		_, err = p.Client.AppsV1().Deployments(ns).Patch(ctx, nm, types.StrategicMergePatchType, body, opts)
	case KindStatefulSet:
		_, err = p.Client.AppsV1().StatefulSets(ns).Patch(ctx, nm, types.StrategicMergePatchType, body, opts)
	case KindDaemonSet:
		_, err = p.Client.AppsV1().DaemonSets(ns).Patch(ctx, nm, types.StrategicMergePatchType, body, opts)
	case KindReplicaSet:
		_, err = p.Client.AppsV1().ReplicaSets(ns).Patch(ctx, nm, types.StrategicMergePatchType, body, opts)
	}
	if err != nil {
		return fmt.Errorf("restoring the command of container %q of %s: %w", target, w.ref(), err)
	}
	p.status("%s: container %q: original command restored (%s)", w.ref(), target, path.Base(orig.Command[0]))
	return nil
}
