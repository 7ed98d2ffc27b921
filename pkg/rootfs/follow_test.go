//go:build linux

package rootfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The following operations resolve a final symlink, but inside the root:
// /link -> /etc is the fake root's etc, never the host's.
func TestFollowConfined(t *testing.T) {
	dir, r := hostileRoot(t)
	must(t, os.WriteFile(filepath.Join(dir, "etc", "marker"), []byte("app's etc"), 0o644))

	// The host's /etc/passwd exists; through the root, /etc is the app's.
	if _, err := r.Stat("link/passwd"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat(link/passwd) = %v, want not found (the app's /etc has no passwd)", err)
	}
	if fi, err := r.Stat("/link"); err != nil || !fi.IsDir() || fi.Name() != "link" {
		t.Fatalf("Stat(/link) = %v, %v: want the directory the link points to", fi, err)
	}
	if _, err := r.Stat("app/rellink/etc/marker"); err != nil {
		t.Fatalf("relative escape clamped to the root: %v", err)
	}
	// No procfs in the fake root: not found; a real magic link is ELOOP.
	if _, err := r.Stat("proclink/etc"); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ELOOP) {
		t.Fatalf("magic link: %v", err)
	}

	f, err := r.OpenFile("/link/marker", os.O_RDONLY, 0)
	must(t, err)
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "app's etc" {
		t.Fatalf("marker: %q", b)
	}
	// Writes, in place, land in the app's /etc.
	w, err := r.OpenFile("link/new", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	must(t, err)
	w.Close()
	if _, err := os.Stat(filepath.Join(dir, "etc", "new")); err != nil {
		t.Fatalf("write through link: %v", err)
	}
	if _, err := r.OpenFile("link/new", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("O_EXCL on an existing file: %v", err)
	}
	rw, err := r.OpenFile("link/marker", os.O_RDWR, 0)
	must(t, err)
	_, err = rw.WriteAt([]byte("APP"), 0)
	rw.Close()
	must(t, err)
	must(t, r.Truncate("link/marker", 5))
	if b, _ := os.ReadFile(filepath.Join(dir, "etc", "marker")); string(b) != "APP's" {
		t.Fatalf("in-place write and truncate: %q", b)
	}

	must(t, r.ChmodFollow("link/marker", 0o600|fs.ModeSetgid))
	if fi, _ := os.Stat(filepath.Join(dir, "etc", "marker")); fi.Mode() != 0o600|fs.ModeSetgid {
		t.Fatalf("ChmodFollow: mode %v", fi.Mode())
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, r.ChtimesFollow("link/marker", mtime, mtime))
	if fi, _ := os.Stat(filepath.Join(dir, "etc", "marker")); !fi.ModTime().Equal(mtime) {
		t.Fatalf("ChtimesFollow: mtime %v", fi.ModTime())
	}
	uid, gid := os.Getuid(), os.Getgid()
	must(t, r.Chown("link/marker", Owner{uid, gid}))
	fi, err := r.Stat("link/marker")
	must(t, err)
	if u := fi.(*Info).Uid(); int(u) != uid {
		t.Fatalf("Uid = %d, want %d", u, uid)
	}

	must(t, r.Link("link/marker", "app/hard"))
	if a, b := statIno(t, filepath.Join(dir, "etc", "marker")), statIno(t, filepath.Join(dir, "app", "hard")); a != b {
		t.Fatal("Link did not make a hard link")
	}
}

func statIno(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Stat(p, &st))
	return st.Ino
}

func TestRealPath(t *testing.T) {
	dir, r := hostileRoot(t)
	must(t, os.WriteFile(filepath.Join(dir, "etc", "marker"), nil, 0o644))
	must(t, os.Symlink("loop", filepath.Join(dir, "loop")))
	for _, tt := range []struct{ in, want string }{
		{"link/marker", "/etc/marker"},
		{"/", "/"},
		{"../../app/rellink", "/"},
		{"app/rellink/link", "/etc"},
		{"link/missing/x", "/etc/missing/x"},
	} {
		if got, err := r.RealPath(tt.in); err != nil || got != tt.want {
			t.Errorf("RealPath(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := r.RealPath("loop/x"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("RealPath(loop) = %v, want ELOOP", err)
	}
}

// The creating and removing operations the sftp server needs fail as their
// POSIX namesakes do, where Mkdir-all, Symlink and Remove are lenient.
func TestExclusiveOps(t *testing.T) {
	dir, r := hostileRoot(t)
	noOwner := Owner{-1, -1}
	must(t, r.Mkdir("link/d", 0o755, noOwner))
	if _, err := os.Stat(filepath.Join(dir, "etc", "d")); err != nil {
		t.Fatal(err)
	}
	if err := r.Mkdir("link/d", 0o755, noOwner); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Mkdir of an existing directory: %v, want fs.ErrExist", err)
	}
	must(t, r.SymlinkExcl("/etc", "app/ln", noOwner))
	if err := r.SymlinkExcl("/tmp", "app/ln", noOwner); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("SymlinkExcl over a link: %v, want fs.ErrExist", err)
	}
	if l, err := r.Readlink("app/ln"); err != nil || l != "/etc" {
		t.Fatalf("Readlink = %q, %v", l, err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "app", "f"), nil, 0o644))
	if err := r.RemoveDir("app/f"); !errors.Is(err, unix.ENOTDIR) {
		t.Fatalf("RemoveDir of a file: %v, want ENOTDIR", err)
	}
	must(t, r.RemoveDir("link/d"))
	if _, err := os.Stat(filepath.Join(dir, "etc", "d")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("RemoveDir: %v", err)
	}
}
