package agentconn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"
)

// Hint is the pod (and its agent's Secret) a reference resolved to last
// time. It is only a guess: Speculate connects to it while the reference
// is resolved again, and the connection is used only when the fresh
// resolution names the same pod and Secret.
type Hint struct {
	Pod        string `json:"pod"`
	SecretName string `json:"secret"`
}

// HintFile is where the hint of a reference is kept: in dir (the
// kubectl-dev folder beside the kubeconfig), one small file per API
// server, namespace, reference and container.
func HintFile(dir, server, namespace, ref, container string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{server, namespace, ref, container}, "\x00")))
	return filepath.Join(dir, "hints", hex.EncodeToString(sum[:8])+".json")
}

// LoadHint reads a hint; a missing or unreadable one is no hint.
func LoadHint(path string) (Hint, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Hint{}, false
	}
	var h Hint
	if json.Unmarshal(b, &h) != nil || len(validation.IsDNS1123Subdomain(h.Pod)) > 0 || len(validation.IsDNS1123Subdomain(h.SecretName)) > 0 {
		return Hint{}, false // not names of objects: not ours, or damaged
	}
	return h, true
}

// SaveHint records where t is, when it differs from old. Failures are
// ignored: a hint only saves time.
func SaveHint(path string, old Hint, t *Target) {
	h := Hint{Pod: t.Pod.Name, SecretName: t.SecretName}
	if h == old {
		return
	}
	b, _ := json.Marshal(h)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".hint-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), path) != nil {
		os.Remove(tmp.Name())
	}
}

// Speculation is an SSH connection being opened to a hinted pod while the
// reference is resolved: the port-forward, the SSH handshake and the read
// of the host key then overlap the requests that find the pod, instead of
// following them. No session is opened on it before Take has checked it
// against the resolved target.
type Speculation struct {
	hint      Hint
	namespace string
	cancel    context.CancelFunc
	done      chan struct{}
	conn      *Conn
	err       error
	once      sync.Once // Take or Close, whichever comes first
}

// Speculate starts connecting to the pod of h in namespace.
func (c *Connector) Speculate(ctx context.Context, namespace string, h Hint) *Speculation {
	ctx, cancel := context.WithCancel(ctx)
	s := &Speculation{hint: h, namespace: namespace, cancel: cancel, done: make(chan struct{})}
	t := &Target{Namespace: namespace, Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: h.Pod, Namespace: namespace}}, SecretName: h.SecretName}
	go func() {
		defer close(s.done)
		start := time.Now()
		s.conn, s.err = c.DialSSH(ctx, t)
		klog.V(4).Infof("speculative connection to pod/%s after %v: %v", h.Pod, time.Since(start), s.err)
	}()
	return s
}

// Take returns the speculative connection when t is the hinted pod with
// the hinted Secret and the connection is up; the connection's Target
// becomes t (with the host key read). Otherwise it closes what was opened
// and returns nil: the caller dials t itself.
func (s *Speculation) Take(t *Target) *Conn {
	if s == nil {
		return nil
	}
	var c *Conn
	s.once.Do(func() {
		if t.Pod.Name != s.hint.Pod || t.SecretName != s.hint.SecretName || t.Namespace != s.namespace {
			klog.V(4).Infof("speculative connection to pod/%s not used: resolved to %s", s.hint.Pod, t.Ref())
			s.abandon()
			return
		}
		<-s.done
		if s.err != nil {
			s.cancel()
			return
		}
		t.HostKey = s.conn.Target.HostKey
		s.conn.Target = t
		c = s.conn
	})
	return c
}

// Close abandons the speculation unless Take took it.
func (s *Speculation) Close() {
	if s == nil {
		return
	}
	s.once.Do(s.abandon)
}

func (s *Speculation) abandon() {
	s.cancel()
	go func() {
		<-s.done
		if s.conn != nil {
			s.conn.Close()
		}
	}()
}
