//go:build linux

// Package supervisor runs the app's original command as a child and
// restarts it on request without exiting, so that "kubectl devsync
// --restart" restarts the app inside its container: the container's main
// process (the supervisor) never exits, the kubelet sees no restart, the
// restartCount and the synced files stay.
//
// kubectl devpatch --supervise copies the agent binary into an emptyDir and
// makes the app container's command "devagent supervise [flags] -- ARGV".
// The supervisor forwards signals to the child's process group (so the
// kubelet's SIGTERM reaches the app), reaps orphans, and exits with the
// child's exit code when the child exits on its own (unless --keep-running).
//
// Control: SIGUSR1 to the supervisor restarts the child (the agent sidecar
// sees the supervisor through the pod's shared PID namespace), and an
// optional unix socket in the shared emptyDir takes line commands:
// "restart", "signal HUP", "status" (see Request).
package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentlog"
)

// Options configure a Supervisor.
type Options struct {
	// Argv is the app's command; Argv[0] is looked up in PATH when it has
	// no slash.
	Argv []string
	// Env is the child's environment (nil: the supervisor's).
	Env []string
	// Dir is the child's working directory ("" : the supervisor's).
	Dir string
	// Grace is the time between SIGTERM and SIGKILL on a restart (default 10 s).
	Grace time.Duration
	// Socket is the path of the control socket ("" for none).
	Socket string
	// KeepRunning keeps the supervisor alive when the child exits on its
	// own; it waits for a restart request.
	KeepRunning bool
	// Stdin, Stdout, Stderr of the child (default: the supervisor's).
	Stdin, Stdout, Stderr *os.File
	// Signals delivers the signals the supervisor received; nil subscribes
	// to the real ones (SIGUSR1 restarts, the others are forwarded).
	Signals <-chan os.Signal
	// ReapAll reaps every child, not only the app: set it when the
	// supervisor is PID 1 or a child subreaper.
	ReapAll bool
	// Logger receives the supervisor's events (nil: discarded).
	Logger *slog.Logger
}

// Status describes the supervised app.
type Status struct {
	PID      int // 0 when not running
	Restarts int
	LastExit int // exit code of the last child that ended (-1: none yet)
}

type exitEvent struct {
	pid  int
	code int
}

type request struct {
	kind  string // "restart", "signal", "status"
	sig   syscall.Signal
	reply chan reply
}

type reply struct {
	status Status
	err    error
}

// Supervisor runs and restarts one child process.
type Supervisor struct {
	opts  Options
	log   *slog.Logger
	path  string
	exits chan exitEvent
	reqs  chan request

	mu     sync.Mutex
	proc   *os.Process
	status Status
}

// New checks the options and resolves the command.
func New(opts Options) (*Supervisor, error) {
	if len(opts.Argv) == 0 {
		return nil, errors.New("supervisor: no command to run: pass it after --")
	}
	p, err := exec.LookPath(opts.Argv[0])
	if err != nil {
		return nil, fmt.Errorf("supervisor: command %q: %w", opts.Argv[0], err)
	}
	if opts.Grace <= 0 {
		opts.Grace = 10 * time.Second
	}
	for _, f := range []**os.File{&opts.Stdin, &opts.Stdout, &opts.Stderr} {
		if *f == nil {
			switch f {
			case &opts.Stdin:
				*f = os.Stdin
			case &opts.Stdout:
				*f = os.Stdout
			default:
				*f = os.Stderr
			}
		}
	}
	return &Supervisor{opts: opts, log: agentlog.OrDiscard(opts.Logger), path: p, exits: make(chan exitEvent, 16), reqs: make(chan request), status: Status{LastExit: -1}}, nil
}

// Status returns the current state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Restart stops the child (SIGTERM, grace period, SIGKILL) and starts it
// again; it returns once the new child runs.
func (s *Supervisor) Restart(ctx context.Context) (Status, error) {
	return s.request(ctx, request{kind: "restart"})
}

// Signal sends sig to the child's process group.
func (s *Supervisor) Signal(ctx context.Context, sig syscall.Signal) error {
	_, err := s.request(ctx, request{kind: "signal", sig: sig})
	return err
}

