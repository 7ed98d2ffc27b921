// Package wire holds what the devssh client and the devagent's SSH server
// agree on: the port, the environment variables the client sends to choose
// the app's view, and the names of the views. It has no dependencies so that
// both sides can import it.
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

// KeepaliveRequest is the global request both sides send to detect a dead peer.
const KeepaliveRequest = "keepalive@openssh.com"
