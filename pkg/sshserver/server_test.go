package sshserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentlog"
	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshclient"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshserver"
)

type fixture struct {
	addr     string
	hostKey  ssh.Signer
	user     ssh.Signer
	authFile string
}

func newSigner(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	priv, pub, err := keys.NewEd25519("test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
}

func start(t *testing.T) *fixture {
	t.Helper()
	return startLogged(t, nil)
}

// startLogged is start with the server logging to log.
func startLogged(t *testing.T, log *slog.Logger) *fixture {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	host, _ := newSigner(t)
	user, userPub := newSigner(t)
	dir := t.TempDir()
	authFile := filepath.Join(dir, keys.AuthorizedKeysFile)
	if err := os.WriteFile(authFile, []byte(userPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sshserver.New(sshserver.Config{
		Addr:           ln.Addr().String(),
		HostKey:        host,
		AuthorizedKeys: sshserver.FileAuthorizedKeys(authFile),
		Launcher:       sshserver.LocalLauncher{Dir: dir},
		Logger:         log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go srv.Serve(ctx, ln)
	return &fixture{addr: ln.Addr().String(), hostKey: host, user: user, authFile: authFile}
}

func (f *fixture) dial(t *testing.T, user ssh.Signer, hostKey ssh.PublicKey) (*sshclient.Client, error) {
	t.Helper()
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sshclient.NewClient(conn, sshclient.Config{Signer: user, HostKey: hostKey, HostKeySource: "secret/test"})
	if err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func (f *fixture) client(t *testing.T) *sshclient.Client {
	t.Helper()
	c, err := f.dial(t, f.user, f.hostKey.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRefusesNonLoopback(t *testing.T) {
	host, _ := newSigner(t)
	_, err := sshserver.New(sshserver.Config{Addr: "0.0.0.0:2222", HostKey: host, AuthorizedKeys: sshserver.StaticAuthorizedKeys(nil)})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("New(0.0.0.0) = %v", err)
	}
}

func TestExecExitCodeAndStreams(t *testing.T) {
	f := start(t)
	c := f.client(t)
	var out, errOut bytes.Buffer
	code, err := c.Run(context.Background(), sshclient.RunOptions{
		Command: sshclient.QuoteCommand([]string{"sh", "-c", "echo out; echo err >&2; echo \"$FOO\"; exit 7"}),
		Env:     []string{"FOO=bar baz"},
		Stdout:  &out, Stderr: &errOut,
	})
	if err != nil || code != 7 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if out.String() != "out\nbar baz\n" || errOut.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
}

func TestExecStdinBinary(t *testing.T) {
	f := start(t)
	c := f.client(t)
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	var out bytes.Buffer
	code, err := c.Run(context.Background(), sshclient.RunOptions{Command: "cat", Stdin: bytes.NewReader(data), Stdout: &out, Stderr: os.Stderr})
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if sha256.Sum256(out.Bytes()) != sha256.Sum256(data) {
		t.Fatalf("cat returned %d bytes, not the %d sent", out.Len(), len(data))
	}
}

func TestPTY(t *testing.T) {
	f := start(t)
	c := f.client(t)
	pr, pw := io.Pipe()
	var out safeBuffer
	resize := make(chan [2]int, 1)
	done := make(chan int, 1)
	go func() {
		code, err := c.Run(context.Background(), sshclient.RunOptions{TTY: true, Term: "xterm", Rows: 30, Cols: 100, Stdin: pr, Stdout: &out, Resize: resize})
		if err != nil {
			t.Error(err)
		}
		done <- code
	}()
	io.WriteString(pw, "stty size; echo $((6*7))X\n")
	waitFor(t, &out, "30 100")
	waitFor(t, &out, "42X")
	resize <- [2]int{40, 120}
	time.Sleep(200 * time.Millisecond)
	io.WriteString(pw, "stty size\n")
	waitFor(t, &out, "40 120")
	io.WriteString(pw, "exit 3\n")
	select {
	case code := <-done:
		if code != 3 {
			t.Fatalf("exit code %d, want 3", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shell did not exit")
	}
}

func TestAuthRefusals(t *testing.T) {
	f := start(t)
	other, _ := newSigner(t)
	if _, err := f.dial(t, other, f.hostKey.PublicKey()); err == nil || !strings.Contains(err.Error(), "refused the key") {
		t.Fatalf("unknown key: %v", err)
	}
	otherHost, _ := newSigner(t)
	if _, err := f.dial(t, f.user, otherHost.PublicKey()); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("changed host key: %v", err)
	}
	// Password, keyboard-interactive and none are not offered.
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = ssh.NewClientConn(conn, "x", &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.Password("x"), ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return []string{"x"}, nil })},
		HostKeyCallback: ssh.FixedHostKey(f.hostKey.PublicKey()),
	})
	if err == nil || !strings.Contains(err.Error(), "[none]") && !strings.Contains(err.Error(), "no supported methods remain") {
		t.Fatalf("password auth: %v", err)
	}
	// A key added to the file later is accepted without a restart.
	_, otherPub := other.PublicKey(), string(ssh.MarshalAuthorizedKey(other.PublicKey()))
	if err := os.WriteFile(f.authFile+".new", []byte(otherPub), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.authFile+".new", f.authFile); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dial(t, other, f.hostKey.PublicKey()); err != nil {
		t.Fatalf("key added later: %v", err)
	}
	if _, err := f.dial(t, f.user, f.hostKey.PublicKey()); err == nil {
		t.Fatal("removed key still accepted")
	}
}

func TestSFTP(t *testing.T) {
	f := start(t)
	c := f.client(t)
	sc, err := sftp.NewClient(c.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	w, err := sc.Create(filepath.Join(filepath.Dir(f.authFile), "hello.txt"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "hello")
	w.Close()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(f.authFile), "hello.txt"))
	if err != nil || string(b) != "hello" {
		t.Fatalf("file: %q %v", b, err)
	}
}

func TestDirectTCPIP(t *testing.T) {
	f := start(t)
	c := f.client(t)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "5") }))
	defer hs.Close()
	tr := &http.Transport{DialContext: c.DialContext}
	resp, err := (&http.Client{Transport: tr}).Get(hs.URL + "/add/2/3")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "5" {
		t.Fatalf("body %q", b)
	}
	if _, err := c.Dial("tcp", "10.1.2.3:80"); err == nil || !strings.Contains(err.Error(), "only localhost") {
		t.Fatalf("dial to a non-loopback address: %v", err)
	}
}

