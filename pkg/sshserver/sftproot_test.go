//go:build linux

package sshserver_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshclient"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshserver"
)

// A symlink in the app's tree that points to /etc must not let sftp reach
// the agent's own /etc.
func TestSFTPInRootConfinesSymlinks(t *testing.T) {
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	os.MkdirAll(filepath.Join(appRoot, "etc"), 0o755)
	os.Symlink("/etc", filepath.Join(appRoot, "app", "etclink"))

	host, _ := newSigner(t)
	user, _ := newSigner(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sshserver.New(sshserver.Config{
		Addr: ln.Addr().String(), HostKey: host,
		AuthorizedKeys: sshserver.StaticAuthorizedKeys([]keys.AuthorizedKey{{Key: user.PublicKey()}}),
		Subsystems: map[string]sshserver.SubsystemHandler{"sftp": func(ctx context.Context, ch ssh.Channel, s *sshserver.SessionInfo) error {
			root, err := rootfs.OpenDir(appRoot)
			if err != nil {
				return err
			}
			defer root.Close()
			return sshserver.ServeSFTPInRoot(ch, root, "/app")
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := sshclient.NewClient(conn, sshclient.Config{Signer: user, HostKey: host.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := sftp.NewClient(c.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()

	if wd, err := sc.Getwd(); err != nil || wd != "/app" {
		t.Fatalf("Getwd = %q, %v", wd, err)
	}
	if _, err := sc.Open("/app/etclink/passwd"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("reading /app/etclink/passwd: %v, want not found (the agent's /etc/passwd must stay out of reach)", err)
	}
	if _, err := sc.Stat("etclink/../../../etc/passwd"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat via ..: %v", err)
	}
	w, err := sc.Create("/app/etclink/planted")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "x")
	w.Close()
	if _, err := os.Stat(filepath.Join(appRoot, "etc", "planted")); err != nil {
		t.Fatalf("the write did not land in the app's /etc: %v", err)
	}
	if _, err := os.Stat("/etc/planted"); err == nil {
		os.Remove("/etc/planted")
		t.Fatal("the write landed in the agent's /etc")
	}
	if err := sc.Mkdir("/app/d"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Rename("/app/d", "/app/e"); err != nil {
		t.Fatal(err)
	}
	ents, err := sc.ReadDir("/app")
	if err != nil || len(ents) != 2 {
		t.Fatalf("ReadDir = %v, %v", ents, err)
	}
	if l, err := sc.ReadLink("/app/etclink"); err != nil || l != "/etc" {
		t.Fatalf("ReadLink = %q, %v", l, err)
	}
	if p, err := sc.RealPath("etclink"); err != nil || p != "/etc" {
		t.Fatalf("RealPath = %q, %v", p, err)
	}
}
