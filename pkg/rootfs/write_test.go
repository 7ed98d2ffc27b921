//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWriteConfined(t *testing.T) {
	name := uniq(t)
	if _, err := os.Lstat("/etc/" + name); err == nil {
		t.Fatalf("/etc/%s exists before the test", name)
	}
	tests := []struct {
		desc    string
		path    string
		landsAt string // relative to the fake root; "" means an error is expected
	}{
		{"absolute symlink resolves in the root", "link/" + name, "etc/" + name},
		{"absolute path is relative to the root", "/etc/" + name + "-abs", "etc/" + name + "-abs"},
		{"dot-dot is clamped at the root", "../../" + name, name},
		{"relative symlink climbing out is clamped", "app/rellink/" + name + "-rel", name + "-rel"},
		{"magic link is refused", "proclink/tmp/" + name, ""},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			dir, r := hostileRoot(t)
			n, err := r.WriteFile(tt.path, strings.NewReader("hello"), WriteOptions{Mode: 0o640})
			if _, err := os.Lstat("/etc/" + name); err == nil {
				os.Remove("/etc/" + name)
				t.Fatal("the real /etc was written")
			}
			if tt.landsAt == "" {
				if err == nil {
					t.Fatalf("write %s: expected an error", tt.path)
				}
				// The fake root has no procfs: /proc resolves inside it (ENOENT).
				if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOENT) {
					t.Errorf("write %s: got %v, want ELOOP or ENOENT", tt.path, err)
				}
				return
			}
			must(t, err)
			if n != 5 {
				t.Errorf("wrote %d bytes, want 5", n)
			}
			got, err := os.ReadFile(filepath.Join(dir, tt.landsAt))
			must(t, err)
			if string(got) != "hello" {
				t.Errorf("content %q", got)
			}
			st, _ := os.Stat(filepath.Join(dir, tt.landsAt))
			if st.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640", st.Mode())
			}
		})
	}
}

func TestWriteReplacesSymlinkNotTarget(t *testing.T) {
	dir, r := hostileRoot(t)
	must(t, os.WriteFile(filepath.Join(dir, "etc", "target"), []byte("keep"), 0o644))
	must(t, os.Symlink("/etc/target", filepath.Join(dir, "app", "f")))
	_, err := r.WriteFile("app/f", strings.NewReader("new"), WriteOptions{})
	must(t, err)
	if b, _ := os.ReadFile(filepath.Join(dir, "etc", "target")); string(b) != "keep" {
		t.Errorf("write followed the symlink: target now %q", b)
	}
	if st, _ := os.Lstat(filepath.Join(dir, "app", "f")); !st.Mode().IsRegular() {
		t.Errorf("app/f is %v, want a regular file", st.Mode())
	}
}

// TestPendingFileAppearsWhole checks both ways a file is written: unnamed
// (O_TMPFILE, linked at Commit) and under a temporary name (renamed at
// Commit): the name shows nothing until Commit, then the whole file, and a
// replaced file is swapped in one step.
func TestPendingFileAppearsWhole(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("temporary-name=%v", named), func(t *testing.T) {
			dir, r := hostileRoot(t)
			r.noTmpfile.Store(named)
			mt := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
			for _, content := range []string{"first", "second, replacing the first"} {
				p, err := r.Create("app/f", WriteOptions{Mode: 0o640, ModTime: mt, Owner: Owner{-1, -1}})
				must(t, err)
				if _, err := p.Write([]byte(content)); err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(filepath.Join(dir, "app", "f")); err == nil && string(b) == content {
					t.Fatalf("the content is visible before Commit")
				}
				entries, _ := os.ReadDir(filepath.Join(dir, "app"))
				temps := 0
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), TempPrefix) {
						temps++
					}
				}
				want := 0 // unnamed: no directory entry until Commit
				if r.noTmpfile.Load() {
					want = 1
				}
				if temps != want {
					t.Errorf("%d temporary names while writing, want %d", temps, want)
				}
				must(t, p.Commit())
				st, err := os.Stat(filepath.Join(dir, "app", "f"))
				must(t, err)
				b, _ := os.ReadFile(filepath.Join(dir, "app", "f"))
				if string(b) != content || st.Mode().Perm() != 0o640 || !st.ModTime().Equal(mt) {
					t.Errorf("after Commit: %q, %v, %v", b, st.Mode(), st.ModTime())
				}
			}
			entries, _ := os.ReadDir(filepath.Join(dir, "app"))
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), TempPrefix) {
					t.Errorf("left behind: %s", e.Name())
				}
			}
			if !named && r.noTmpfile.Load() {
				t.Log("this filesystem has no O_TMPFILE: both runs used temporary names")
			}
		})
	}
}

