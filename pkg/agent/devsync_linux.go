//go:build linux

package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/kubectl-dev/kubectl-dev/pkg/approc"
	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshserver"
	"github.com/kubectl-dev/kubectl-dev/pkg/supervisor"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncserver"
	"github.com/kubectl-dev/kubectl-dev/pkg/version"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// registerDevsync adds the devsync subsystem to srv: it finds the app's
// process (the container ID the client sent, as for devssh), opens its root
// with pkg/rootfs (openat2 RESOLVE_IN_ROOT) and serves the sync protocol.
func registerDevsync(srv *sshserver.Server, log *slog.Logger) {
	srv.Handle(wire.SubsystemDevsync, DevsyncHandler(srv.Launcher(), log))
}

// DevsyncHandler is the devsync subsystem served with launcher l (an
// *sshserver.AppLauncher finds the app; another launcher finds the pod's
// one other container). One syncserver.Server serves all its channels: a
// session's lanes are channels of their own.
func DevsyncHandler(l sshserver.Launcher, log *slog.Logger) sshserver.SubsystemHandler {
	srv := syncserver.New(log.With("subsystem", wire.SubsystemDevsync))
	return func(ctx context.Context, ch ssh.Channel, s *sshserver.SessionInfo) error {
		var p *approc.Proc
		var err error
		if al, ok := l.(*sshserver.AppLauncher); ok {
			p, err = al.FindApp(s)
		} else {
			p, err = approc.Finder{}.FindOther()
		}
		if err != nil {
			return serveError(ctx, ch, fmt.Errorf("the app's process was not found: %w", err))
		}
		fsys, err := rootfs.OpenProcess(p.PID, p.ContainerID)
		if err != nil {
			return serveError(ctx, ch, err)
		}
		defer fsys.Close()
		root := syncserver.NewRoot(fsys)
		root.Agent = "devagent " + version.String()
		root.PycachePrefix = syncserver.PycachePrefix(p.Environ, p.Cwd)
		a := &appActions{proc: p, fs: fsys, launcher: l, session: s}
		root.Action = a.run
		return srv.Serve(ctx, ch, root)
	}
}

// serveError answers the client's hello with an error message, so that
// kubectl devsync prints why (rather than "EOF").
func serveError(ctx context.Context, ch ssh.Channel, err error) error {
	return syncserver.ServeError(ctx, ch, err)
}

// appActions runs the Action messages of one session.
type appActions struct {
	proc     *approc.Proc
	fs       *rootfs.Root
	launcher sshserver.Launcher
	session  *sshserver.SessionInfo
}

// supervisorSocket returns the control socket of "devagent supervise" when
// the app's top process is one ("" otherwise).
func supervisorSocket(pid int) (bool, string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false, ""
	}
	return parseSupervisorCmdline(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
}

// parseSupervisorCmdline reads "devagent supervise [--socket PATH] -- ...".
func parseSupervisorCmdline(argv []string) (bool, string) {
	if len(argv) < 2 || !strings.HasPrefix(path.Base(argv[0]), "devagent") || argv[1] != "supervise" {
		return false, ""
	}
	for i := 2; i < len(argv) && argv[i] != "--"; i++ {
		a := strings.TrimLeft(argv[i], "-")
		if v, ok := strings.CutPrefix(a, "socket="); ok {
			return true, v
		}
		if a == "socket" && i+1 < len(argv) {
			return true, argv[i+1]
		}
	}
	return true, ""
}

// request talks to the supervisor's control socket, reached through the
// app's root with openat2 (a symlink in the app's tree cannot point the agent
// at a socket of its own).
func (a *appActions) request(ctx context.Context, socket, command string) (string, error) {
	dir, base := path.Split(socket)
	d, err := a.fs.OpenDirPath(dir)
	if err != nil {
		return "", fmt.Errorf("supervisor socket %s: %w", socket, err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return supervisor.Request(ctx, fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), base), command)
}

func (a *appActions) run(ctx context.Context, act syncproto.Action) (string, error) {
	if err := a.fs.Alive(); err != nil {
		return "", err
	}
	supervised, socket := supervisorSocket(a.proc.PID)
	switch act.Kind {
	case "restart":
		if !supervised {
			return "", errors.New("the app does not run under the agent's supervisor: run kubectl devpatch --supervise first (or use --signal or --exec)")
		}
		if socket == "" {
			if err := unix.Kill(a.proc.PID, unix.SIGUSR1); err != nil {
				return "", fmt.Errorf("signalling the supervisor (pid %d): %w", a.proc.PID, err)
			}
			return "restart requested (SIGUSR1)", nil
		}
		return a.request(ctx, socket, "restart")
	case "signal":
		if len(act.Args) != 1 {
			return "", errors.New("signal takes one signal name")
		}
		name := strings.TrimPrefix(strings.ToUpper(act.Args[0]), "SIG")
		sig := unix.SignalNum("SIG" + name)
		if sig == 0 {
			return "", fmt.Errorf("unknown signal %q", act.Args[0])
		}
		if supervised && socket != "" {
			return a.request(ctx, socket, "signal "+name)
		}
		if err := unix.Kill(a.proc.PID, sig); err != nil {
			return "", fmt.Errorf("kill -%s %d: %w", name, a.proc.PID, err)
		}
		return fmt.Sprintf("sent SIG%s to pid %d", name, a.proc.PID), nil
	case "exec":
		if len(act.Args) == 0 {
			return "", errors.New("exec takes a command")
		}
		command := act.Args[0]
		if len(act.Args) > 1 {
			command = quoteArgv(act.Args)
		}
		pr, err := a.launcher.Command(ctx, a.session, command)
		if err != nil {
			return "", err
		}
		var out bytes.Buffer
		pr.Cmd.Stdout, pr.Cmd.Stderr = &out, &out
		cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		if err := runContext(cctx, pr); err != nil {
			return tail(out.String()), fmt.Errorf("%s: %w", command, err)
		}
		return tail(out.String()), nil
	}
	return "", fmt.Errorf("unknown action %q (restart, signal, exec)", act.Kind)
}

func runContext(ctx context.Context, pr *sshserver.Process) error {
	if err := pr.Cmd.Start(); err != nil {
		return err
	}
	var werr error
	done := make(chan struct{})
	go func() { werr = pr.Cmd.Wait(); close(done) }()
	select {
	case <-done:
		return werr
	case <-ctx.Done():
		_ = pr.Cmd.Process.Kill()
		// Wait reaps the killed process; its error (the kill) is not the
		// cause: the context's is.
		<-done
		return ctx.Err()
	}
}

func tail(s string) string {
	const max = 256 << 10
	if len(s) > max {
		return s[len(s)-max:]
	}
	return s
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
