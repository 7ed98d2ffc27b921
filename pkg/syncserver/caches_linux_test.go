//go:build linux

package syncserver

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
)

// TestDropNow: a racy replacement's caches go at once, except one the
// batch writes itself; drop reports them with its own, once.
func TestDropNow(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"app/m.py", "app/__pycache__/m.cpython-311.pyc", "app/__pycache__/m.cpython-312.pyc", "app/__pycache__/n.cpython-311.pyc", "app/n.py"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fsys, err := rootfs.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	var c cacheInvalidator
	c.wrote("/app/__pycache__/m.cpython-312.pyc") // the client's, in flight
	c.change("/app/m.py", true)
	c.dropNow(fsys, "/app/m.py", "")
	if _, err := os.Stat(filepath.Join(dir, "app/__pycache__/m.cpython-311.pyc")); !os.IsNotExist(err) {
		t.Errorf("m.cpython-311.pyc is still there after dropNow (%v)", err)
	}
	c.change("/app/n.py", false)
	removed, unknown, err := c.drop(fsys, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/app/__pycache__/m.cpython-311.pyc", "/app/__pycache__/n.cpython-311.pyc"}; !slices.Equal(removed, want) || len(unknown) != 0 {
		t.Errorf("removed %q, unknown %q; want %q", removed, unknown, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "app/__pycache__/m.cpython-312.pyc")); err != nil {
		t.Errorf("the batch's own cache was removed: %v", err)
	}
	if removed, _, _ := c.drop(fsys, ""); len(removed) != 0 {
		t.Errorf("a second drop removed %q", removed)
	}
}

// TestDropUnderPycachePrefix: with PYTHONPYCACHEPREFIX=/tmp/pyc the caches
// of /app/m.py are /tmp/pyc/app/m.TAG.pyc.
func TestDropUnderPycachePrefix(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"app/m.py", "tmp/pyc/app/m.cpython-311.pyc", "tmp/pyc/app/n.cpython-311.pyc"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fsys, err := rootfs.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	var c cacheInvalidator
	c.change("/app/m.py", false)
	removed, _, err := c.drop(fsys, PycachePrefix([]string{"PYTHONPYCACHEPREFIX=../tmp/pyc"}, "/app"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/tmp/pyc/app/m.cpython-311.pyc"}; !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
}