func (s *Supervisor) request(ctx context.Context, r request) (Status, error) {
	r.reply = make(chan reply, 1)
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
	select {
	case rep := <-r.reply:
		return rep.status, rep.err
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
}

// Run starts the child and supervises it until the child exits on its own
// (the child's exit code is returned, 128+N for a signal N), until a
// terminating signal was forwarded and the child ended, or until ctx is
// cancelled (the child is stopped as for a restart).
func (s *Supervisor) Run(ctx context.Context) (int, error) {
	sigs := s.opts.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 16)
		signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGWINCH, syscall.SIGCONT)
		defer signal.Stop(ch)
		sigs = ch
	}
	if s.opts.ReapAll {
		stop := s.reapAll()
		defer stop()
	}
	if s.opts.Socket != "" {
		ln, err := s.listen()
		if err != nil {
			return 1, err
		}
		defer ln.Close()
	}
	if err := s.start(); err != nil {
		return 1, err
	}
	terminating := false
	for {
		select {
		case ev := <-s.exits:
			if !s.ended(ev) {
				continue
			}
			if terminating || !s.opts.KeepRunning {
				return ev.code, nil
			}
			s.log.Warn("the app exited; waiting for a restart request", "exit_code", ev.code)
		case sig := <-sigs:
			ssig, _ := sig.(syscall.Signal)
			if ssig == syscall.SIGUSR1 {
				s.log.Info("restarting the app", "on", "SIGUSR1")
				if err := s.restart(sigs, &terminating); err != nil {
					s.log.Error("restart failed", "err", err)
				}
				if terminating && s.Status().PID == 0 {
					return s.Status().LastExit, nil
				}
				continue
			}
			if ssig == syscall.SIGTERM || ssig == syscall.SIGINT || ssig == syscall.SIGQUIT {
				terminating = true
				if s.Status().PID == 0 {
					return 128 + int(ssig), nil
				}
			}
			s.log.Debug("forwarding a signal to the app", "signal", unix.SignalName(ssig))
			s.forward(ssig)
		case r := <-s.reqs:
			var err error
			switch r.kind {
			case "restart":
				s.log.Info("restarting the app", "on", "request")
				err = s.restart(sigs, &terminating)
				if err != nil {
					s.log.Error("restart failed", "err", err)
				}
			case "signal":
				if s.Status().PID == 0 {
					err = errors.New("the app is not running")
				} else {
					err = s.signal(r.sig)
				}
			}
			r.reply <- reply{status: s.Status(), err: err}
			if terminating && s.Status().PID == 0 {
				return s.Status().LastExit, nil
			}
		case <-ctx.Done():
			s.stop(nil, &terminating)
			return s.Status().LastExit, ctx.Err()
		}
	}
}

// ended records the exit of the current child; events of older children
// (already handled) return false.
func (s *Supervisor) ended(ev exitEvent) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || ev.pid != s.proc.Pid {
		return false
	}
	// The child is reaped already: Release only frees the pidfd, and the
	// supervisor has nothing to do if that fails.
	_ = s.proc.Release()
	s.proc = nil
	s.status.PID = 0
	s.status.LastExit = ev.code
	return true
}

func (s *Supervisor) start() error {
	proc, err := os.StartProcess(s.path, s.opts.Argv, &os.ProcAttr{
		Dir:   s.opts.Dir,
		Env:   s.opts.Env,
		Files: []*os.File{s.opts.Stdin, s.opts.Stdout, s.opts.Stderr},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return fmt.Errorf("supervisor: start %s: %w", s.opts.Argv[0], err)
	}
	s.mu.Lock()
	s.proc = proc
	s.status.PID = proc.Pid
	s.mu.Unlock()
	s.log.Info("started the app", "command", s.opts.Argv[0], "pid", proc.Pid)
	if !s.opts.ReapAll {
		go func(pid int) {
			var ws unix.WaitStatus
			for {
				_, err := unix.Wait4(pid, &ws, 0, nil)
				if err == unix.EINTR {
					continue
				}
				code := exitCode(ws)
				if err != nil {
					code = -1
				}
				s.exits <- exitEvent{pid: pid, code: code}
				return
			}
		}(proc.Pid)
	}
	return nil
}

func exitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return -1
}

// signal sends sig to the child's process group (the app and what it
// started), or to the child alone if it left its group.
func (s *Supervisor) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	if err := unix.Kill(-s.proc.Pid, sig); err == nil {
		return nil
	}
	return s.proc.Signal(sig) // pidfd-based: never hits a reused PID
}

