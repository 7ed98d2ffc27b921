// Package wire holds what the laptop's plugins and the devagent must agree
// on, and nothing else: the agent's SSH port and identification, the
// environment variables and annotations that carry the target app from
// kubectl devpatch to the agent and from devssh and devsync to the agent's
// SSH server, the names of the SSH subsystems, the agent's flags' variables
// and the name of its Secret.
//
// It imports nothing of the project, so that the laptop's binaries
// (kubectl-devpatch, kubectl-devssh, kubectl-devsync) and the agent's
// (devagent) can both stand on it without importing each other; see
// TestTowers beside this file.
package wire

// Port is the TCP port the agent's SSH server listens on, on 127.0.0.1 only.
// The client reaches it through the API server's port-forward, which dials
// the pod's loopback.
const Port = 2222

// Addr is the agent's listen address.
const Addr = "127.0.0.1:2222"

// ServerVersion is the SSH identification string of the agent.
const ServerVersion = "SSH-2.0-devagent"

// Environment variables the client sends in "env" requests (before shell,
// exec or subsystem) to tell the agent which app it works on. The agent has
// no API access, so the client reads them from the pod's status.
const (
	// EnvContainerID is the target container's ID: the 64 hex digits of
	// status.containerStatuses[].containerID, after "containerd://" etc.
	EnvContainerID = "DEVSSH_CONTAINER_ID"
	// EnvContainerName is the target container's name (informational; the
	// agent's own --target-container is the default).
	EnvContainerName = "DEVSSH_CONTAINER"
	// EnvTarget is the view: "app" (the default) or "agent".
	EnvTarget = "DEVSSH_TARGET"
	// EnvView is set in the session's environment to the view it got:
	// "app" (chrooted into the app's root, as the app's user) or "agent"
	// (the agent's own shell, the app's files at $DEVSSH_APP_ROOT).
	EnvView = "DEVSSH_VIEW"
	// EnvAppRoot is set in agent-view sessions to the path of the app's
	// root file system as the agent sees it (/proc/<pid>/root).
	EnvAppRoot = "DEVSSH_APP_ROOT"
	// EnvAppPID is set to the app's pid (in the pod's shared pid namespace).
	EnvAppPID = "DEVSSH_APP_PID"
)

// Views.
const (
	TargetApp   = "app"
	TargetAgent = "agent"
)

// SSH subsystems the agent serves besides a shell and exec.
const (
	// SubsystemDevsync is the devsync protocol (pkg/syncproto).
	SubsystemDevsync = "devsync"
	// SubsystemSFTP is sftp, confined to the app's root.
	SubsystemSFTP = "sftp"
)

// KeepaliveRequest is the global request both sides send to detect a dead peer.
const KeepaliveRequest = "keepalive@openssh.com"

// Environment variables the agent reads; kubectl devpatch sets them.
const (
	EnvAgentTargetContainer = "DEVAGENT_TARGET_CONTAINER"
	EnvAgentKeyDir          = "DEVAGENT_KEY_DIR"
	EnvAgentReadyFile       = "DEVAGENT_READY_FILE"
	// EnvAgentHostKey and EnvAgentAuthorizedKeys carry the keys themselves
	// (ephemeral containers); when set they win over the files in the key
	// folder.
	EnvAgentHostKey        = "DEVAGENT_HOST_KEY"
	EnvAgentAuthorizedKeys = "DEVAGENT_AUTHORIZED_KEYS"
)

// Where kubectl devpatch puts things in the agent's container.
const (
	// KeyMountPath is where the agent's Secret is mounted (the agent's
	// default --key-dir).
	KeyMountPath = "/etc/devagent"
	// AgentBinary is the agent's path inside its image.
	AgentBinary = "/devagent"
	// DefaultAgentContainer is the sidecar's default name.
	DefaultAgentContainer = "devagent"
)

// Annotations kubectl devpatch records on the pod template (and on a bare
// pod), which devssh and devsync read to find the app and the agent.
const (
	AnnotationPrefix         = "devpatch.kubectl-dev.io/"
	AnnotationTarget         = AnnotationPrefix + "target-container"
	AnnotationMode           = AnnotationPrefix + "mode"
	AnnotationAgentVersion   = AnnotationPrefix + "agent-version"
	AnnotationAgentContainer = AnnotationPrefix + "agent-container"
	// AnnotationSecretWorkload, on the agent's Secret, names the workload
	// whose pods use it.
	AnnotationSecretWorkload = AnnotationPrefix + "workload"
)

// SecretName is the name of the agent's Secret (host key, authorized keys)
// for the workload or bare pod named name.
func SecretName(name string) string { return name + "-devagent" }