type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitFor(t *testing.T, b *safeBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(b.String(), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%q not seen in %q", s, b.String())
}

// The server's records carry the connection's and the session's attributes,
// at honest levels: Info for connections, Warn for refusals, Debug for the
// requests of a session.
func TestLogRecords(t *testing.T) {
	var buf safeBuffer
	f := startLogged(t, agentlog.New(&buf, slog.LevelDebug))
	c := f.client(t)
	if code, err := c.Run(context.Background(), sshclient.RunOptions{Command: "true", Env: []string{"SECRET=hunter2"}, Stdout: io.Discard, Stderr: io.Discard}); err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	waitFor(t, &buf, `level=INFO msg=connection remote=127.0.0.1:`)
	waitFor(t, &buf, `user=devssh key=SHA256:`)
	waitFor(t, &buf, `level=DEBUG msg="env request" remote=127.0.0.1:`)
	waitFor(t, &buf, `user=devssh session=1 name=SECRET`)
	waitFor(t, &buf, `level=DEBUG msg="session ended" remote=127.0.0.1:`)
	waitFor(t, &buf, `session=1 request=exec exit_status=0`)

	other, _ := newSigner(t)
	if _, err := f.dial(t, other, f.hostKey.PublicKey()); err == nil {
		t.Fatal("unknown key accepted")
	}
	waitFor(t, &buf, `level=WARN msg="authentication refused" remote=127.0.0.1:`)
	waitFor(t, &buf, `method=publickey err="key SHA256:`)

	if _, err := c.Client.Dial("tcp", "10.0.0.1:80"); err == nil {
		t.Fatal("direct-tcpip to 10.0.0.1 accepted")
	}
	waitFor(t, &buf, `level=WARN msg="port forward refused: only the pod's loopback is reachable" remote=127.0.0.1:`)
	waitFor(t, &buf, `to=10.0.0.1:80`)

	s, err := c.Client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestSubsystem("nope"); err == nil {
		t.Fatal("unknown subsystem accepted")
	}
	waitFor(t, &buf, `level=WARN msg="subsystem refused: not supported"`)
	waitFor(t, &buf, `session=2 subsystem=nope`)

	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("an env value was logged:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "time=") {
		t.Errorf("records carry a time:\n%s", buf.String())
	}
}

// readyWriter closes ready at the first write.
type readyWriter struct {
	once  sync.Once
	ready chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.ready) })
	return len(p), nil
}

func TestExecCancelAndLost(t *testing.T) {
	f := start(t)
	t.Run("a cancelled context ends a running command", func(t *testing.T) {
		c := f.client(t)
		ctx, cancel := context.WithCancel(context.Background())
		w := &readyWriter{ready: make(chan struct{})}
		go func() { <-w.ready; cancel() }()
		code, err := c.Run(ctx, sshclient.RunOptions{Command: "echo ready; sleep 30", Stdout: w, Stderr: io.Discard})
		if code != 255 || !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %d, %v", code, err)
		}
	})
	t.Run("a connection closed under a running command is lost", func(t *testing.T) {
		c := f.client(t)
		w := &readyWriter{ready: make(chan struct{})}
		go func() { <-w.ready; c.Close() }()
		code, err := c.Run(context.Background(), sshclient.RunOptions{Command: "echo ready; sleep 30", Stdout: w, Stderr: io.Discard})
		if code != 255 || !errors.Is(err, sshclient.ErrConnectionLost) {
			t.Fatalf("Run = %d, %v", code, err)
		}
	})
	t.Run("a command killed by a signal exits 128+n", func(t *testing.T) {
		c := f.client(t)
		code, err := c.Run(context.Background(), sshclient.RunOptions{Command: "kill -TERM $$", Stdout: io.Discard, Stderr: io.Discard})
		if code != 128+15 || err != nil {
			t.Fatalf("Run = %d, %v", code, err)
		}
	})
	t.Run("the host key can come later, from HostKeyFunc", func(t *testing.T) {
		conn, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := sshclient.NewClient(conn, sshclient.Config{Signer: f.user, HostKeySource: "secret/test",
			HostKeyFunc: func() (ssh.PublicKey, error) { return f.hostKey.PublicKey(), nil }})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		conn, err = net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = sshclient.NewClient(conn, sshclient.Config{Signer: f.user, HostKeySource: "secret/test",
			HostKeyFunc: func() (ssh.PublicKey, error) { return nil, errors.New("reading secret/test: forbidden") }})
		if err == nil || !strings.Contains(err.Error(), "reading secret/test: forbidden") {
			t.Fatalf("NewClient with a failed HostKeyFunc = %v", err)
		}
	})
}