// forward signals the app, logging a failure: there is nobody to return it
// to. An app that has just exited is not a failure (its exit event
// follows).
func (s *Supervisor) forward(sig syscall.Signal) {
	if err := s.signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.log.Warn("signalling the app failed", "signal", unix.SignalName(sig), "err", err)
	}
}

// stop ends the current child: SIGTERM, then SIGKILL after the grace
// period. Signals arriving meanwhile are handled (SIGTERM marks the
// supervisor as terminating).
func (s *Supervisor) stop(sigs <-chan os.Signal, terminating *bool) {
	if s.Status().PID == 0 {
		return
	}
	s.forward(syscall.SIGTERM)
	grace := time.NewTimer(s.opts.Grace)
	defer grace.Stop()
	killed := false
	for {
		select {
		case ev := <-s.exits:
			if s.ended(ev) {
				return
			}
		case <-grace.C:
			if !killed {
				s.log.Warn("the app did not stop within the grace period: killing it", "grace", s.opts.Grace)
				s.forward(syscall.SIGKILL)
				killed = true
			}
		case sig := <-sigs:
			if ssig, _ := sig.(syscall.Signal); ssig == syscall.SIGTERM || ssig == syscall.SIGINT {
				*terminating = true
			}
		}
	}
}

func (s *Supervisor) restart(sigs <-chan os.Signal, terminating *bool) error {
	s.stop(sigs, terminating)
	if *terminating {
		return errors.New("the supervisor is terminating")
	}
	if err := s.start(); err != nil {
		return err
	}
	s.mu.Lock()
	s.status.Restarts++
	s.mu.Unlock()
	return nil
}

// reapAll reaps every child process on SIGCHLD, reporting the app's exit.
func (s *Supervisor) reapAll() (stop func()) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGCHLD)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ch:
			}
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if err == unix.EINTR {
					continue
				}
				if err != nil || pid <= 0 {
					break
				}
				s.exits <- exitEvent{pid: pid, code: exitCode(ws)}
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

func (s *Supervisor) listen() (net.Listener, error) {
	if err := os.Remove(s.opts.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("supervisor: remove the stale socket %s: %w", s.opts.Socket, err)
	}
	ln, err := net.Listen("unix", s.opts.Socket)
	if err != nil {
		return nil, fmt.Errorf("supervisor: control socket %s: %w", s.opts.Socket, err)
	}
	if err := os.Chmod(s.opts.Socket, 0o660); err != nil {
		// The socket still works for its owner (the umask's mode).
		s.log.Warn("control socket: chmod 0660 failed", "socket", s.opts.Socket, "err", err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serveConn(conn)
		}
	}()
	return ln, nil
}

func (s *Supervisor) serveConn(conn net.Conn) {
	defer conn.Close()
	sc := bufio.NewScanner(io.LimitReader(conn, 4096))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		s.log.Debug("control socket request", "command", sc.Text())
		ctx := context.Background()
		var st Status
		var err error
		switch {
		case f[0] == "restart" && len(f) == 1:
			st, err = s.Restart(ctx)
		case f[0] == "signal" && len(f) == 2:
			sig := unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(f[1]), "SIG"))
			if sig == 0 {
				err = fmt.Errorf("unknown signal %q", f[1])
			} else {
				st, err = s.request(ctx, request{kind: "signal", sig: sig})
			}
		case f[0] == "status" && len(f) == 1:
			st = s.Status()
		default:
			err = fmt.Errorf("unknown command %q: use restart, signal NAME or status", sc.Text())
		}
		if err != nil {
			fmt.Fprintf(conn, "error: %v\n", err)
		} else {
			fmt.Fprintf(conn, "ok pid=%d restarts=%d last-exit=%d\n", st.PID, st.Restarts, st.LastExit)
		}
	}
}

// Request sends one command ("restart", "signal HUP", "status") to the
// control socket of a supervisor and returns its answer ("ok pid=...").
func Request(ctx context.Context, socket, command string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", fmt.Errorf("supervisor socket %s: %w (is the workload patched with kubectl devpatch --supervise?)", socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return "", fmt.Errorf("supervisor socket %s: %w", socket, err)
		}
	}
	if _, err := fmt.Fprintln(conn, command); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("supervisor socket %s: %w", socket, err)
	}
	line = strings.TrimSpace(line)
	if msg, ok := strings.CutPrefix(line, "error: "); ok {
		return "", fmt.Errorf("supervisor: %s", msg)
	}
	return line, nil
}
