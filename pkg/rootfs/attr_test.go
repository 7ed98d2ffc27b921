//go:build linux

package rootfs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestOwnerModeMtime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir, r := hostileRoot(t)
	mt := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	_, err := r.WriteFile("app/new/dir/file.txt", strings.NewReader("x"), WriteOptions{Mode: 0o755, Owner: Owner{1000, 1001}, ModTime: mt, Parents: true, Sync: true})
	must(t, err)
	for _, p := range []string{"app/new", "app/new/dir", "app/new/dir/file.txt"} {
		st, err := os.Lstat(filepath.Join(dir, p))
		must(t, err)
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != 1000 || sys.Gid != 1001 {
			t.Errorf("%s owned by %d:%d, want 1000:1001", p, sys.Uid, sys.Gid)
		}
	}
	info, err := r.Lstat("app/new/dir/file.txt")
	must(t, err)
	if !info.ModTime().Equal(mt) || info.Mode().Perm() != 0o755 {
		t.Errorf("mtime %v mode %v", info.ModTime(), info.Mode())
	}
	must(t, r.Chmod("app/new/dir/file.txt", 0o600))
	must(t, r.Chtimes("app/new/dir/file.txt", mt.Add(time.Hour)))
	info, _ = r.Lstat("app/new/dir/file.txt")
	if !info.ModTime().Equal(mt.Add(time.Hour)) || info.Mode().Perm() != 0o600 {
		t.Errorf("after chmod/chtimes: mtime %v mode %v", info.ModTime(), info.Mode())
	}
	must(t, r.Symlink("/etc/passwd", "app/ln", Owner{1000, 1001}))
	st, _ := os.Lstat(filepath.Join(dir, "app/ln"))
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 1000 {
		t.Errorf("symlink owner %d", sys.Uid)
	}
	// chmod of a symlink must not change its target
	must(t, r.Chmod("link", 0o777))
	if st, _ := os.Stat("/etc"); st.Mode().Perm() == 0o777 {
		t.Fatal("chmod followed a symlink to the real /etc")
	}
}

// TestModeAndOwnerExactly: a written file ends with exactly the mode and
// owner asked for, whether or not the agent's IDs, the umask or a chown
// (which clears set-id bits) were in the way; the bits are changed only
// where the new file differs, so each case goes through another path.
func TestModeAndOwnerExactly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir, r := hostileRoot(t)
	old := unix.Umask(0o077) // a restrictive umask: the created bits differ
	t.Cleanup(func() { unix.Umask(old) })
	me := Owner{os.Geteuid(), os.Getegid()}
	for i, tt := range []struct {
		mode  fs.FileMode
		owner Owner
		want  Owner
	}{
		{0o644, me, me},
		{0o644, Owner{-1, -1}, me},
		{0o755 | fs.ModeSetuid, me, me},
		{0o755 | fs.ModeSetuid | fs.ModeSetgid, Owner{1000, 1001}, Owner{1000, 1001}},
		{0o2750, Owner{1000, -1}, Owner{1000, me.GID}},
		{0o600, Owner{1000, 1001}, Owner{1000, 1001}},
	} {
		name := fmt.Sprintf("app/m%d", i)
		_, err := r.WriteFile(name, strings.NewReader("x"), WriteOptions{Mode: tt.mode, Owner: tt.owner})
		must(t, err)
		st, err := os.Lstat(filepath.Join(dir, name))
		must(t, err)
		sys := st.Sys().(*syscall.Stat_t)
		if got := sys.Mode & 0o7777; got != unixMode(tt.mode) {
			t.Errorf("%s: mode %#o, want %#o", name, got, unixMode(tt.mode))
		}
		if int(sys.Uid) != tt.want.UID || int(sys.Gid) != tt.want.GID {
			t.Errorf("%s: owned by %d:%d, want %d:%d", name, sys.Uid, sys.Gid, tt.want.UID, tt.want.GID)
		}
	}
}
