package sshserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentlog"
)

// SessionInfo is what a session's client asked for before its shell, exec
// or subsystem request.
type SessionInfo struct {
	User           string
	RemoteAddr     string
	KeyFingerprint string
	// Env holds the client's "env" requests as NAME=VALUE, in order.
	Env []string
	// PTY is true after a pty-req; Term is its terminal type.
	PTY        bool
	Term       string
	Rows, Cols uint32
	// Logger is the session's logger: the server's, with the connection's
	// attributes (remote, user) and the session's number (session). The
	// launcher and subsystem handlers log through it (see Log).
	Logger *slog.Logger
}

// Log is the session's logger; a SessionInfo made elsewhere than by the
// server (tests) has none, and its records are discarded.
func (s *SessionInfo) Log() *slog.Logger { return agentlog.OrDiscard(s.Logger) }

// Getenv returns the last value the client sent for name.
func (s *SessionInfo) Getenv(name string) string {
	for i := len(s.Env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(s.Env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

type ptyRequestMsg struct {
	Term     string
	Columns  uint32
	Rows     uint32
	Width    uint32
	Height   uint32
	Modelist string
}

type windowChangeMsg struct {
	Columns uint32
	Rows    uint32
	Width   uint32
	Height  uint32
}

type envMsg struct {
	Name  string
	Value string
}

type execMsg struct{ Command string }

type subsystemMsg struct{ Name string }

type signalMsg struct{ Signal string }

type exitStatusMsg struct{ Status uint32 }

// session is one "session" channel.
type session struct {
	srv  *Server
	ch   ssh.Channel
	info SessionInfo
	log  *slog.Logger

	mu      sync.Mutex
	started bool
	ptmx    *os.File
	proc    *os.Process
}

func (s *Server) serveSession(ctx context.Context, sc *ssh.ServerConn, ch ssh.Channel, reqs <-chan *ssh.Request, log *slog.Logger) {
	ss := &session{srv: s, ch: ch, info: SessionInfo{
		User:           sc.User(),
		RemoteAddr:     sc.RemoteAddr().String(),
		KeyFingerprint: sc.Permissions.Extensions[extFingerprint],
		Logger:         log.With("session", s.sessions.Add(1)),
	}}
	ss.log = ss.info.Logger
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	for req := range reqs {
		ok := ss.handle(ctx, req, done)
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
	// The client closed the channel: a process still running gets SIGHUP, as
	// with a terminal hang-up.
	ss.mu.Lock()
	p, started := ss.proc, ss.started
	ss.mu.Unlock()
	if p != nil {
		_ = p.Signal(syscall.SIGHUP)
	}
	if started {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			if p != nil {
				_ = p.Kill()
			}
		}
	}
	ch.Close()
}

func (ss *session) handle(ctx context.Context, req *ssh.Request, done chan struct{}) bool {
	switch req.Type {
	case "env":
		var m envMsg
		if ssh.Unmarshal(req.Payload, &m) != nil || m.Name == "" || strings.ContainsAny(m.Name, "=\x00") {
			return false
		}
		ss.log.Debug("env request", "name", m.Name) // not the value: it may be a secret
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.started {
			return false
		}
		ss.info.Env = append(ss.info.Env, m.Name+"="+m.Value)
		return true
	case "pty-req":
		var m ptyRequestMsg
		if ssh.Unmarshal(req.Payload, &m) != nil {
			return false
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.started {
			return false
		}
		ss.info.PTY, ss.info.Term, ss.info.Cols, ss.info.Rows = true, m.Term, m.Columns, m.Rows
		ss.log.Debug("pty request", "term", m.Term, "cols", m.Columns, "rows", m.Rows)
		return true
	case "window-change":
		var m windowChangeMsg
		if ssh.Unmarshal(req.Payload, &m) != nil {
			return false
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		ss.info.Cols, ss.info.Rows = m.Columns, m.Rows
		if ss.ptmx != nil {
			_ = pty.Setsize(ss.ptmx, &pty.Winsize{Rows: uint16(m.Rows), Cols: uint16(m.Columns)})
		}
		return true
	case "signal":
		var m signalMsg
		if ssh.Unmarshal(req.Payload, &m) != nil {
			return false
		}
		sig, ok := signals[m.Signal]
		ss.mu.Lock()
		p := ss.proc
		ss.mu.Unlock()
		if !ok || p == nil {
			return false
		}
		ss.log.Debug("signal request", "signal", m.Signal, "pid", p.Pid)
		_ = p.Signal(sig)
		return true
	case "shell", "exec":
		var command string
		if req.Type == "exec" {
			var m execMsg
			if ssh.Unmarshal(req.Payload, &m) != nil {
				return false
			}
			command = m.Command
		}
		info, ok := ss.start()
		if !ok {
			return false
		}
		ss.log.Debug(req.Type+" request", "pty", info.PTY)
		proc, err := ss.srv.cfg.Launcher.Command(ctx, &info, command)
		if err != nil {
			ss.log.Warn("the session's process cannot be made", "request", req.Type, "err", err)
			fmt.Fprintf(ss.ch.Stderr(), "devagent: %v\r\n", err)
			go ss.finish(done, 255)
			return true
		}
		go func() {
			code := ss.run(proc, &info, command == "")
			ss.log.Debug("session ended", "request", req.Type, "exit_status", code)
			ss.finish(done, code)
		}()
		return true
	case "subsystem":
		var m subsystemMsg
		if ssh.Unmarshal(req.Payload, &m) != nil {
			return false
		}
		h := ss.srv.cfg.Subsystems[m.Name]
		if h == nil {
			ss.log.Warn("subsystem refused: not supported", "subsystem", m.Name)
			return false
		}
		ss.log.Debug("subsystem request", "subsystem", m.Name)
		info, ok := ss.start()
		if !ok {
			return false
		}
		go func() {
			code := 0
			if err := h(ctx, ss.ch, &info); err != nil && !errors.Is(err, io.EOF) {
				ss.log.Warn("subsystem failed", "subsystem", m.Name, "err", err)
				code = 1
			}
			ss.finish(done, code)
		}()
		return true
	}
	// x11-req, auth-agent-req@openssh.com and the rest are not supported.
	return false
}

// start marks the session started and returns a copy of its info.
func (ss *session) start() (SessionInfo, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.started {
		return SessionInfo{}, false
	}
	ss.started = true
	info := ss.info
	info.Env = append([]string(nil), ss.info.Env...)
	return info, true
}

func (ss *session) finish(done chan struct{}, code int) {
	_ = ss.ch.CloseWrite()
	_, _ = ss.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{Status: uint32(code)}))
	ss.ch.Close()
	close(done)
}

// run runs a session's process and returns its exit code as a shell
// reports it (128+n for a signal, 255 when it cannot start).
func (ss *session) run(p *Process, info *SessionInfo, interactive bool) int {
	cmd := p.Cmd
	if p.Notice != "" && interactive {
		notice := p.Notice
		if info.PTY {
			notice = strings.ReplaceAll(notice, "\n", "\r\n")
		}
		_, _ = io.WriteString(ss.ch.Stderr(), notice)
	}
	if info.PTY {
		return ss.runPTY(cmd, info)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return ss.startFailed(err)
	}
	cmd.Stdout = ss.ch
	cmd.Stderr = ss.ch.Stderr()
	// A background process that keeps the output open must not hold the
	// session forever once the command has exited.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return ss.startFailed(err)
	}
	ss.setProc(cmd.Process, nil)
	go func() {
		_, _ = io.Copy(stdin, ss.ch)
		stdin.Close()
	}()
	return exitCode(cmd.Wait())
}

func (ss *session) runPTY(cmd *exec.Cmd, info *SessionInfo) int {
	ws := &pty.Winsize{Rows: uint16(info.Rows), Cols: uint16(info.Cols)}
	if ws.Rows == 0 || ws.Cols == 0 {
		ws.Rows, ws.Cols = 24, 80
	}
	ptmx, err := pty.StartWithSize(cmd, ws)
	if err != nil {
		return ss.startFailed(err)
	}
	defer func() {
		ss.mu.Lock()
		ss.ptmx = nil
		ss.mu.Unlock()
		ptmx.Close()
	}()
	ss.setProc(cmd.Process, ptmx)
	// A window change that came between the pty-req and the start.
	ss.mu.Lock()
	if info.Rows != ss.info.Rows || info.Cols != ss.info.Cols {
		_ = pty.Setsize(ptmx, &pty.Winsize{Rows: uint16(ss.info.Rows), Cols: uint16(ss.info.Cols)})
	}
	ss.mu.Unlock()
	go func() { _, _ = io.Copy(ptmx, ss.ch) }()
	outDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(ss.ch, ptmx) // ends with EIO once every holder of the tty closed it
		close(outDone)
	}()
	err = cmd.Wait()
	select {
	case <-outDone:
	case <-time.After(2 * time.Second): // a background job still holds the tty
	}
	return exitCode(err)
}

func (ss *session) setProc(p *os.Process, ptmx *os.File) {
	ss.mu.Lock()
	ss.proc, ss.ptmx = p, ptmx
	ss.mu.Unlock()
}

func (ss *session) startFailed(err error) int {
	ss.log.Warn("the session's process did not start", "err", err)
	fmt.Fprintf(ss.ch.Stderr(), "devagent: %v\r\n", err)
	return 255
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 255
}
