//go:build linux

package syncserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// noTempNames fails the test for every name under dir that starts with
// rootfs.TempPrefix: a staged directory or temporary file left behind.
func noTempNames(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), rootfs.TempPrefix) {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

// contents lists the tree at dir: "path/" for directories and
// "path=content" for files, in lexical order.
func contents(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			b.WriteString(rel + "/\n")
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b.WriteString(rel + "=" + string(data) + "\n")
		return nil
	})
	return b.String()
}

// TestNewDirectoryAppearsWhole: a directory a batch creates is invisible
// to the app until the batch commits, then appears with everything the
// batch put in it (files, a subdirectory, a symlink, modes).
func TestNewDirectoryAppearsWhole(t *testing.T) {
	appRoot := t.TempDir()
	app := filepath.Join(appRoot, "app")
	os.MkdirAll(app, 0o755)
	c := testSession(t, appRoot, filesync.ClientOptions{})
	// More than the client's buffers: when the last file is opened, the
	// agent has applied every operation before it.
	big := make([]byte, 3*syncproto.ChunkSize) // random: compression must not shrink it
	rand.Read(big)
	checked := false
	last := func() (io.ReadCloser, error) {
		checked = true
		if _, err := os.Lstat(filepath.Join(app, "new")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("app/new is visible before its batch commits (%v)", err)
		}
		ents, _ := os.ReadDir(app)
		if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), rootfs.TempPrefix) {
			t.Errorf("while the batch runs, app holds %v, want one staged directory", ents)
		}
		return content("last")()
	}
	ops := []syncproto.Op{{Kind: syncproto.OpMkdir, Path: "new", Mode: 0o750}, {Kind: syncproto.OpMkdir, Path: "new/sub", Mode: 0o755}}
	for i := range 50 {
		ops = append(ops, syncproto.Op{Kind: syncproto.OpWrite, Path: fmt.Sprintf("new/sub/f%02d", i), Mode: 0o644, MTime: 1e18 + int64(i), Open: content(fmt.Sprint("file ", i))})
	}
	ops = append(ops,
		syncproto.Op{Kind: syncproto.OpWrite, Path: "new/big", Mode: 0o644, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(big)), nil }},
		syncproto.Op{Kind: syncproto.OpSymlink, Path: "new/ln", Target: "sub/f00"},
		syncproto.Op{Kind: syncproto.OpWrite, Path: "new/last", Mode: 0o600, Open: last},
		syncproto.Op{Kind: syncproto.OpChmod, Path: "new/sub", Mode: 0o700},
	)
	res, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("the last file was never opened")
	}
	if len(res.Errors) != 0 || res.Applied != len(ops) {
		t.Fatalf("applied %d of %d, errors %+v", res.Applied, len(ops), res.Errors)
	}
	for i := range 50 {
		p := filepath.Join(app, fmt.Sprintf("new/sub/f%02d", i))
		b, err := os.ReadFile(p)
		if err != nil || string(b) != fmt.Sprint("file ", i) {
			t.Errorf("%s = %q, %v", p, b, err)
		}
		if st, err := os.Stat(p); err == nil && st.ModTime().UnixNano() != 1e18+int64(i) {
			t.Errorf("%s: mtime %d", p, st.ModTime().UnixNano())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(app, "new/big")); !bytes.Equal(b, big) {
		t.Errorf("new/big: %d bytes, want %d", len(b), len(big))
	}
	if target, err := os.Readlink(filepath.Join(app, "new/ln")); err != nil || target != "sub/f00" {
		t.Errorf("new/ln -> %q, %v", target, err)
	}
	for p, want := range map[string]os.FileMode{"new": 0o750, "new/sub": 0o700, "new/last": 0o600} {
		if st, err := os.Lstat(filepath.Join(app, p)); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %v", p, st, err, want)
		}
	}
	noTempNames(t, appRoot)
}

