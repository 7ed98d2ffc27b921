// Package portforward gives a stream to one port of a pod through the API
// server's pods/portforward, as a net.Conn and without a local listener.
// It is the one place that builds the dialer the way kubectl does:
// WebSocket tunnelling first, SPDY when the upgrade fails, and SPDY only
// when KUBECTL_PORT_FORWARD_WEBSOCKETS=false.
package portforward

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/httpstream"
	spdystream "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	pfconstants "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/transport/websocket"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-dev/kubectl-dev/pkg/coalesce"
)

// ShouldFallback is the WebSocket-to-SPDY fallback predicate. On client-go
// v0.34 the upgrade errors are apimachinery's httpstream types; on v0.36+
// they move to k8s.io/streaming (see docs/devssh.md).
func ShouldFallback(err error) bool {
	return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
}

// URL is the portforward subresource URL of a pod.
func URL(client rest.Interface, namespace, pod string) *url.URL {
	return client.Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
}

// NewDialer builds the dialer for u as kubectl port-forward does.
func NewDialer(config *rest.Config, u *url.URL) (httpstream.Dialer, error) {
	return NewDialerWith(config, u, nil)
}

// NewDialerWith is NewDialer whose WebSocket upgrade takes the connection
// pre dialled, when there is one (see StartPredial).
func NewDialerWith(config *rest.Config, u *url.URL, pre *Predial) (httpstream.Dialer, error) {
	transport, upgrader, err := spdy.RoundTripperFor(config)
	if err != nil {
		return nil, err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	if !websocketsDisabled() {
		var transport http.RoundTripper
		var holder websocket.ConnectionHolder
		if pre != nil {
			transport, holder, err = wsRoundTripperFor(config, pre)
		} else {
			transport, holder, err = websocket.RoundTripperFor(config)
		}
		if err != nil {
			return nil, err
		}
		tunneling := &tunnelingDialer{url: u, transport: transport, holder: holder}
		dialer = portforward.NewFallbackDialer(tunneling, dialer, ShouldFallback)
	}
	return dialer, nil
}

func websocketsDisabled() bool { return cmdutil.PortForwardWebsockets.IsDisabled() }

// tunnelingDialer is client-go's SPDY-over-WebSocket dialer
// (portforward.NewSPDYOverWebsocketDialer) with one change: the SPDY
// connection writes through a coalesce.Conn. The SPDY framer writes each
// data frame as three writes (stream ID, flags and length, data), and the
// tunnel turns every write into a WebSocket message, a TLS record and a
// syscall, then a read and a write in the API server, the kubelet and the
// runtime: a 10,000-file devsync made 1,714 writes under 1,000 bytes out
// of 5,569. Queued, the header words leave with their data.
type tunnelingDialer struct {
	url       *url.URL
	transport http.RoundTripper
	holder    websocket.ConnectionHolder
}

func (d *tunnelingDialer) Dial(protocols ...string) (httpstream.Connection, string, error) {
	// WebSocket upgrades are GETs (RFC 6455 4.1).
	req, err := http.NewRequest(http.MethodGet, d.url.String(), nil)
	if err != nil {
		return nil, "", err
	}
	tunneled := make([]string, len(protocols))
	for i, p := range protocols {
		tunneled[i] = pfconstants.WebsocketsSPDYTunnelingPrefix + p
	}
	ws, err := websocket.Negotiate(d.transport, d.holder, req, tunneled...)
	if err != nil {
		return nil, "", err
	}
	if ws == nil {
		return nil, "", fmt.Errorf("negotiated websocket connection is nil")
	}
	protocol := strings.TrimPrefix(ws.Subprotocol(), pfconstants.WebsocketsSPDYTunnelingPrefix)
	conn := coalesce.NewConn(portforward.NewTunnelingConnection("client", ws))
	sc, err := spdystream.NewClientConnectionWithPings(conn, portforward.PingPeriod)
	if err != nil {
		conn.Close()
		return nil, "", err
	}
	return sc, protocol, nil
}

// Target is a pod's port.
type Target struct {
	Namespace, Pod string
	Port           int
}

// ForbiddenError is a port-forward the user's RBAC does not allow.
type ForbiddenError struct {
	Target Target
	Err    error
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("you are not allowed to port-forward to pod %s/%s: the \"create\" permission on \"pods/portforward\" is missing in namespace %s", e.Target.Namespace, e.Target.Pod, e.Target.Namespace)
}

func (e *ForbiddenError) Unwrap() error { return e.Err }

// Dial opens a connection to t through dialer: one httpstream connection
// with an error and a data stream for the port, as client-go's
// PortForwarder.handleConnection creates them per local connection.
func Dial(dialer httpstream.Dialer, t Target) (net.Conn, error) {
	conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		if isForbidden(err) {
			return nil, &ForbiddenError{Target: t, Err: err}
		}
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", t.Namespace, t.Pod, err)
	}
	c, err := newConn(conn, t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func isForbidden(err error) bool {
	if apierrors.IsForbidden(err) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "403 Forbidden") || strings.Contains(s, "forbidden: User") || strings.Contains(s, "(403)")
}

var requestID atomic.Int64

type conn struct {
	streamConn httpstream.Connection
	data       httpstream.Stream
	target     Target

	mu        sync.Mutex
	remoteErr error
	closeOnce sync.Once
}

// newConn creates the port's error and data streams. Each CreateStream
// waits for the kubelet's SYN_REPLY (one round trip through the API
// server); the kubelet pairs the two streams by request ID whatever their
// order, so both are created at once: one round trip instead of two.
func newConn(sc httpstream.Connection, t Target) (*conn, error) {
	id := strconv.FormatInt(requestID.Add(1), 10)
	headers := func(typ string) http.Header {
		h := http.Header{}
		h.Set(corev1.StreamType, typ)
		h.Set(corev1.PortHeader, strconv.Itoa(t.Port))
		h.Set(corev1.PortForwardRequestIDHeader, id)
		return h
	}
	type created struct {
		s   httpstream.Stream
		err error
	}
	errc := make(chan created, 1)
	go func() {
		s, err := sc.CreateStream(headers(corev1.StreamTypeError))
		errc <- created{s, err}
	}()
	data, dataErr := sc.CreateStream(headers(corev1.StreamTypeData))
	e := <-errc
	if e.err != nil || dataErr != nil {
		// The caller closes sc, which resets what was created.
		if e.err != nil {
			return nil, fmt.Errorf("port-forward to pod %s/%s: creating the error stream: %w", t.Namespace, t.Pod, e.err)
		}
		return nil, fmt.Errorf("port-forward to pod %s/%s: creating the data stream: %w", t.Namespace, t.Pod, dataErr)
	}
	errStream := e.s
	errStream.Close() // nothing is written to it
	c := &conn{streamConn: sc, data: data, target: t}
	go func() {
		msg, err := io.ReadAll(errStream)
		switch {
		case err != nil:
			// The connection went away; reads of data will end too.
		case len(msg) > 0:
			c.mu.Lock()
			c.remoteErr = fmt.Errorf("port-forward to pod %s/%s port %d: %s", t.Namespace, t.Pod, t.Port, strings.TrimSpace(string(msg)))
			c.mu.Unlock()
			c.Close()
		}
	}()
	return c, nil
}

// RemoteError is what the kubelet reported on the error stream (e.g. a
// refused connection to the port), if anything.
func RemoteError(c net.Conn) error {
	if pc, ok := c.(*conn); ok {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		return pc.remoteErr
	}
	return nil
}

// Closed is closed when the port-forward connection ends.
func Closed(c net.Conn) <-chan bool {
	if pc, ok := c.(*conn); ok {
		return pc.streamConn.CloseChan()
	}
	return nil
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.data.Read(p)
	if err != nil && n == 0 {
		if re := RemoteError(c); re != nil {
			return 0, re
		}
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) { return c.data.Write(p) }

// CloseWrite half-closes the data stream: the pod's side sees EOF.
func (c *conn) CloseWrite() error { return c.data.Close() }

func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.data.Reset()
		c.streamConn.RemoveStreams(c.data)
		_ = c.streamConn.Close()
	})
	return nil
}

type addr string

func (a addr) Network() string { return "portforward" }
func (a addr) String() string  { return string(a) }

func (c *conn) LocalAddr() net.Addr { return addr("kubectl-devssh") }
func (c *conn) RemoteAddr() net.Addr {
	return addr(fmt.Sprintf("pod/%s.%s:%d", c.target.Pod, c.target.Namespace, c.target.Port))
}

// Deadlines are not supported by httpstream streams; callers rely on SSH
// timeouts and keepalives instead.
func (c *conn) SetDeadline(t time.Time) error      { return nil }
func (c *conn) SetReadDeadline(t time.Time) error  { return nil }
func (c *conn) SetWriteDeadline(t time.Time) error { return nil }
