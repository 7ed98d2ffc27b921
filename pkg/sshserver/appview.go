//go:build linux

package sshserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"strconv"
	"sync"
	"syscall"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentlog"
	"github.com/kubectl-dev/kubectl-dev/pkg/approc"
	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// AppLauncher runs sessions in the app's view when it can:
//
//   - app view: the agent may chroot (root mode: uid 0 with CAP_SYS_CHROOT)
//     and the app's root has /bin/sh: the process is started chrooted into
//     /proc/<pid>/root, with the app's uid, gid, groups, environment and
//     working directory (the kernel does chroot, setuid and chdir between
//     fork and exec, so /bin/sh is the app's). sftp runs in a helper
//     (approc.HelperSFTP) chrooted the same way.
//   - agent view otherwise (distroless app, same-user mode, --target agent,
//     app not found): the agent's busybox shell, with the app's files at
//     $DEVSSH_APP_ROOT (/proc/<pid>/root); sftp then serves the app's root
//     through rootfs.Root (openat2 RESOLVE_IN_ROOT), so that symlinks in
//     the app's tree stay inside it.
//
// The app is the top process of the container whose ID the client sent
// (wire.EnvContainerID), else the one other container of the pod.
type AppLauncher struct {
	// Finder reads /proc.
	Finder approc.Finder
	// Agent runs agent-view sessions.
	Agent LocalLauncher
	// HelperPath is the agent binary that runs approc.HelperSFTP
	// (os.Executable() when empty).
	HelperPath string
	// Busybox is the agent's static busybox, run inside the app's root when
	// the app has no shell (/bin/busybox when empty).
	Busybox string
	// CanChroot overrides approc.CanChroot (tests).
	CanChroot func() bool
	// Each session's view is logged through its SessionInfo.Logger.

	once      sync.Once
	canChroot bool
}

func (l *AppLauncher) init() {
	l.once.Do(func() {
		if l.CanChroot != nil {
			l.canChroot = l.CanChroot()
		} else {
			l.canChroot = approc.CanChroot()
		}
	})
}

// view is where one session runs.
type view struct {
	proc    *approc.Proc
	chroot  bool   // app view
	busybox bool   // app view with the agent's busybox (the app has no shell)
	why     string // why not the app view
	findErr error
}

// FindApp finds the app's top process for a session: the container the
// client named (wire.EnvContainerID), else the pod's one other container.
func (l *AppLauncher) FindApp(s *SessionInfo) (*approc.Proc, error) { return l.find(s) }

func (l *AppLauncher) find(s *SessionInfo) (*approc.Proc, error) {
	if id := s.Getenv(wire.EnvContainerID); id != "" {
		return l.Finder.FindByID(id)
	}
	return l.Finder.FindOther()
}

func (l *AppLauncher) choose(s *SessionInfo, needShell bool) view {
	l.init()
	p, err := l.find(s)
	if err != nil {
		return view{why: "the app's process was not found: " + err.Error(), findErr: err}
	}
	v := view{proc: p}
	switch {
	case s.Getenv(wire.EnvTarget) == wire.TargetAgent:
		v.why = "--target agent"
	case !l.canChroot:
		v.why = "the agent cannot chroot (it does not run as root with CAP_SYS_CHROOT, e.g. devpatch --mode same-user)"
	case needShell && !hasShell(p):
		if _, err := os.Stat(l.busybox()); err == nil {
			v.chroot, v.busybox = true, true
			break
		}
		v.why = "the app's image has no /bin/sh"
	default:
		v.chroot = true
	}
	return v
}

func (l *AppLauncher) busybox() string {
	if l.Busybox != "" {
		return l.Busybox
	}
	return "/bin/busybox"
}

func (l *AppLauncher) helper() (string, error) {
	if l.HelperPath != "" {
		return l.HelperPath, nil
	}
	return os.Executable()
}