// TestStagedDirectoryWithRenameAndDelete: a rename or a delete in the same
// batch acts on what the client sees, staged directories included, and
// writes after it go where they belong.
func TestStagedDirectoryWithRenameAndDelete(t *testing.T) {
	appRoot := t.TempDir()
	app := filepath.Join(appRoot, "app")
	os.MkdirAll(filepath.Join(app, "old"), 0o755)
	c := testSession(t, appRoot, filesync.ClientOptions{})
	ops := []syncproto.Op{
		{Kind: syncproto.OpMkdir, Path: "a", Mode: 0o755},
		{Kind: syncproto.OpWrite, Path: "a/x", Mode: 0o644, Open: content("x")},
		{Kind: syncproto.OpWrite, Path: "a/gone", Mode: 0o644, Open: content("deleted below")},
		{Kind: syncproto.OpRename, Path: "a/x", To: "old/x"},
		{Kind: syncproto.OpDelete, Path: "a/gone"},
		{Kind: syncproto.OpWrite, Path: "a/y", Mode: 0o644, Open: content("after the rename")},
		{Kind: syncproto.OpMkdir, Path: "b", Mode: 0o755},
		{Kind: syncproto.OpWrite, Path: "b/z", Mode: 0o644, Open: content("z")},
		{Kind: syncproto.OpDelete, Path: "b"},
		{Kind: syncproto.OpMkdir, Path: "b", Mode: 0o700},
		{Kind: syncproto.OpWrite, Path: "b/again", Mode: 0o644, Open: content("again")},
	}
	res, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 0 {
		t.Fatalf("errors %+v", res.Errors)
	}
	got := contents(t, app)
	want := "a/\na/y=after the rename\nb/\nb/again=again\nold/\nold/x=x\n"
	if got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	if st, _ := os.Stat(filepath.Join(app, "b")); st.Mode().Perm() != 0o700 {
		t.Errorf("b: mode %v", st.Mode())
	}
	noTempNames(t, appRoot)
}

// failingAfter yields n bytes, then closes conn (the client's end of the
// session) and fails: the session ends in the middle of a file.
type failingAfter struct {
	n    int
	conn net.Conn
}

func (f *failingAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		f.conn.Close()
		return 0, io.ErrClosedPipe
	}
	k := min(len(p), f.n)
	rand.Read(p[:k]) // incompressible: it leaves the client's buffers
	f.n -= k
	return k, nil
}

func (f *failingAfter) Close() error { return nil }

// TestStagedDirectoryWhenTheSessionFails: the session ends in the middle of
// a file in a new directory. The finished files appear (the next sync need
// not send them again), the unfinished one does not, and nothing hidden is
// left behind.
func TestStagedDirectoryWhenTheSessionFails(t *testing.T) {
	appRoot, a, served := servedRoot(t)
	app := filepath.Join(appRoot, "app")
	c, err := filesync.NewClient(context.Background(), a, filesync.ClientOptions{Dest: "/app"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ops := []syncproto.Op{
		{Kind: syncproto.OpMkdir, Path: "new", Mode: 0o755},
		{Kind: syncproto.OpWrite, Path: "new/done", Mode: 0o644, Open: content("finished")},
		{Kind: syncproto.OpWrite, Path: "new/cut", Mode: 0o644, Size: 4 * syncproto.ChunkSize, Open: func() (io.ReadCloser, error) {
			return &failingAfter{n: 2 * syncproto.ChunkSize, conn: a}, nil
		}},
	}
	if _, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{}); err == nil {
		t.Fatal("Apply succeeded on a closed session")
	}
	<-served
	if b, err := os.ReadFile(filepath.Join(app, "new/done")); err != nil || string(b) != "finished" {
		t.Errorf("new/done = %q, %v; want the finished file", b, err)
	}
	if _, err := os.Lstat(filepath.Join(app, "new/cut")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unfinished file is there (%v)", err)
	}
	noTempNames(t, appRoot)
}

// TestHeldDirectoryFollowsRenames: writers keep the directory of their
// last file open (heldDir). A rename in the middle of a batch moves that
// directory away; the writes after it must go to the new directory of the
// old name, not into the held one. The directories exist before the batch
// (nothing is staged, the paths stay the same) and there are more files
// than writers, so that each writer holds "a" when the renames come.
func TestHeldDirectoryFollowsRenames(t *testing.T) {
	appRoot := t.TempDir()
	app := filepath.Join(appRoot, "app")
	os.MkdirAll(filepath.Join(app, "a"), 0o755)
	os.MkdirAll(filepath.Join(app, "c"), 0o755)
	c := testSession(t, appRoot, filesync.ClientOptions{})
	var ops []syncproto.Op
	want := ""
	for i := range 12 {
		p := fmt.Sprintf("a/x%02d", i)
		ops = append(ops, syncproto.Op{Kind: syncproto.OpWrite, Path: p, Mode: 0o644, Open: content("x")})
	}
	ops = append(ops, syncproto.Op{Kind: syncproto.OpRename, Path: "a", To: "b"}, syncproto.Op{Kind: syncproto.OpRename, Path: "c", To: "a"})
	for i := range 12 {
		p := fmt.Sprintf("a/y%02d", i)
		ops = append(ops, syncproto.Op{Kind: syncproto.OpWrite, Path: p, Mode: 0o644, Open: content("y")})
	}
	want += "a/\n"
	for i := range 12 {
		want += fmt.Sprintf("a/y%02d=y\n", i)
	}
	want += "b/\n"
	for i := range 12 {
		want += fmt.Sprintf("b/x%02d=x\n", i)
	}
	res, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 0 {
		t.Fatalf("errors %+v", res.Errors)
	}
	if got := contents(t, app); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	noTempNames(t, appRoot)
}
