//go:build linux

package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

func TestMkdirAllThroughSymlink(t *testing.T) {
	dir, r := hostileRoot(t)
	must(t, r.MkdirAll("link/"+uniq(t)+"/b", 0o750, Owner{-1, -1}))
	st, err := os.Stat(filepath.Join(dir, "etc", uniq(t), "b"))
	must(t, err)
	if st.Mode().Perm() != 0o750 {
		t.Errorf("mode %v", st.Mode())
	}
	if _, err := os.Lstat("/etc/" + uniq(t)); err == nil {
		t.Fatal("the real /etc was written")
	}
	// A dangling symlink in the way is an error, not a directory created elsewhere.
	must(t, os.Symlink("/nowhere/at/all", filepath.Join(dir, "dangling")))
	if err := r.MkdirAll("dangling/x", 0o755, Owner{-1, -1}); err == nil {
		t.Error("mkdir through a dangling symlink succeeded")
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

func TestRemoveAllDoesNotFollow(t *testing.T) {
	dir, r := hostileRoot(t)
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "precious"), []byte("x"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "app", "tree", "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "app", "tree", "sub", "f"), nil, 0o644))
	must(t, os.Symlink(outside, filepath.Join(dir, "app", "tree", "out")))
	must(t, os.Symlink(outside, filepath.Join(dir, "app", "top")))
	must(t, r.RemoveAll("app/tree"))
	must(t, r.RemoveAll("app/top"))
	must(t, r.RemoveAll("app/missing"))
	if _, err := os.Stat(filepath.Join(outside, "precious")); err != nil {
		t.Fatalf("a file outside was removed: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "app", "tree")); !os.IsNotExist(err) {
		t.Errorf("app/tree still exists: %v", err)
	}
	// through an absolute symlink: removes inside the root only
	must(t, os.WriteFile(filepath.Join(dir, "etc", "victim"), nil, 0o644))
	must(t, r.Remove("link/victim"))
	if _, err := os.Lstat(filepath.Join(dir, "etc", "victim")); !os.IsNotExist(err) {
		t.Errorf("etc/victim still exists")
	}
	if err := r.RemoveAll("/"); err == nil {
		t.Error("RemoveAll of the root succeeded")
	}
}

func TestWalkAndReadDir(t *testing.T) {
	dir, r := hostileRoot(t)
	must(t, os.MkdirAll(filepath.Join(dir, "app", "a b", "ü"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "app", "a b", "ü", "f"), []byte("123"), 0o644))
	must(t, unix.Mkfifo(filepath.Join(dir, "app", "fifo"), 0o644))
	var got []string
	must(t, r.Walk("app", func(rel string, info fs.FileInfo, target string, err error) error {
		must(t, err)
		got = append(got, rel+":"+info.Mode().Type().String()+":"+target)
		return nil
	}))
	want := []string{"a b:d---------:", "a b/ü:d---------:", "a b/ü/f:----------:", "fifo:p---------:", "rellink:L---------:../.."}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("walk:\n got %q\nwant %q", got, want)
	}
	// Walking a symlink to a directory follows it inside the root only.
	must(t, os.WriteFile(filepath.Join(dir, "etc", "inside"), nil, 0o644))
	var seen []string
	must(t, r.Walk("link", func(rel string, _ fs.FileInfo, _ string, err error) error {
		seen = append(seen, rel)
		return err
	}))
	if strings.Join(seen, ",") != "inside" {
		t.Errorf("walk of link -> /etc saw %q, want only the root's etc/inside", seen)
	}
	infos, err := r.ReadDir(".")
	must(t, err)
	if len(infos) != 4 {
		t.Errorf("readdir: %d entries", len(infos))
	}
	// Opening a FIFO is refused without blocking.
	if _, err := r.Open("app/fifo"); err == nil {
		t.Error("opened a FIFO")
	}
	f, err := r.Open("app/a b/ü/f")
	must(t, err)
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "123" {
		t.Errorf("read %q", b)
	}
}

func TestRenameAndPending(t *testing.T) {
	dir, r := hostileRoot(t)
	must(t, os.WriteFile(filepath.Join(dir, "app", "old"), []byte("1"), 0o644))
	must(t, r.Rename("app/old", "link/new"))
	if b, _ := os.ReadFile(filepath.Join(dir, "etc", "new")); string(b) != "1" {
		t.Errorf("rename: %q", b)
	}
	p, err := r.Create("app/aborted", WriteOptions{})
	must(t, err)
	p.Write(bytes.Repeat([]byte("x"), 10))
	must(t, p.Abort())
	entries, _ := os.ReadDir(filepath.Join(dir, "app"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempPrefix) || e.Name() == "aborted" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
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

// TestPublish: a staged directory is renamed into place; when the name has
// appeared meanwhile, the staged entries are moved into it (replacing what
// is in their way, merging directories) and the staged copy is removed.
func TestPublish(t *testing.T) {
	dir, r := hostileRoot(t)
	app := filepath.Join(dir, "app")
	stage := func(name string, files map[string]string) string {
		staged := StagingName(name)
		if !strings.HasPrefix(path.Base(staged), TempPrefix) || path.Dir(staged) != path.Dir(Clean(name)) {
			t.Fatalf("StagingName(%q) = %q", name, staged)
		}
		must(t, r.Mkdir(staged, 0o755, Owner{-1, -1}))
		for p, c := range files {
			if strings.HasSuffix(p, "/") {
				must(t, r.MkdirAll(staged+"/"+p, 0o755, Owner{-1, -1}))
				continue
			}
			_, err := r.WriteFile(staged+"/"+p, strings.NewReader(c), WriteOptions{Parents: true, Direct: true})
			must(t, err)
		}
		return staged
	}

	staged := stage("app/fresh", map[string]string{"a": "A", "sub/b": "B"})
	must(t, r.Publish(staged, "app/fresh"))
	if b, err := os.ReadFile(filepath.Join(app, "fresh/sub/b")); err != nil || string(b) != "B" {
		t.Errorf("fresh/sub/b = %q, %v", b, err)
	}

	staged = stage("app/taken", map[string]string{"a": "new a", "d/x": "x", "f2": "a file", "d2/y": "y", "e/": ""})
	// The app made app/taken meanwhile.
	for p, c := range map[string]string{"a": "old a", "d/keep": "kept", "f2/z": "z", "d2": "a file", "other": "other"} {
		must(t, os.MkdirAll(filepath.Join(app, "taken", filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(app, "taken", p), []byte(c), 0o644))
	}
	must(t, r.Publish(staged, "app/taken"))
	var got []string
	filepath.WalkDir(filepath.Join(app, "taken"), func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(filepath.Join(app, "taken"), p)
		if d.IsDir() {
			got = append(got, rel+"/")
		} else {
			b, _ := os.ReadFile(p)
			got = append(got, rel+"="+string(b))
		}
		return nil
	})
	want := "./ a=new a d/ d/keep=kept d/x=x d2/ d2/y=y e/ f2=a file other=other"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("merged:\n %s\nwant\n %s", g, want)
	}
	ents, _ := os.ReadDir(app)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			t.Errorf("staged copy left: %s", e.Name())
		}
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

// TestEnsureDir: missing directories are made (parents too) with the exact
// mode, an existing one gets its mode fixed, a symlink to a directory is
// left alone (its target keeps its mode), and a file in the way is an
// error; it never leaves the root (link -> /etc is the root's etc).
func TestEnsureDir(t *testing.T) {
	name := uniq(t)
	dir, r := hostileRoot(t)
	must(t, r.EnsureDir("app/a/b/c", 0o750, Owner{UID: -1, GID: -1}))
	for _, p := range []string{"app/a", "app/a/b", "app/a/b/c"} {
		if st, err := os.Stat(filepath.Join(dir, p)); err != nil || st.Mode().Perm() != 0o750 {
			t.Errorf("%s: %v %v", p, st.Mode(), err)
		}
	}
	must(t, os.Chmod(filepath.Join(dir, "app/a"), 0o700))
	must(t, r.EnsureDir("app/a", 0o755, Owner{UID: -1, GID: -1}))
	if st, _ := os.Stat(filepath.Join(dir, "app/a")); st.Mode().Perm() != 0o755 {
		t.Errorf("existing app/a: mode %v, want 0755", st.Mode())
	}
	must(t, os.Chmod(filepath.Join(dir, "etc"), 0o711))
	must(t, r.EnsureDir("link", 0o755, Owner{UID: -1, GID: -1}))
	if st, _ := os.Stat(filepath.Join(dir, "etc")); st.Mode().Perm() != 0o711 {
		t.Errorf("the symlink's target was changed: %v", st.Mode())
	}
	must(t, r.EnsureDir("link/"+name, 0o755, Owner{UID: -1, GID: -1}))
	if _, err := os.Lstat("/etc/" + name); err == nil {
		os.Remove("/etc/" + name)
		t.Fatal("the real /etc was written")
	}
	if st, err := os.Stat(filepath.Join(dir, "etc", name)); err != nil || !st.IsDir() {
		t.Errorf("link/%s did not land in the root's etc: %v", name, err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "app/file"), nil, 0o644))
	if err := r.EnsureDir("app/file", 0o755, Owner{UID: -1, GID: -1}); err == nil {
		t.Error("a file in the way was accepted")
	}
	if err := r.EnsureDir("app/file/sub", 0o755, Owner{UID: -1, GID: -1}); err == nil {
		t.Error("a directory under a file was made")
	}
}

// TestEnsureDirOwner: new directories get the owner (as root only).
func TestEnsureDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	dir, r := hostileRoot(t)
	must(t, r.EnsureDir("app/x/y", 0o750|fs.ModeSetgid, Owner{UID: 1234, GID: 2345}))
	for _, p := range []string{"app/x", "app/x/y"} {
		var st unix.Stat_t
		must(t, unix.Stat(filepath.Join(dir, p), &st))
		if st.Uid != 1234 || st.Gid != 2345 || st.Mode&0o7777 != 0o2750 {
			t.Errorf("%s: %d:%d %o, want 1234:2345 2750", p, st.Uid, st.Gid, st.Mode&0o7777)
		}
	}
}
