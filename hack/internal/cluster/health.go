//go:build linux

package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// httpClient returns a client that trusts our CA and presents certName's pair
// (when not empty). insecure skips server verification (self-signed serving
// certificates of controller-manager and scheduler on loopback).
func (c Config) httpClient(certName string, insecure bool) (*http.Client, error) {
	tc := &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // loopback health checks only
	if !insecure {
		pem, err := os.ReadFile(c.PKI().CACert())
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tc.RootCAs = pool
	}
	if certName != "" {
		pair, err := tls.LoadX509KeyPair(c.PKI().Cert(certName), c.PKI().Key(certName))
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true, Proxy: nil},
	}, nil
}

func get(ctx context.Context, cl *http.Client, url string, want func(code int, body string) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if !want(resp.StatusCode, string(b)) {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(tail(string(b), 3)))
	}
	return nil
}

func ok200(code int, _ string) bool { return code == http.StatusOK }

// Health checks one component once.
func (c Config) Health(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	switch name {
	case "registry":
		cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		return get(ctx, cl, "http://"+c.RegistryAddr+"/v2/", func(code int, _ string) bool { return code == 200 || code == 401 })
	case "containerd":
		conn, err := (&net.Dialer{}).DialContext(ctx, "unix", c.ContainerdSocket())
		if err != nil {
			return err
		}
		return conn.Close()
	case "etcd":
		cl, err := c.httpClient("apiserver-etcd-client", false)
		if err != nil {
			return err
		}
		return get(ctx, cl, c.EtcdURL()+"/health", func(code int, body string) bool {
			return code == 200 && strings.Contains(body, `"health":"true"`)
		})
	case "kube-apiserver":
		cl, err := c.httpClient("admin", false)
		if err != nil {
			return err
		}
		return get(ctx, cl, c.APIServerURL()+"/readyz", ok200)
	case "kube-controller-manager", "kube-scheduler":
		port := 10257
		if name == "kube-scheduler" {
			port = 10259
		}
		cl, err := c.httpClient("", true)
		if err != nil {
			return err
		}
		return get(ctx, cl, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), ok200)
	case "kubelet":
		cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		return get(ctx, cl, "http://127.0.0.1:10248/healthz", ok200)
	}
	return fmt.Errorf("unknown component %q", name)
}

// poll calls cond until it returns nil, the deadline passes, or stop reports
// a reason to give up early. It returns cond's last error on timeout.
func poll(ctx context.Context, timeout, every time.Duration, cond func(context.Context) error, stop func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = cond(ctx); last == nil {
			return nil
		}
		if stop != nil {
			if err := stop(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("timed out after %s: %w", timeout, last)
		case <-time.After(every):
		}
	}
}
