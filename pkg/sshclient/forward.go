package sshclient

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
)

// Forward is one -L [bind_address:]port:host:hostport.
type Forward struct {
	BindAddr string
	BindPort int
	Host     string
	HostPort int
}

// ParseForward parses ssh's -L syntax: [bind_address:]port:host:hostport,
// IPv6 addresses in brackets. The bind address defaults to localhost.
func ParseForward(spec string) (Forward, error) {
	parts, err := splitForward(spec)
	if err != nil {
		return Forward{}, err
	}
	var f Forward
	switch len(parts) {
	case 3:
		f.BindAddr = "localhost"
	case 4:
		f.BindAddr, parts = parts[0], parts[1:]
		if f.BindAddr == "" || f.BindAddr == "*" {
			f.BindAddr = ""
		}
	default:
		return Forward{}, fmt.Errorf("-L %q: want [bind_address:]port:host:hostport", spec)
	}
	if f.BindPort, err = port(parts[0], true); err != nil {
		return Forward{}, fmt.Errorf("-L %q: %w", spec, err)
	}
	f.Host = parts[1]
	if f.Host == "" {
		return Forward{}, fmt.Errorf("-L %q: the host is empty", spec)
	}
	if f.HostPort, err = port(parts[2], false); err != nil {
		return Forward{}, fmt.Errorf("-L %q: %w", spec, err)
	}
	return f, nil
}

func splitForward(spec string) ([]string, error) {
	var parts []string
	var cur strings.Builder
	inBracket := false
	for _, r := range spec {
		switch {
		case r == '[' && !inBracket:
			inBracket = true
		case r == ']' && inBracket:
			inBracket = false
		case r == ':' && !inBracket:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if inBracket {
		return nil, fmt.Errorf("-L %q: unbalanced [", spec)
	}
	return append(parts, cur.String()), nil
}

func port(s string, allowZero bool) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !allowZero) {
		return 0, fmt.Errorf("%q is not a port", s)
	}
	return n, nil
}

// Listen opens the local listener of f.
func (f Forward) Listen() (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort(f.BindAddr, strconv.Itoa(f.BindPort)))
}

// ServeForward accepts connections on ln and forwards each through the
// agent to f's host and port (the pod's loopback) until ctx ends or the
// connection is lost. Errors of single connections go to errOut.
func (c *Client) ServeForward(ctx context.Context, ln net.Listener, f Forward, errOut io.Writer) {
	go func() {
		select {
		case <-ctx.Done():
		case <-c.lost:
		}
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		lc, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer lc.Close()
			rc, err := c.Dial("tcp", net.JoinHostPort(f.Host, strconv.Itoa(f.HostPort)))
			if err != nil {
				fmt.Fprintf(errOut, "kubectl devssh: forwarding %s to %s:%d: %v\n", ln.Addr(), f.Host, f.HostPort, err)
				return
			}
			defer rc.Close()
			done := make(chan struct{}, 2)
			go func() {
				_, _ = io.Copy(rc, lc)
				if cw, ok := rc.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
				done <- struct{}{}
			}()
			go func() {
				_, _ = io.Copy(lc, rc)
				if cw, ok := lc.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
				done <- struct{}{}
			}()
			<-done
			<-done
		}()
	}
}
