package sshclient

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// keepaliveServer is an SSH server on one end of a pipe: it answers
// keepalives after delay (never when delay < 0) and, when busy, writes a
// few bytes on every session channel every few milliseconds, as a peer
// sending window adjustments during an upload does.
func keepaliveServer(t *testing.T, delay time.Duration, busy bool) *Client {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	user, err := ssh.NewSignerFromKey(userPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(hostKey)
	cs, ss := net.Pipe()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); cs.Close(); ss.Close() })
	go func() {
		_, chans, reqs, err := ssh.NewServerConn(ss, cfg)
		if err != nil {
			return
		}
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
		for nc := range chans {
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go ssh.DiscardRequests(creqs)
			if busy {
				go func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(5 * time.Millisecond):
						}
						if _, err := ch.Write([]byte("adjust")); err != nil {
							return
						}
					}
				}()
			}
		}
	}()
	cl, err := NewClient(cs, Config{Signer: user, HostKey: hostKey.PublicKey(), KeepaliveInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestKeepaliveSlowButBusyLink: answers that take many intervals do not
// close a connection whose peer keeps sending (a saturated slow link).
func TestKeepaliveSlowButBusyLink(t *testing.T) {
	cl := keepaliveServer(t, time.Second, true)
	ch, _, err := cl.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1024)
		for {
			if _, err := ch.Read(buf); err != nil {
				return
			}
		}
	}()
	select {
	case <-cl.Lost():
		t.Fatal("the connection was closed although the peer kept sending")
	case <-time.After(2 * time.Second): // 40 intervals, 2 late answers
	}
}

// TestKeepaliveDeadLink: a peer that neither answers nor sends anything is
// given up on within (KeepaliveCountMax+1) intervals.
func TestKeepaliveDeadLink(t *testing.T) {
	cl := keepaliveServer(t, -1, false)
	start := time.Now()
	bound := time.Duration(KeepaliveCountMax+1)*50*time.Millisecond + 500*time.Millisecond
	select {
	case <-cl.Lost():
		t.Logf("closed after %s", time.Since(start))
	case <-time.After(bound):
		t.Fatalf("the connection to a silent peer is still open after %s", bound)
	}
}

// TestKeepaliveSlowIdleLink: without traffic, answers later than an
// interval count as missed, as before.
func TestKeepaliveSlowIdleLink(t *testing.T) {
	cl := keepaliveServer(t, time.Hour, false)
	select {
	case <-cl.Lost():
	case <-time.After(2 * time.Second):
		t.Fatal("a peer that answers no keepalive and sends nothing was not given up on")
	}
}
