// Package sshserver is the devagent's SSH server, built on
// golang.org/x/crypto/ssh: public-key authentication only (against an
// authorized_keys source re-read on every attempt), sessions with a PTY,
// window changes, shell, exec with the exit status, env and signals,
// subsystems from a table (sftp by default), direct-tcpip to the pod's
// loopback only, and keepalives.
//
// Where a session's process runs (the app's view or the agent's) is the
// Launcher's business; see AppLauncher.
package sshserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentlog"
	"github.com/kubectl-dev/kubectl-dev/pkg/keepalive"
	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// SubsystemHandler serves one subsystem request on a session channel. The
// channel is closed (after an exit-status from the returned error) when it
// returns.
type SubsystemHandler func(ctx context.Context, ch ssh.Channel, s *SessionInfo) error

// Config is the server's configuration.
type Config struct {
	// Addr is the listen address; wire.Addr when empty. It must be a
	// loopback address: New refuses any other.
	Addr string
	// HostKey is the server's host key.
	HostKey ssh.Signer
	// AuthorizedKeys returns the keys allowed in; it is called on every
	// authentication attempt (see FileAuthorizedKeys).
	AuthorizedKeys func() ([]ssh.PublicKey, error)
	// Launcher makes the processes of shells and commands; LocalLauncher
	// (the agent's own shell) when nil.
	Launcher Launcher
	// Subsystems are served by name; "sftp" defaults to an sftp server on
	// the launcher's view (see SFTPHandler) unless set.
	Subsystems map[string]SubsystemHandler
	// KeepaliveInterval is how often the server checks that a client is
	// alive (30s when zero; negative disables); after KeepaliveMax missed
	// replies (3 when zero) the connection is closed.
	KeepaliveInterval time.Duration
	KeepaliveMax      int
	// Logger receives connections, sessions (see SessionInfo.Logger),
	// refusals and errors; nil discards.
	Logger *slog.Logger
}

// Server is the SSH server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	sshCfg   *ssh.ServerConfig
	wg       sync.WaitGroup
	sessions atomic.Uint64 // numbers the sessions, for their log records
}

// Extension keys of ssh.Permissions set at authentication.
const (
	extFingerprint = "devagent-key-fp"
	extComment     = "devagent-key-comment"
)

// New checks cfg and builds a server.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = wire.Addr
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", cfg.Addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("listen address %q is not a loopback address: the agent must not be reachable from the pod network", cfg.Addr)
	}
	if cfg.HostKey == nil {
		return nil, errors.New("no host key")
	}
	if cfg.AuthorizedKeys == nil {
		return nil, errors.New("no authorized keys")
	}
	if cfg.Launcher == nil {
		cfg.Launcher = LocalLauncher{}
	}
	if cfg.KeepaliveInterval == 0 {
		cfg.KeepaliveInterval = 30 * time.Second
	}
	if cfg.KeepaliveMax == 0 {
		cfg.KeepaliveMax = 3
	}
	subs := map[string]SubsystemHandler{}
	for k, v := range cfg.Subsystems {
		subs[k] = v
	}
	if _, ok := subs["sftp"]; !ok {
		subs["sftp"] = SFTPHandler(cfg.Launcher)
	}
	cfg.Subsystems = subs
	s := &Server{cfg: cfg, log: agentlog.OrDiscard(cfg.Logger)}
	s.sshCfg = &ssh.ServerConfig{
		// Only public keys: with no password or keyboard-interactive
		// callback, x/crypto offers neither, and "none" always fails.
		PublicKeyCallback: s.checkKey,
		MaxAuthTries:      6,
		ServerVersion:     wire.ServerVersion,
		AuthLogCallback: func(conn ssh.ConnMetadata, method string, err error) {
			if err != nil && method != "none" {
				s.log.Warn("authentication refused", "remote", conn.RemoteAddr().String(), "user", conn.User(), "method", method, "err", err)
			}
		},
	}
	s.sshCfg.AddHostKey(cfg.HostKey)
	return s, nil
}

func (s *Server) checkKey(conn ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	allowed, err := s.cfg.AuthorizedKeys()
	if err != nil {
		return nil, fmt.Errorf("reading the authorized keys: %w", err)
	}
	want := key.Marshal()
	for _, k := range allowed {
		if bytes.Equal(k.Marshal(), want) {
			return &ssh.Permissions{Extensions: map[string]string{extFingerprint: ssh.FingerprintSHA256(key)}}, nil
		}
	}
	return nil, fmt.Errorf("key %s is not authorized", ssh.FingerprintSHA256(key))
}

