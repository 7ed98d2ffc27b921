//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentconn"
	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/portforward"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshclient"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

// probe is a second devsync session, used to read what the app container
// holds (the agent hashes the file inside the app's root).
func (b *bench) probe(ctx context.Context, dest string) (*filesync.Client, func(), error) {
	obj, err := b.env.Client.AppsV1().Deployments(b.ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	obj.TypeMeta = metav1.TypeMeta{Kind: "Deployment", APIVersion: appsv1.SchemeGroupVersion.String()}
	t, err := agentconn.Resolve(ctx, b.env.Client, obj, agentconn.ResolveOptions{Ref: "deploy/demo", Timeout: time.Minute})
	if err != nil {
		return nil, nil, err
	}
	// The probe observes the pod: it goes direct, not over the emulated
	// link, so that its own round trip does not count as latency.
	dialer, err := b.dialerFor(b.direct, t.Pod.Name)
	if err != nil {
		return nil, nil, err
	}
	conn, err := portforward.Dial(dialer, portforward.Target{Namespace: b.ns, Pod: t.Pod.Name, Port: wire.Port})
	if err != nil {
		return nil, nil, err
	}
	signer, err := sshclient.LoadSigner(filepath.Join(keys.Dir(b.env.Kubeconfig, ""), keys.PrivateKeyFile))
	if err != nil {
		return nil, nil, err
	}
	cl, err := sshclient.NewClient(conn, sshclient.Config{Signer: signer, HostKey: t.HostKey, HostKeySource: "secret/" + t.SecretName})
	if err != nil {
		return nil, nil, err
	}
	sess, err := cl.NewSession()
	if err != nil {
		return nil, nil, err
	}
	for _, kv := range t.Env("") {
		k, v, _ := strings.Cut(kv, "=")
		_ = sess.Setenv(k, v)
	}
	in, _ := sess.StdinPipe()
	o, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("devsync"); err != nil {
		return nil, nil, err
	}
	c, err := filesync.NewClient(ctx, struct {
		io.Reader
		io.Writer
	}{o, in}, filesync.ClientOptions{Dest: dest, Name: "bench-probe"})
	if err != nil {
		return nil, nil, err
	}
	return c, func() { c.Close(); cl.Close() }, nil
}

// startDevsync runs a watching kubectl devsync until stop is called.
func (b *bench) startDevsync(ctx context.Context, args ...string) (stop func(), err error) {
	p, err := b.startWatch(ctx, 2*time.Minute, args...)
	if err != nil {
		return nil, err
	}
	return p.stop, nil
}

// watchProc is a running kubectl devsync in watch mode.
type watchProc struct {
	cmd    *exec.Cmd
	stderr *framework.LockedBuffer
	stop   func()
}

// startWatch starts kubectl devsync and waits, up to within, until it
// says it is watching (its initial sync is done).
func (b *bench) startWatch(ctx context.Context, within time.Duration, args ...string) (*watchProc, error) {
	return b.startWatchTo(ctx, io.Discard, within, args...)
}

// startWatchOut is startWatch with devsync's stdout written to out.
func (b *bench) startWatchOut(ctx context.Context, out io.Writer, args ...string) (*watchProc, error) {
	return b.startWatchTo(ctx, out, 2*time.Minute, args...)
}

func (b *bench) startWatchTo(ctx context.Context, out io.Writer, within time.Duration, args ...string) (*watchProc, error) {
	cmd := exec.Command(b.env.Kubectl, append([]string{"devsync", "-n", b.ns}, args...)...)
	errBuf := &framework.LockedBuffer{}
	cmd.Stdout = out
	cmd.Stderr = errBuf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(within)
	for !watching(errBuf.String()) {
		select {
		case <-done:
			return nil, fmt.Errorf("devsync exited before watching: %s: %s", cmd.ProcessState, errBuf.String())
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("devsync did not start watching within %s: %s", within, errBuf.String())
		}
	}
	return &watchProc{cmd: cmd, stderr: errBuf, stop: stop}, nil
}

// watching reports whether devsync's stderr has its "watching DIR (Ctrl-C
// to stop)" line (warnings that name the watched folder start with
// "Warning: ").
func watching(stderr string) bool {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "watching ") {
			return true
		}
	}
	return false
}

func (b *bench) podDialer(pod string) (httpstream.Dialer, error) {
	return b.dialerFor(b.env.Kubeconfig, pod)
}

// dialerFor is podDialer through the cluster of kubeconfig.
func (b *bench) dialerFor(kubeconfig, pod string) (httpstream.Dialer, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	// The URL's host is the one dialled: it comes from the same kubeconfig.
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return portforward.NewDialer(cfg, portforward.URL(cs.CoreV1().RESTClient(), b.ns, pod))
}
