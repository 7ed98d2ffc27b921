package sshserver

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// ForAgent is the devagent's server: on wire.Addr, sessions in the app's
// view (AppLauncher), the agent's own shell in /bin/sh otherwise.
// Sessions log through log (nil: discarded), with their connection's and
// session's attributes (SessionInfo.Logger).
func ForAgent(hostKey ssh.Signer, authorized func() ([]ssh.PublicKey, error), log *slog.Logger) (*Server, error) {
	return New(Config{
		Addr:           wire.Addr,
		HostKey:        hostKey,
		AuthorizedKeys: authorized,
		Launcher:       &AppLauncher{},
		Logger:         log,
	})
}

// Start listens (so that an error such as a port in use is returned at
// once) and serves in the background until ctx ends.
func (s *Server) Start(ctx context.Context) error { return s.StartOn(ctx, "") }

// StartOn is Start on another loopback address (tests use 127.0.0.1:0);
// empty means the configured one. Addr then reports the bound address.
func (s *Server) StartOn(ctx context.Context, addr string) error {
	if addr != "" {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("SSH address %q is not a loopback address", addr)
		}
		s.cfg.Addr = addr
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("the SSH server cannot listen on %s: %w", s.cfg.Addr, err)
	}
	s.cfg.Addr = ln.Addr().String()
	go func() {
		if err := s.Serve(ctx, ln); err != nil {
			s.log.Error("the SSH server stopped accepting connections", "addr", s.cfg.Addr, "err", err)
		}
	}()
	return nil
}

// Probe checks that an SSH server answers on addr with its identification
// string (the agent's readiness probe).
func Probe(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return fmt.Errorf("the SSH server does not answer on %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("the SSH server on %s sent no identification: %w", addr, err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("%s is not an SSH server (it said %q)", addr, strings.TrimSpace(line))
	}
	return nil
}
