// Package agentconn connects the laptop to a workload's devagent: it
// resolves TYPE/NAME (or a pod) to a running pod whose agent is ready,
// reads the agent's host key from its Secret, opens a stream to the
// agent's SSH port through a Dialer (the API server's port-forward in the
// plugins, a pipe in tests), and dials SSH with the host key pinned. When
// the stream opens but SSH does not answer, the error says where to look.
//
// kubectl devssh and kubectl devsync both connect through it; neither
// knows how a pod is chosen or how the stream is carried.
package agentconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
	"github.com/kubectl-dev/kubectl-dev/pkg/portforward"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshclient"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// Dialer opens a byte stream to a port on the loopback of a target's pod.
type Dialer interface {
	DialPod(ctx context.Context, namespace, pod string, port int) (net.Conn, error)
}

// PortForward dials through the API server's port-forward (WebSocket
// first, SPDY fallback; see pkg/portforward).
type PortForward struct {
	Config *rest.Config
	Client kubernetes.Interface
	// Predial, if set, is the API server connection the first dial's
	// upgrade takes (see portforward.StartPredial).
	Predial *portforward.Predial
}

// DialPod opens one port-forward stream.
func (p PortForward) DialPod(_ context.Context, namespace, pod string, port int) (net.Conn, error) {
	d, err := portforward.NewDialerWith(p.Config, portforward.URL(p.Client.CoreV1().RESTClient(), namespace, pod), p.Predial)
	if err != nil {
		return nil, err
	}
	return portforward.Dial(d, portforward.Target{Namespace: namespace, Pod: pod, Port: port})
}

// Connector reaches the agent of one object.
type Connector struct {
	// Client reads pods and the agent's Secret.
	Client kubernetes.Interface
	// Object is the pod or workload, as kubectl's builder returned it.
	Object runtime.Object
	// Ref names it as the user typed it ("deploy/demo"), for messages.
	Ref string
	// Container is -c: the app container (default: the one devpatch recorded).
	Container string
	Dialer    Dialer
	// Signer is the user's key; nil for Dial only (--stdio).
	Signer ssh.Signer
	// KeepaliveInterval is how often SSH checks the peer (0: sshclient's default).
	KeepaliveInterval time.Duration
	// Remedy holds the user's -n, --context and --kubeconfig, repeated in
	// the commands that errors suggest.
	Remedy kubectlcmd.Flags
}

// Resolve finds a running pod with a ready agent, waiting up to timeout.
func (c *Connector) Resolve(ctx context.Context, timeout time.Duration) (*Target, error) {
	start := time.Now()
	t, err := Resolve(ctx, c.Client, c.Object, ResolveOptions{Ref: c.Ref, Container: c.Container, Timeout: timeout, Remedy: c.Remedy})
	if err != nil {
		return nil, err
	}
	klog.V(4).Infof("resolved %s to %s in %v", c.Ref, t.Ref(), time.Since(start))
	return t, nil
}

// Dial opens the stream to the agent's SSH port of t.
func (c *Connector) Dial(ctx context.Context, t *Target) (net.Conn, error) {
	start := time.Now()
	conn, err := c.Dialer.DialPod(ctx, t.Namespace, t.Pod.Name, wire.Port)
	if err != nil {
		return nil, fmt.Errorf("opening a port-forward to %s: %w", t.Ref(), err)
	}
	klog.V(4).Infof("port-forward to %s open after %v", t.Ref(), time.Since(start))
	return conn, nil
}

// devpatchCommand is the devpatch command of the object, with the user's
// flags, for the errors that suggest it.
func (c *Connector) devpatchCommand() string {
	if c.Ref == "" {
		return ""
	}
	return c.Remedy.Command("devpatch", c.Ref)
}

// Conn is an SSH connection to a target's agent.
type Conn struct {
	*sshclient.Client
	Target *Target
}

// ResolvePod finds a running pod with a ready agent, waiting up to
// timeout, without reading the host key: DialSSH reads it while it dials.
func (c *Connector) ResolvePod(ctx context.Context, timeout time.Duration) (*Target, error) {
	start := time.Now()
	t, err := ResolvePod(ctx, c.Client, c.Object, ResolveOptions{Ref: c.Ref, Container: c.Container, Timeout: timeout, Remedy: c.Remedy})
	if err != nil {
		return nil, err
	}
	klog.V(4).Infof("resolved %s to %s in %v", c.Ref, t.Ref(), time.Since(start))
	return t, nil
}