func hasShell(p *approc.Proc) bool {
	r, err := rootfs.OpenDir(p.Root())
	if err != nil {
		return false
	}
	defer r.Close()
	fi, err := r.Stat("/bin/sh")
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Command implements Launcher.
func (l *AppLauncher) Command(ctx context.Context, s *SessionInfo, command string) (*Process, error) {
	v := l.choose(s, true)
	if !v.chroot {
		return l.agentCommand(ctx, s, command, v)
	}
	p := v.proc
	argv := []string{"/bin/sh", "-c", command}
	if command == "" {
		argv = []string{"-sh"} // a login shell, as sshd starts it
		if !s.PTY {
			argv = []string{"sh"}
		}
	}
	base := p.Environ
	if base == nil {
		base = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cmd := &exec.Cmd{
		Path: "/bin/sh", // resolved after the chroot, in the app's root
		Args: argv,
		Env: SessionEnv(base, s, wire.EnvView+"="+wire.TargetApp, wire.EnvAppPID+"="+strconv.Itoa(p.PID),
			"SHLVL=1"),
		Dir: p.Cwd,
		SysProcAttr: &syscall.SysProcAttr{
			Chroot:     p.Root(),
			Credential: &syscall.Credential{Uid: uint32(p.UID), Gid: uint32(p.GID), Groups: toUint32(p.Groups)},
		},
	}
	notice := ""
	if v.busybox {
		// No shell in the app's image: the agent's busybox, executed inside
		// the app's root by a helper (exec after chroot cannot reach it).
		helper, err := l.helper()
		if err != nil {
			return nil, err
		}
		cmd.Path = helper
		cmd.Args = append([]string{helper}, approc.ShellHelperArgs(p, l.busybox(), argv)...)
		cmd.Dir = ""
		cmd.SysProcAttr = nil
		cmd.Env = append(cmd.Env, "DEVSSH_SHELL=agent-busybox")
		notice = "devssh: the app's image has no shell: this is the agent's busybox, inside the app's files and as the app's user\n"
	}
	s.Log().Info("session in the app's view", "pid", p.PID, "uid", p.UID, "gid", p.GID, "cwd", p.Cwd, "busybox", v.busybox)
	return &Process{Cmd: cmd, Notice: notice}, nil
}

func (l *AppLauncher) agentCommand(ctx context.Context, s *SessionInfo, command string, v view) (*Process, error) {
	a := l.Agent
	extra := []string{wire.EnvView + "=" + wire.TargetAgent}
	notice := ""
	if v.proc != nil {
		root := v.proc.Root()
		extra = append(extra, wire.EnvAppRoot+"="+root, wire.EnvAppPID+"="+strconv.Itoa(v.proc.PID))
		if a.Dir == "" {
			a.Dir = agentDir(v.proc)
		}
		notice = fmt.Sprintf("devssh: the agent's shell (%s); the app's files are at $%s = %s\n", v.why, wire.EnvAppRoot, root)
	} else {
		notice = fmt.Sprintf("devssh: the agent's shell; %s\n", v.why)
	}
	a.ExtraEnv = append(append([]string(nil), a.ExtraEnv...), extra...)
	pr, err := a.Command(ctx, s, command)
	if err != nil {
		return nil, err
	}
	if s.Getenv(wire.EnvTarget) != wire.TargetAgent {
		pr.Notice = notice
	}
	level := slog.LevelInfo // --target agent, same-user mode: as asked
	if v.findErr != nil {
		level = slog.LevelWarn
	}
	s.Log().Log(ctx, level, "session in the agent's view", "reason", v.why)
	return pr, nil
}

// agentDir is the app's working directory as the agent reaches it, its
// symlinks resolved inside the app's root; "/" when it is not reachable.
func agentDir(p *approc.Proc) string {
	r, err := rootfs.OpenDir(p.Root())
	if err != nil {
		return "/"
	}
	defer r.Close()
	real, err := r.RealPath(p.Cwd)
	if err != nil {
		return p.Root()
	}
	if fi, err := r.Stat(real); err != nil || !fi.IsDir() {
		return p.Root()
	}
	return path.Join(p.Root(), real)
}

// SFTP implements Launcher.
func (l *AppLauncher) SFTP(ctx context.Context, s *SessionInfo, rw io.ReadWriteCloser) error {
	v := l.choose(s, false)
	if v.proc == nil || s.Getenv(wire.EnvTarget) == wire.TargetAgent {
		if v.findErr != nil && s.Getenv(wire.EnvTarget) != wire.TargetAgent {
			return v.findErr
		}
		return l.Agent.SFTP(ctx, s, rw)
	}
	if v.chroot {
		return l.sftpHelper(ctx, s, v.proc, rw)
	}
	root, err := rootfs.OpenDir(v.proc.Root())
	if err != nil {
		return err
	}
	defer root.Close()
	start := v.proc.Cwd
	if fi, err := root.Stat(start); err != nil || !fi.IsDir() {
		start = "/"
	}
	s.Log().Info("sftp in the app's root, confined with openat2", "pid", v.proc.PID, "root", v.proc.Root())
	return ServeSFTPInRoot(rw, root, start)
}

func (l *AppLauncher) sftpHelper(ctx context.Context, s *SessionInfo, p *approc.Proc, rw io.ReadWriteCloser) error {
	helper, err := l.helper()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, helper, approc.HelperArgs(p)...)
	cmd.Env = AgentEnv()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = rw
	// The helper's stderr holds its errors ("sftp-in-app: ..."), one a line.
	stderr := agentlog.NewLineWriter(s.Log(), slog.LevelWarn, "sftp helper")
	defer stderr.Close()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(stdin, rw)
		stdin.Close()
	}()
	s.Log().Info("sftp chrooted into the app's root", "pid", p.PID, "uid", p.UID)
	return cmd.Wait()
}

func toUint32(in []int) []uint32 {
	out := make([]uint32, len(in))
	for i, v := range in {
		out[i] = uint32(v)
	}
	return out
}
