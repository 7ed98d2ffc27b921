package syncengine

import (
	"context"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentconn"
	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// AgentConnector opens devsync sessions to a workload's agent through
// pkg/agentconn: one SSH connection, its devsync channel and the lanes
// (more channels of the same connection for big files' content).
type AgentConnector struct {
	Conn *agentconn.Connector
	// Client asks the API server whether the pod is still the one.
	Client kubernetes.Interface
	// Dest is the destination in the app container ("" for the app's
	// working directory); Compress says whether what is sent is
	// compressed (auto: decided from the handshake's round trip).
	Dest     string
	Compress filesync.Compression
	// Name is the client's name in the agent's log.
	Name string
}

// Connect resolves the workload to a pod with a ready agent and a running
// app container, connects, and opens the devsync session.
func (a *AgentConnector) Connect(ctx context.Context, timeout time.Duration) (Session, error) {
	start := time.Now()
	// The host key is read while the port-forward is dialled (DialSSH).
	t, err := a.Conn.ResolvePod(ctx, timeout)
	if err != nil {
		return nil, err
	}
	if !agentconn.ContainerRunning(t.Pod, t.Container) || t.ContainerID == "" {
		return nil, fmt.Errorf("container %q of %s is not running", t.Container, t.Ref())
	}
	conn, err := a.Conn.DialSSH(ctx, t)
	if err != nil {
		return nil, err
	}
	env := t.Env("")
	open := func() (io.ReadWriteCloser, error) { return conn.OpenSubsystem(wire.SubsystemDevsync, env) }
	rw, err := open()
	if err != nil {
		conn.Close()
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := filesync.NewClient(hctx, rw, filesync.ClientOptions{
		Dest: a.Dest, Name: a.Name, Lanes: filesync.DefaultLanes, OpenLane: open, Compress: a.Compress,
		// Every session starts with an initial sync, whose first step lists
		// the destination: asked for with the Hello, it costs no round trip.
		PrefetchList: true,
	})
	if err != nil {
		rw.Close()
		conn.Close()
		return nil, err
	}
	klog.V(4).Infof("devsync session with %s open after %v", t.Ref(), time.Since(start))
	return &agentSession{conn: conn, client: c, api: a.Client}, nil
}

type agentSession struct {
	conn   *agentconn.Conn
	client *filesync.Client
	api    kubernetes.Interface
}

func (s *agentSession) Ref() string              { return s.conn.Target.Ref() }
func (s *agentSession) Client() *filesync.Client { return s.client }
func (s *agentSession) Lost() <-chan struct{}    { return s.conn.Lost() }
func (s *agentSession) Gone(ctx context.Context) string {
	return agentconn.Gone(ctx, s.api, s.conn.Target)
}

// closeGrace is how long a session's orderly close may take before its
// SSH connection is closed under it.
const closeGrace = time.Second

// Close ends the devsync session, then the SSH connection. On a slow or
// stalled link the session's close waits for the agent's answer behind
// every byte already queued (SSH's windows hold megabytes: about 20 s at
// 1 Mbit/s after a Ctrl-C in a large file); after closeGrace the
// connection is closed under it, which ends those writes at once.
func (s *agentSession) Close() {
	done := make(chan struct{})
	go func() {
		s.client.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeGrace):
		klog.V(4).Infof("the devsync session with %s did not close within %s: closing the connection", s.Ref(), closeGrace)
	}
	s.conn.Close()
	<-done
}
