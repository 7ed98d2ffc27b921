package portforward

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
	"k8s.io/klog/v2"
)

// predialMaxAge is how long a pre-dialled connection is kept waiting: an
// older one (the pod took long to become ready) may have been dropped by
// something on the way, and a fresh one is dialled instead.
const predialMaxAge = 20 * time.Second

// Predial is a TCP and TLS connection to the API server opened ahead of
// the port-forward upgrade, while the requests that find the pod run: the
// upgrade (an HTTP/1.1 request, so not on client-go's HTTP/2 connection)
// then costs one round trip instead of three (TCP, TLS, upgrade). Only the
// first dial of the WebSocket tunnel takes it.
type Predial struct {
	addr  string
	start time.Time
	done  chan struct{}
	conn  net.Conn
	err   error

	mu    sync.Mutex
	taken bool
}

// StartPredial starts dialling the API server of config, or returns nil
// when it would not be the connection the upgrade uses: a proxy, a custom
// dialer, plain HTTP, or WebSockets turned off.
func StartPredial(config *rest.Config) *Predial {
	if config == nil || config.Dial != nil || config.Proxy != nil || websocketsDisabled() {
		return nil
	}
	u, err := url.Parse(config.Host)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil
	}
	if p, err := utilnet.NewProxierWithNoProxyCIDR(http.ProxyFromEnvironment)(&http.Request{URL: u}); err != nil || p != nil {
		return nil
	}
	tc, err := config.TransportConfig()
	if err != nil {
		return nil
	}
	tlsConfig, err := transport.TLSConfigFor(tc)
	if err != nil {
		return nil
	}
	if tlsConfig == nil {
		tlsConfig = &tls.Config{}
	}
	tlsConfig = tlsConfig.Clone()
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = u.Hostname()
	}
	tlsConfig.NextProtos = []string{"http/1.1"}
	p := &Predial{addr: addr, start: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}, Config: tlsConfig}
		p.conn, p.err = d.DialContext(context.Background(), "tcp", addr)
		klog.V(5).Infof("pre-dialled %s in %v (err %v)", addr, time.Since(p.start), p.err)
	}()
	return p
}

// take returns the pre-dialled connection to addr, once, when it is young
// enough; nil otherwise.
func (p *Predial) take(addr string) net.Conn {
	if p == nil || addr != p.addr {
		return nil
	}
	p.mu.Lock()
	taken := p.taken
	p.taken = true
	p.mu.Unlock()
	if taken {
		return nil
	}
	<-p.done
	if p.err != nil || time.Since(p.start) > predialMaxAge {
		if p.conn != nil {
			p.conn.Close()
		}
		return nil
	}
	return p.conn
}

// Close closes the connection when nothing took it.
func (p *Predial) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	taken := p.taken
	p.taken = true
	p.mu.Unlock()
	if taken {
		return
	}
	go func() {
		<-p.done
		if p.conn != nil {
			p.conn.Close()
		}
	}()
}

// wsRoundTripper is client-go's transport/websocket.RoundTripper with one
// difference: its TLS connection can be one dialled in advance (Predial).
// It holds the negotiated connection for websocket.Negotiate.
type wsRoundTripper struct {
	tlsConfig *tls.Config
	proxier   func(*http.Request) (*url.URL, error)
	predial   *Predial
	conn      *gwebsocket.Conn
}

// wsRoundTripperFor is websocket.RoundTripperFor with pre.
func wsRoundTripperFor(config *rest.Config, pre *Predial) (http.RoundTripper, *wsRoundTripper, error) {
	tc, err := config.TransportConfig()
	if err != nil {
		return nil, nil, err
	}
	tlsConfig, err := transport.TLSConfigFor(tc)
	if err != nil {
		return nil, nil, err
	}
	proxy := config.Proxy
	if proxy == nil {
		proxy = utilnet.NewProxierWithNoProxyCIDR(http.ProxyFromEnvironment)
	}
	rt := &wsRoundTripper{tlsConfig: tlsConfig, proxier: proxy, predial: pre}
	wrapper, err := transport.HTTPWrappersForConfig(tc, rt)
	if err != nil {
		return nil, nil, err
	}
	return wrapper, rt, nil
}

func (rt *wsRoundTripper) Connection() *gwebsocket.Conn { return rt.conn }
func (rt *wsRoundTripper) DataBufferSize() int          { return 32 * 1024 }

func (rt *wsRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	protocols := req.Header[wsstream.WebSocketProtocolHeader]
	delete(req.Header, wsstream.WebSocketProtocolHeader)
	dialer := gwebsocket.Dialer{
		Proxy:           rt.proxier,
		TLSClientConfig: rt.tlsConfig,
		Subprotocols:    protocols,
		ReadBufferSize:  rt.DataBufferSize() + 1024,
		WriteBufferSize: rt.DataBufferSize() + 1024,
	}
	if rt.predial != nil {
		dialer.NetDialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if c := rt.predial.take(addr); c != nil {
				return c, nil
			}
			cfg := rt.tlsConfig.Clone()
			if cfg == nil {
				cfg = &tls.Config{}
			}
			if cfg.ServerName == "" {
				host, _, _ := net.SplitHostPort(addr)
				cfg.ServerName = host
			}
			d := &tls.Dialer{Config: cfg}
			return d.DialContext(ctx, network, addr)
		}
	}
	u := *req.URL
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	default:
		return nil, fmt.Errorf("unknown url scheme: %s", u.Scheme)
	}
	ws, resp, err := dialer.DialContext(req.Context(), u.String(), req.Header)
	if err != nil {
		if errors.Is(err, gwebsocket.ErrBadHandshake) {
			return nil, &httpstream.UpgradeFailureError{Cause: handshakeError(err, resp)}
		}
		return nil, err
	}
	found := false
	for _, p := range protocols {
		found = found || p == ws.Subprotocol()
	}
	if !found {
		ws.Close()
		return nil, &httpstream.UpgradeFailureError{Cause: fmt.Errorf("invalid protocol, expected one of %q, got %q", protocols, ws.Subprotocol())}
	}
	rt.conn = ws
	return resp, nil
}

// handshakeError is the refused upgrade's status (a StatusError when the
// body is a metav1.Status), as client-go reports it.
func handshakeError(err error, resp *http.Response) error {
	if resp == nil || resp.Status == "" {
		return err
	}
	defer resp.Body.Close()
	cause := fmt.Errorf("%w (%s)", err, resp.Status)
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	if rerr != nil {
		return fmt.Errorf("%w: unable to read error from server response", cause)
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		return cause
	}
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		return &apierrors.StatusError{ErrStatus: st}
	}
	return fmt.Errorf("%w: %s", cause, msg)
}
