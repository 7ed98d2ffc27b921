//go:build linux

package approc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRootConfinesSymlinks(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "app"), 0o755)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "marker"), []byte("app's etc"), 0o644)
	os.Symlink("/etc", filepath.Join(dir, "app", "abslink"))
	os.Symlink("../../../../..", filepath.Join(dir, "app", "rellink"))
	os.Symlink("/proc/self/root", filepath.Join(dir, "app", "proclink"))
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// The host's /etc/passwd exists; through the root, /etc is the app's.
	if _, err := r.Stat("app/abslink/passwd"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("app/abslink/passwd: %v, want not found (the app's /etc has no passwd)", err)
	}
	f, err := r.OpenFile("/app/abslink/marker", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 100)
	n, _ := f.Read(b)
	f.Close()
	if string(b[:n]) != "app's etc" {
		t.Fatalf("marker: %q", b[:n])
	}
	// Writes land in the app's /etc.
	w, err := r.OpenFile("app/abslink/new", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := os.Stat(filepath.Join(dir, "etc", "new")); err != nil {
		t.Fatalf("write through abslink: %v", err)
	}
	if _, err := r.Stat("app/rellink/etc/marker"); err != nil {
		t.Fatalf("relative escape clamped to the root: %v", err)
	}
	// /proc/self/root resolves inside the root (no /proc here): not found;
	// a real magic link is refused with ELOOP.
	if _, err := r.Stat("app/proclink/etc"); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ELOOP) {
		t.Fatalf("magic link: %v", err)
	}
	if err := r.Mkdir("app/abslink/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc", "d")); err != nil {
		t.Fatal(err)
	}
	if err := r.Rename("app/abslink/d", "/app/d2"); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove("app/d2", true); err != nil {
		t.Fatal(err)
	}
	if p, err := r.RealPath("app/abslink/marker"); err != nil || p != "/etc/marker" {
		t.Fatalf("RealPath = %q, %v", p, err)
	}
	if p, err := r.RealPath("../../app/rellink"); err != nil || p != "/" {
		t.Fatalf("RealPath(rellink) = %q, %v", p, err)
	}
	if l, err := r.Readlink("app/abslink"); err != nil || l != "/etc" {
		t.Fatalf("Readlink = %q, %v", l, err)
	}
	if fi, err := r.Lstat("app/abslink"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("Lstat = %v, %v", fi, err)
	}
	ents, err := r.ReadDir("app")
	if err != nil || len(ents) != 3 {
		t.Fatalf("ReadDir = %v, %v", ents, err)
	}
	if err := r.Chmod("etc/marker", 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "etc", "marker")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}
