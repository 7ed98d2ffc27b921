package sshserver_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshserver"
)

// keepaliveClient connects a bare x/crypto client to a server checking
// every 50 ms: the client answers the server's keepalives after delay
// (never when delay < 0) and, when busy, sends a few bytes every few
// milliseconds on a session channel, as an upload on a slow link does. It
// returns a channel closed when the server has closed the connection.
func keepaliveClient(t *testing.T, delay time.Duration, busy bool) <-chan struct{} {
	t.Helper()
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
		Addr: ln.Addr().String(), HostKey: host, AuthorizedKeys: sshserver.FileAuthorizedKeys(authFile),
		Launcher: sshserver.LocalLauncher{Dir: dir}, KeepaliveInterval: 50 * time.Millisecond, KeepaliveMax: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Serve(ctx, ln)
	cs, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cs.Close() })
	cc, chans, reqs, err := ssh.NewClientConn(cs, "agent", &ssh.ClientConfig{
		User: "devssh", Auth: []ssh.AuthMethod{ssh.PublicKeys(user)}, HostKeyCallback: ssh.FixedHostKey(host.PublicKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "no")
		}
	}()
	go func() {
		for r := range reqs {
			if delay < 0 {
				continue
			}
			go func(r *ssh.Request) {
				time.Sleep(delay)
				_ = r.Reply(false, nil)
			}(r)
		}
	}()
	if busy {
		ch, creqs, err := cc.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		go ssh.DiscardRequests(creqs)
		go func() {
			for ctx.Err() == nil {
				if _, err := ch.Write([]byte("upload")); err != nil {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	closed := make(chan struct{})
	go func() { _ = cc.Wait(); close(closed) }()
	return closed
}

// TestKeepaliveSlowButBusyClient: answers that take many intervals do not
// close a connection whose client keeps sending (an upload on a slow link).
func TestKeepaliveSlowButBusyClient(t *testing.T) {
	closed := keepaliveClient(t, time.Second, true)
	select {
	case <-closed:
		t.Fatal("the server closed the connection although the client kept sending")
	case <-time.After(2 * time.Second):
	}
}

// TestKeepaliveSilentClient: a client that neither answers nor sends is
// given up on within (KeepaliveMax+1) intervals.
func TestKeepaliveSilentClient(t *testing.T) {
	closed := keepaliveClient(t, -1, false)
	bound := 4*50*time.Millisecond + 500*time.Millisecond
	select {
	case <-closed:
	case <-time.After(bound):
		t.Fatalf("the connection to a silent client is still open after %s", bound)
	}
}
