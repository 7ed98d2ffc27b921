//go:build linux

package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostileRoot builds a fake app root holding the classic escape attempts.
func hostileRoot(t *testing.T) (string, *Root) {
	t.Helper()
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "app"), 0o755))
	must(t, os.Symlink("/etc", filepath.Join(dir, "link")))
	must(t, os.Symlink("../..", filepath.Join(dir, "app", "rellink")))
	must(t, os.Symlink("/proc/self/root", filepath.Join(dir, "proclink")))
	r, err := OpenDir(dir)
	must(t, err)
	t.Cleanup(func() { r.Close() })
	return dir, r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func uniq(t *testing.T) string {
	return "devsync-rootfs-test-" + strconv.Itoa(os.Getpid()) + "-" + strings.ReplaceAll(t.Name(), "/", "_")
}

func TestOpenProcess(t *testing.T) {
	r, err := OpenProcess(os.Getpid(), "")
	must(t, err)
	defer r.Close()
	if o := r.Owner(); o.UID != os.Geteuid() || o.GID != os.Getegid() {
		t.Errorf("owner %+v", o)
	}
	wd, _ := os.Getwd()
	if got, err := r.Workdir(); err != nil || got != wd {
		t.Errorf("workdir %q %v, want %q", got, err, wd)
	}
	must(t, r.Alive())
	if _, err := r.Lstat(strings.TrimPrefix(wd, "/")); err != nil {
		t.Errorf("lstat cwd through the root: %v", err)
	}
	// A real magic link inside the root is refused (RESOLVE_NO_MAGICLINKS).
	tmp := t.TempDir()
	_, err = r.WriteFile("proc/self/root"+tmp+"/x", strings.NewReader("x"), WriteOptions{})
	if !errors.Is(err, unix.ELOOP) {
		t.Errorf("write through /proc/self/root: got %v, want ELOOP", err)
	}
	if _, err := os.Lstat(tmp + "/x"); err == nil {
		t.Error("a magic link was followed")
	}
	if _, err := OpenProcess(os.Getpid(), "0123456789abcdef-not-our-container"); err == nil {
		t.Error("a wrong container ID was accepted")
	}
	if _, err := OpenProcess(1<<30, ""); err == nil {
		t.Error("a missing PID was accepted")
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{"": ".", "/": ".", "../../x": "x", "/a/../b/": "b", "a//b/./c": "a/b/c"} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}