// TestHoldDir: a held directory is resolved inside the root like any path
// (an absolute symlink to /etc is the root's etc), creates files that
// appear whole at Commit in both ways (direct and atomic), survives the
// files it made, and refuses anything but one path element.
func TestHoldDir(t *testing.T) {
	name := uniq(t)
	dir, r := hostileRoot(t)
	d, err := r.HoldDir("link")
	must(t, err)
	defer d.Close()
	for i, direct := range []bool{false, true} {
		base := name + strconv.Itoa(i)
		p, err := d.Create(base, WriteOptions{Mode: 0o600, Direct: direct})
		must(t, err)
		if _, err := p.Write([]byte("hel")); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Write([]byte("lo")); err != nil {
			t.Fatal(err)
		}
		if !direct {
			if _, err := os.Lstat(filepath.Join(dir, "etc", base)); err == nil {
				t.Errorf("%s visible before Commit", base)
			}
		}
		must(t, p.Commit())
		if _, err := os.Lstat("/etc/" + base); err == nil {
			os.Remove("/etc/" + base)
			t.Fatal("the real /etc was written")
		}
		got, err := os.ReadFile(filepath.Join(dir, "etc", base))
		must(t, err)
		st, _ := os.Stat(filepath.Join(dir, "etc", base))
		if string(got) != "hello" || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %q, mode %v", base, got, st.Mode())
		}
	}
	// Abort of a file in a held directory leaves the directory usable.
	p, err := d.Create(name+"-aborted", WriteOptions{})
	must(t, err)
	must(t, p.Abort())
	p, err = d.Create(name+"-after", WriteOptions{})
	must(t, err)
	must(t, p.Commit())
	if _, err := os.Lstat(filepath.Join(dir, "etc", name+"-after")); err != nil {
		t.Errorf("after an abort: %v", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../x", "x\x00y"} {
		if p, err := d.Create(bad, WriteOptions{}); err == nil {
			p.Abort()
			t.Errorf("Create(%q) succeeded", bad)
		}
	}
	if _, err := r.HoldDir("proclink"); err == nil {
		t.Error("HoldDir through a magic link succeeded")
	}
}

func TestPendingFileReplaced(t *testing.T) {
	for _, tmpfile := range []bool{true, false} {
		t.Run(fmt.Sprintf("O_TMPFILE=%v", tmpfile), func(t *testing.T) {
			dir := t.TempDir()
			r, err := OpenDir(dir)
			must(t, err)
			defer r.Close()
			r.noTmpfile.Store(!tmpfile)
			old := time.Unix(1700000000, 100e6)
			write := func(content string, mtime time.Time) *PendingFile {
				t.Helper()
				p, err := r.Create("m.py", WriteOptions{ModTime: mtime})
				must(t, err)
				_, err = p.Write([]byte(content))
				must(t, err)
				must(t, p.Commit())
				return p
			}
			if _, _, ok := write("x - y", old).Replaced(); ok {
				t.Fatal("a new file replaced something")
			}
			was, cur, ok := write("x * y", old.Add(300*time.Millisecond)).Replaced()
			if !ok {
				t.Fatal("a replacement is not reported")
			}
			if was.Size() != 5 || !was.ModTime().Equal(old) || cur.Size() != 5 || !cur.ModTime().Equal(old.Add(300*time.Millisecond)) {
				t.Errorf("replaced %d bytes at %v by %d at %v", was.Size(), was.ModTime(), cur.Size(), cur.ModTime())
			}
			p, err := r.Create("m.py", WriteOptions{})
			must(t, err)
			must(t, p.Abort())
			if _, _, ok := p.Replaced(); ok {
				t.Error("an aborted file replaced something")
			}
		})
	}
}
