package patcher

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// AppIdentity is what the kernel's ptrace access check for
// /proc/<pid>/root depends on, as far as the pod spec tells it.
type AppIdentity struct {
	// UID and GID are the effective runAsUser/runAsGroup (container over
	// pod); nil when the spec leaves them to the image.
	UID, GID     *int64
	RunAsNonRoot bool
	// AddedCaps are the capabilities the container adds (sorted).
	AddedCaps      []string
	Privileged     bool
	ReadOnlyRootFS bool
}

// EffectiveIdentity reads the target container's identity from the pod spec.
func EffectiveIdentity(pod *corev1.PodSpec, c *corev1.Container) AppIdentity {
	var id AppIdentity
	if psc := pod.SecurityContext; psc != nil {
		id.UID, id.GID = psc.RunAsUser, psc.RunAsGroup
		id.RunAsNonRoot = psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			id.UID = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			id.GID = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			id.RunAsNonRoot = *sc.RunAsNonRoot
		}
		id.Privileged = sc.Privileged != nil && *sc.Privileged
		id.ReadOnlyRootFS = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		if sc.Capabilities != nil {
			seen := map[string]bool{}
			for _, c := range sc.Capabilities.Add {
				n := strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_")
				if n != "" && n != "ALL" && !seen[n] {
					seen[n] = true
					id.AddedCaps = append(id.AddedCaps, n)
				}
			}
			sort.Strings(id.AddedCaps)
		}
	}
	return id
}

// SelectMode turns the requested mode into the mode to use for a target
// container with identity id. It returns warnings for the user, and an error
// naming the fix when the requested mode cannot reach the app's files.
func SelectMode(requested Mode, container string, id AppIdentity) (Mode, []string, error) {
	var warnings []string
	gidWarning := func(uid int64) {
		if id.GID == nil {
			warnings = append(warnings, fmt.Sprintf("container %q sets runAsUser %d but no runAsGroup: the agent can reach its files only with the same gid; set runAsGroup in the pod or container securityContext (the agent uses gid %d), or use --mode ptrace", container, uid, agentGID(id)))
		}
	}
	switch requested {
	case ModeAuto, "":
		switch {
		case id.Privileged:
			return "", nil, fmt.Errorf("container %q is privileged: only --mode ptrace can reach its files", container)
		case id.UID != nil && *id.UID != 0:
			gidWarning(*id.UID)
			return ModeSameUser, warnings, nil
		case id.UID != nil:
			return ModeRoot, nil, nil
		case id.RunAsNonRoot:
			return "", nil, fmt.Errorf("container %q must run as non-root but its runAsUser is not set, so devpatch cannot tell its uid: set runAsUser and runAsGroup in its securityContext, or use --mode ptrace", container)
		default:
			warnings = append(warnings, fmt.Sprintf("container %q sets no runAsUser: assuming its image runs as root (mode root); if it runs as another user, set runAsUser and runAsGroup in its securityContext, or use --mode ptrace", container))
			return ModeRoot, warnings, nil
		}
	case ModeSameUser:
		switch {
		case id.UID == nil:
			return "", nil, fmt.Errorf("--mode same-user needs the uid and gid of container %q: set runAsUser and runAsGroup in its securityContext", container)
		case *id.UID == 0:
			return "", nil, fmt.Errorf("container %q runs as root: --mode same-user would give the agent no capabilities to reach it; use --mode root", container)
		}
		gidWarning(*id.UID)
		return ModeSameUser, warnings, nil
	case ModeRoot:
		switch {
		case id.Privileged:
			return "", nil, fmt.Errorf("container %q is privileged: a root agent without SYS_PTRACE cannot reach its files; use --mode ptrace", container)
		case id.UID != nil && *id.UID != 0:
			return "", nil, fmt.Errorf("container %q runs as uid %d: a root agent without SYS_PTRACE cannot open its /proc/<pid>/root; use --mode same-user (or --mode ptrace)", container, *id.UID)
		}
		return ModeRoot, nil, nil
	case ModePtrace:
		return ModePtrace, nil, nil
	}
	return "", nil, fmt.Errorf("--mode must be one of auto, same-user, root, ptrace, not %q", requested)
}

func agentGID(id AppIdentity) int64 {
	if id.GID != nil {
		return *id.GID
	}
	if id.UID != nil && *id.UID != 0 {
		return *id.UID
	}
	return 0
}

// Pod Security Standards levels (the namespace label's values).
const (
	LevelPrivileged = "privileged"
	LevelBaseline   = "baseline"
	LevelRestricted = "restricted"
	// PodSecurityEnforceLabel is the namespace label Pod Security Admission enforces.
	PodSecurityEnforceLabel = "pod-security.kubernetes.io/enforce"
)

// MinimumLevel is the least permissive Pod Security level that admits the
// agent in a mode: same-user passes restricted, root (default capabilities)
// baseline, and SYS_PTRACE only privileged.
func MinimumLevel(m Mode) string {
	switch m {
	case ModeSameUser:
		return LevelRestricted
	case ModeRoot:
		return LevelBaseline
	default:
		return LevelPrivileged
	}
}

func levelRank(level string) int {
	switch level {
	case "", LevelPrivileged:
		return 0
	case LevelBaseline:
		return 1
	default: // restricted, and invalid values, which Pod Security Admission treats as restricted
		return 2
	}
}

// CheckPodSecurity refuses a mode that the namespace's enforced Pod
// Security level would reject, with one line naming the level and the mode
// that fits. requested is what the user asked for (auto or a mode).
func CheckPodSecurity(namespace, level string, mode, requested Mode, container string, id AppIdentity) error {
	if levelRank(MinimumLevel(mode)) >= levelRank(level) {
		return nil
	}
	why := map[Mode]string{
		ModeRoot:   "runs the agent as root",
		ModePtrace: "adds SYS_PTRACE, which only the privileged level allows",
	}[mode]
	fits := ""
	switch {
	case levelRank(level) >= 2:
		fits = fmt.Sprintf("only --mode same-user fits there: run container %q as a non-root user with runAsUser and runAsGroup set", container)
	case id.UID != nil && *id.UID != 0:
		fits = "use --mode same-user"
	default:
		fits = "use --mode root (a root app) or --mode same-user (a non-root app with runAsUser and runAsGroup set)"
	}
	how := "--mode " + string(mode)
	if requested == ModeAuto || requested == "" {
		how = fmt.Sprintf("mode %s (picked for container %q)", mode, container)
	}
	return fmt.Errorf("namespace %q enforces Pod Security level %q, which rejects %s: it %s; %s", namespace, level, how, why, fits)
}
