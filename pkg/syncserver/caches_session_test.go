//go:build linux

package syncserver_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// pycacheRoot is an app root whose /app/pkg holds m.py (x - y, 0.1 s into
// a second), other.py, the caches CPython and PyPy wrote for them, a
// Python 2 m.pyc beside m.py and the cache of a source m.x.py.
func pycacheRoot(t *testing.T) (appRoot string, sec time.Time) {
	t.Helper()
	appRoot = t.TempDir()
	sec = time.Unix(1700000000, 0)
	pkg := filepath.Join(appRoot, "app/pkg")
	write(t, filepath.Join(pkg, "m.py"), "x - y", 0o644)
	os.Chtimes(filepath.Join(pkg, "m.py"), sec, sec.Add(100*time.Millisecond))
	for _, f := range []string{"m.cpython-311.pyc", "m.cpython-311.opt-1.pyc", "m.pypy39.pyc", "other.cpython-311.pyc", "m.x.cpython-311.pyc"} {
		write(t, filepath.Join(pkg, "__pycache__", f), "bytecode of x - y", 0o644)
	}
	write(t, filepath.Join(pkg, "m.pyc"), "python 2 bytecode", 0o644)
	write(t, filepath.Join(pkg, "other.py"), "other", 0o644)
	return appRoot, sec
}

// names lists the files below dir, relative, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func apply(t *testing.T, c *filesync.Client, ops ...syncproto.Op) *filesync.BatchResult {
	t.Helper()
	res, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %+v", res.Errors)
	}
	return res
}

// TestReplacedSourceLosesItsCaches: x - y replaced by x * y, same size,
// same mtime second: the caches derived from m.py are gone when the batch
// is answered (so before any restart), the others stay, and the file keeps
// the mtime it was sent with.
func TestReplacedSourceLosesItsCaches(t *testing.T) {
	for _, lanes := range []bool{false, true} {
		t.Run(map[bool]string{false: "inline", true: "lanes"}[lanes], func(t *testing.T) {
			if lanes {
				testLanes, testLaneMin = 2, -1
				defer func() { testLanes, testLaneMin = 0, 0 }()
			}
			appRoot, sec := pycacheRoot(t)
			c := testSession(t, appRoot, filesync.ClientOptions{})
			mtime := sec.Add(400 * time.Millisecond)
			res := apply(t, c, syncproto.Op{Kind: syncproto.OpWrite, Path: "pkg/m.py", Mode: 0o644, MTime: mtime.UnixNano(), Open: content("x * y")})
			wantRemoved := []string{"/app/pkg/__pycache__/m.cpython-311.opt-1.pyc", "/app/pkg/__pycache__/m.cpython-311.pyc", "/app/pkg/__pycache__/m.pypy39.pyc", "/app/pkg/m.pyc"}
			if !equal(res.CachesRemoved, wantRemoved) || len(res.Racy) != 0 || res.CachesOmitted != 0 {
				t.Errorf("reported removed %q, racy %q, omitted %d; want removed %q", res.CachesRemoved, res.Racy, res.CachesOmitted, wantRemoved)
			}
			want := []string{"m.py", "other.py", "__pycache__/m.x.cpython-311.pyc", "__pycache__/other.cpython-311.pyc"}
			sort.Strings(want)
			if got := names(t, filepath.Join(appRoot, "app/pkg")); !equal(got, want) {
				t.Errorf("after the replacement: %q, want %q", got, want)
			}
			fi, err := os.Stat(filepath.Join(appRoot, "app/pkg/m.py"))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().Equal(mtime) {
				t.Errorf("m.py mtime %v, want the local %v", fi.ModTime(), mtime)
			}
		})
	}
}

// TestCachesOfDeletesAndRenames: a deleted source's caches go (a Python 2
// m.pyc would be imported in its place), a rename drops those of both
// names, a new file drops nothing, and a cache the batch writes itself
// (a synced __pycache__) stays.
func TestCachesOfDeletesAndRenames(t *testing.T) {
	appRoot, _ := pycacheRoot(t)
	c := testSession(t, appRoot, filesync.ClientOptions{})
	apply(t, c,
		syncproto.Op{Kind: syncproto.OpWrite, Path: "pkg/new.py", Mode: 0o644, Open: content("new")},
		syncproto.Op{Kind: syncproto.OpDelete, Path: "pkg/m.py"},
		syncproto.Op{Kind: syncproto.OpWrite, Path: "pkg/__pycache__/other.cpython-312.pyc", Mode: 0o644, Open: content("the client's")},
		syncproto.Op{Kind: syncproto.OpRename, Path: "pkg/new.py", To: "pkg/other.py"},
	)
	want := []string{"other.py", "__pycache__/m.x.cpython-311.pyc", "__pycache__/other.cpython-312.pyc"}
	sort.Strings(want)
	if got := names(t, filepath.Join(appRoot, "app/pkg")); !equal(got, want) {
		t.Errorf("after delete and rename: %q, want %q", got, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRacyReplacementReported: a file whose caches no rule knows, replaced
// by one of the same size and mtime second, is reported (the client
// prints it at -v=1); one of another second is not.
func TestRacyReplacementReported(t *testing.T) {
	appRoot := t.TempDir()
	sec := time.Unix(1700000000, 0)
	write(t, filepath.Join(appRoot, "app/lib/x.rb"), "x - y", 0o644)
	write(t, filepath.Join(appRoot, "app/lib/y.rb"), "x - y", 0o644)
	os.Chtimes(filepath.Join(appRoot, "app/lib/x.rb"), sec, sec.Add(100*time.Millisecond))
	os.Chtimes(filepath.Join(appRoot, "app/lib/y.rb"), sec, sec.Add(100*time.Millisecond))
	c := testSession(t, appRoot, filesync.ClientOptions{})
	res := apply(t, c,
		syncproto.Op{Kind: syncproto.OpWrite, Path: "lib/x.rb", Mode: 0o644, MTime: sec.Add(400 * time.Millisecond).UnixNano(), Open: content("x * y")},
		syncproto.Op{Kind: syncproto.OpWrite, Path: "lib/y.rb", Mode: 0o644, MTime: sec.Add(1400 * time.Millisecond).UnixNano(), Open: content("x * y")},
	)
	if !equal(res.Racy, []string{"/app/lib/x.rb"}) || len(res.CachesRemoved) != 0 {
		t.Errorf("racy %q, removed %q; want racy [/app/lib/x.rb]", res.Racy, res.CachesRemoved)
	}
}
