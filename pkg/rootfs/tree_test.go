//go:build linux

package rootfs

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

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
