package sshserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
)

// directTCPIPPayload is RFC 4254 7.2's "direct-tcpip" channel data.
type directTCPIPPayload struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

// LoopbackHost reports whether host names the pod's loopback: "localhost"
// or a loopback IP. direct-tcpip goes nowhere else: the agent is not a
// proxy into the cluster network.
func LoopbackHost(host string) bool {
	if host == "localhost" || host == "localhost." {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) directTCPIP(ctx context.Context, nc ssh.NewChannel, log *slog.Logger) {
	var p directTCPIPPayload
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	if !LoopbackHost(p.Host) || p.Port == 0 || p.Port > 65535 {
		log.Warn("port forward refused: only the pod's loopback is reachable", "to", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
		_ = nc.Reject(ssh.Prohibited, fmt.Sprintf("only localhost ports of the pod can be forwarded, not %s:%d", p.Host, p.Port))
		return
	}
	var conn net.Conn
	var err error
	hosts := []string{p.Host}
	if p.Host == "localhost" || p.Host == "localhost." {
		hosts = []string{"127.0.0.1", "::1"}
	}
	for _, h := range hosts {
		d := net.Dialer{Timeout: 10 * time.Second}
		conn, err = d.DialContext(ctx, "tcp", net.JoinHostPort(h, strconv.Itoa(int(p.Port))))
		if err == nil {
			break
		}
	}
	to := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	if err != nil {
		// The app not listening (yet) is the client's business: it gets
		// the error.
		log.Debug("port forward failed", "to", to, "err", err)
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	log.Debug("port forward", "to", to)
	pipe(ch, conn)
}

// pipe copies both ways until both directions end, half-closing each side
// when the other's input ends.
func pipe(ch ssh.Channel, conn net.Conn) {
	defer ch.Close()
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(conn, ch)
		if tc, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(ch, conn)
		_ = ch.CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
}
