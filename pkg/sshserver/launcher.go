package sshserver

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// Process is a session's process, not started yet.
type Process struct {
	Cmd *exec.Cmd
	// Notice is written to an interactive shell's stderr before it starts
	// (e.g. which view the shell has and where the app's files are).
	Notice string
}

// Launcher decides where and as whom a session's processes run.
type Launcher interface {
	// Command returns the process of a shell (command == "") or of a
	// command line, which runs as "sh -c COMMAND" as with OpenSSH.
	Command(ctx context.Context, s *SessionInfo, command string) (*Process, error)
	// SFTP serves the sftp protocol on rw in the session's view until the
	// client ends it.
	SFTP(ctx context.Context, s *SessionInfo, rw io.ReadWriteCloser) error
}

// SFTPHandler is the "sftp" subsystem served by l.
func SFTPHandler(l Launcher) SubsystemHandler {
	return func(ctx context.Context, ch ssh.Channel, s *SessionInfo) error {
		return l.SFTP(ctx, s, ch)
	}
}

// LocalLauncher runs shells in the agent's own file system as the agent's
// user, with the agent's environment (less its keys).
type LocalLauncher struct {
	// Shell is the shell to run; /bin/sh when empty.
	Shell string
	// ExtraEnv is added to every session's environment.
	ExtraEnv []string
	// Dir is the working directory; the agent's when empty.
	Dir string
}

// Command implements Launcher.
func (l LocalLauncher) Command(ctx context.Context, s *SessionInfo, command string) (*Process, error) {
	shell := l.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	var cmd *exec.Cmd
	if command == "" {
		cmd = exec.Command(shell, "-l")
		if !s.PTY {
			cmd = exec.Command(shell)
		}
	} else {
		cmd = exec.Command(shell, "-c", command)
	}
	cmd.Env = SessionEnv(AgentEnv(), s, l.ExtraEnv...)
	cmd.Dir = l.Dir
	return &Process{Cmd: cmd}, nil
}

// SFTP implements Launcher: the agent's file system.
func (l LocalLauncher) SFTP(ctx context.Context, s *SessionInfo, rw io.ReadWriteCloser) error {
	opts := []sftp.ServerOption{}
	if l.Dir != "" {
		opts = append(opts, sftp.WithServerWorkingDirectory(l.Dir))
	}
	srv, err := sftp.NewServer(rw, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	return srv.Serve()
}

// secretEnv are the agent's variables a session must not inherit.
var secretEnv = []string{"DEVAGENT_HOST_KEY", "DEVAGENT_AUTHORIZED_KEYS"}

// AgentEnv is the agent's environment without its keys.
func AgentEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		skip := false
		for _, s := range secretEnv {
			if name == s {
				skip = true
			}
		}
		if !skip {
			out = append(out, kv)
		}
	}
	return out
}

// SessionEnv is base, then extra, then what the client sent (its env
// requests and TERM), later entries overriding earlier ones. The devssh
// control variables are not passed on.
func SessionEnv(base []string, s *SessionInfo, extra ...string) []string {
	env := map[string]string{}
	var order []string
	set := func(kv string) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return
		}
		if _, seen := env[k]; !seen {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, kv := range base {
		set(kv)
	}
	for _, kv := range extra {
		set(kv)
	}
	for _, kv := range s.Env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case wire.EnvContainerID, wire.EnvContainerName, wire.EnvTarget:
			continue
		}
		set(kv)
	}
	if s.PTY && s.Term != "" {
		set("TERM=" + s.Term)
	}
	if _, ok := env["PATH"]; !ok {
		set("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+env[k])
	}
	return out
}