// ListenAndServe listens on the configured loopback address and serves
// until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Addr is the configured listen address.
func (s *Server) Addr() string { return s.cfg.Addr }

// Serve accepts connections on ln until ctx ends, then closes ln and waits
// for the connections' goroutines to notice.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // ctx ended and closed ln: a clean shutdown, not an accept failure
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.ServeConn(ctx, c)
		}()
	}
}

// ServeConn runs the SSH protocol on one connection until it ends.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	c := keepalive.NewConn(nc)
	defer c.Close()
	// The handshake must not hang forever on a silent peer.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.sshCfg)
	if err != nil {
		var authErr *ssh.ServerAuthError
		switch {
		case errors.Is(err, io.EOF):
			// The readiness probe reads the version line and hangs up.
		case errors.As(err, &authErr):
			// Already logged, attempt by attempt, by AuthLogCallback.
			s.log.Debug("handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		default:
			s.log.Warn("handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		}
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer sc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		sc.Close()
	}()
	log := s.log.With("remote", sc.RemoteAddr().String(), "user", sc.User())
	log.Info("connection", "key", sc.Permissions.Extensions[extFingerprint], "client", string(sc.ClientVersion()))
	start := time.Now()
	defer func() { log.Debug("connection closed", "duration", time.Since(start).Round(time.Millisecond)) }()
	go s.keepalive(ctx, sc, c, log)
	go func() {
		for r := range reqs {
			// keepalive@openssh.com and anything else: not supported,
			// which is also the answer a keepalive expects.
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}()
	var wg sync.WaitGroup
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serveSession(ctx, sc, ch, creqs, log)
			}()
		case "direct-tcpip":
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.directTCPIP(ctx, nc, log)
			}()
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unsupported channel type "+nc.ChannelType())
		}
	}
	cancel()
	wg.Wait()
}

// keepalive checks the client every KeepaliveInterval: one keepalive
// request at a time, its answer waited for one interval. An interval
// without the answer counts as missed only when nothing at all arrived from
// the client during it: on a slow link busy with an upload the answer waits
// behind the queued data while the upload keeps arriving. After
// KeepaliveMax missed intervals in a row the connection is closed.
func (s *Server) keepalive(ctx context.Context, sc *ssh.ServerConn, c *keepalive.Conn, log *slog.Logger) {
	if s.cfg.KeepaliveInterval < 0 {
		return
	}
	err := keepalive.Run(ctx.Done(), s.cfg.KeepaliveInterval, s.cfg.KeepaliveMax, c, func() error {
		_, _, err := sc.SendRequest(wire.KeepaliveRequest, true, nil)
		return err
	})
	if errors.Is(err, keepalive.ErrMissed) {
		log.Warn("the client stopped answering keepalives: closing the connection", "missed", s.cfg.KeepaliveMax)
		sc.Close()
	}
}

// FileAuthorizedKeys returns an AuthorizedKeys source that reads path on
// every call, so that a Secret volume's update (an atomic symlink swap) is
// seen by the next authentication. The parsed keys are cached by content.
// A file that cannot be read or holds no key lets nobody in.
func FileAuthorizedKeys(path string) func() ([]ssh.PublicKey, error) {
	var mu sync.Mutex
	var last []byte
	var cached []ssh.PublicKey
	return func() ([]ssh.PublicKey, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if cached != nil && bytes.Equal(data, last) {
			return cached, nil
		}
		ks, err := keys.RequireAuthorizedKeys(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out := make([]ssh.PublicKey, len(ks))
		for i, k := range ks {
			out[i] = k.Key
		}
		last, cached = data, out
		return out, nil
	}
}

// StaticAuthorizedKeys is an AuthorizedKeys source of fixed keys (the
// agent's environment variables, tests).
func StaticAuthorizedKeys(ks []keys.AuthorizedKey) func() ([]ssh.PublicKey, error) {
	out := make([]ssh.PublicKey, len(ks))
	for i, k := range ks {
		out[i] = k.Key
	}
	return func() ([]ssh.PublicKey, error) { return out, nil }
}

// Handle registers (or replaces) a subsystem before the server starts, e.g.
// srv.Handle("devsync", h). It is not safe to call while serving.
func (s *Server) Handle(name string, h SubsystemHandler) {
	s.cfg.Subsystems[name] = h
}

// Launcher is the server's launcher (for subsystems that need the app's
// view, e.g. an *AppLauncher's FindApp).
func (s *Server) Launcher() Launcher { return s.cfg.Launcher }