// DialSSH opens the stream to t and the SSH connection over it, with the
// host key pinned from t's Secret. When t has no HostKey yet (ResolvePod),
// the Secret is read at the same time as the port-forward is dialled; the
// handshake waits for it only when it checks the agent's key, after the
// key exchange.
//
// Round trips (RTT: laptop to kubelet through the API server):
//   - the Secret: 1 request, overlapped with the dial;
//   - the port-forward: see portforward.Dial (upgrade, then 1 RTT for the
//     error and data streams created together);
//   - SSH: 6 RTTs in golang.org/x/crypto/ssh: versions and KEXINIT, the
//     ECDH exchange, the "ssh-userauth" service request, userauth "none"
//     (always tried first), the publickey query, the signed publickey.
func (c *Connector) DialSSH(ctx context.Context, t *Target) (*Conn, error) {
	if c.Signer == nil {
		return nil, errors.New("agentconn: no identity to authenticate with")
	}
	cfg := sshclient.Config{
		Signer:            c.Signer,
		HostKey:           t.HostKey,
		HostKeySource:     "secret/" + t.SecretName,
		Devpatch:          c.devpatchCommand(),
		KeepaliveInterval: c.KeepaliveInterval,
	}
	var keyErr func() error
	if t.HostKey == nil {
		type result struct {
			key ssh.PublicKey
			err error
		}
		kctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan result, 1)
		go func() {
			k, err := readHostKey(kctx, c.Client, t.Namespace, t.SecretName)
			done <- result{k, err}
		}()
		var once sync.Once
		var r result
		wait := func() result {
			once.Do(func() {
				r = <-done
				if r.err == nil {
					t.HostKey = r.key
				}
			})
			return r
		}
		cfg.HostKeyFunc = func() (ssh.PublicKey, error) {
			r := wait()
			return r.key, r.err
		}
		// When the dial or the handshake fails, a failed read of the
		// Secret is the better message (e.g. no "get" on secrets).
		keyErr = func() error {
			select {
			case <-ctx.Done():
				return nil
			default:
			}
			return wait().err
		}
	}
	conn, err := c.Dial(ctx, t)
	if err != nil {
		if keyErr != nil {
			if kerr := keyErr(); kerr != nil {
				return nil, kerr
			}
		}
		return nil, err
	}
	start := time.Now()
	cl, err := sshclient.NewClient(conn, cfg)
	if err != nil {
		conn.Close()
		if keyErr != nil {
			if kerr := keyErr(); kerr != nil {
				return nil, kerr
			}
		}
		return nil, agentSilent(conn, t, err, c.Remedy)
	}
	klog.V(4).Infof("SSH connection to the agent of %s up after %v", t.Ref(), time.Since(start))
	return &Conn{Client: cl, Target: t}, nil
}

// agentSilent explains a stream that opened but carried no SSH: the pod
// refused the port (the agent is not listening) or the handshake failed.
func agentSilent(conn net.Conn, t *Target, err error, remedy kubectlcmd.Flags) error {
	if re := portforward.RemoteError(conn); re != nil {
		return fmt.Errorf("%v (is the agent listening? see %s)", re, remedy.Command("logs", t.Ref(), "-c", t.Agent))
	}
	return err
}

// StreamError explains why a raw stream to t (--stdio) ended, when the
// pod said why.
func StreamError(conn net.Conn, t *Target, err error) error {
	if re := portforward.RemoteError(conn); re != nil {
		return re
	}
	return fmt.Errorf("the port-forward to %s ended: %w", t.Ref(), err)
}

// OpenSubsystem opens an SSH session on conn, sends env (KEY=VALUE) and
// starts the subsystem name; the session's stdin and stdout are the
// returned stream, whose Close ends the session.
func (c *Conn) OpenSubsystem(name string, env []string) (io.ReadWriteCloser, error) {
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("opening an SSH session to %s: %w", c.Target.Ref(), err)
	}
	if err := sshclient.SendEnv(sess, env); err != nil {
		sess.Close()
		return nil, fmt.Errorf("the agent of %s: %w", c.Target.Ref(), err)
	}
	in, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	if err := sess.RequestSubsystem(name); err != nil {
		sess.Close()
		return nil, fmt.Errorf("the agent of %s has no %s subsystem (an older agent: re-run kubectl devpatch with this release): %w", c.Target.Ref(), name, err)
	}
	return &subsystem{Reader: out, WriteCloser: in, sess: sess}, nil
}

// subsystem is a subsystem's channel as one io.ReadWriteCloser.
type subsystem struct {
	io.Reader
	io.WriteCloser
	sess *ssh.Session
}

func (s *subsystem) Close() error {
	s.WriteCloser.Close()
	return s.sess.Close()
}

// Gone says why t's pod is no longer the one to work with: it was
// deleted, is being deleted, or its app container restarted. It returns
// "" while the pod is still the one, and when the API server cannot be
// asked (the SSH connection then tells more).
func Gone(ctx context.Context, client kubernetes.Interface, t *Target) string {
	p, err := client.CoreV1().Pods(t.Namespace).Get(ctx, t.Pod.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return t.Ref() + " was deleted"
	}
	if err != nil {
		return ""
	}
	if p.UID != t.Pod.UID || p.DeletionTimestamp != nil {
		return t.Ref() + " is being deleted"
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == t.Container && ContainerID(cs.ContainerID) != t.ContainerID {
			return fmt.Sprintf("container %q of %s restarted", t.Container, t.Ref())
		}
	}
	return ""
}

// ContainerRunning says whether the container name of p runs.
func ContainerRunning(p *corev1.Pod, name string) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name {
			return cs.State.Running != nil
		}
	}
	return false
}

// NoIdentityError is a missing key pair at its default place.
type NoIdentityError struct {
	Path, Ref string
	// Remedy is the devpatch command to run (default: "kubectl devpatch REF").
	Remedy string
}

func (e *NoIdentityError) Error() string {
	remedy := e.Remedy
	if remedy == "" {
		remedy = kubectlcmd.Flags{}.Command("devpatch", e.Ref)
	}
	return fmt.Sprintf("no identity at %s: run %q first (it creates your key and authorizes it) or give --identity", e.Path, remedy)
}

// LoadIdentity reads the user's private key. explicit is whether the user
// named the file (--identity); a missing default file gets the remedy,
// devpatch of ref with the user's flags.
func LoadIdentity(path string, explicit bool, ref string, remedy kubectlcmd.Flags) (ssh.Signer, error) {
	s, err := sshclient.LoadSigner(path)
	if err != nil && errors.Is(err, os.ErrNotExist) && !explicit {
		return nil, &NoIdentityError{Path: path, Ref: ref, Remedy: remedy.Command("devpatch", ref)}
	}
	return s, err
}
