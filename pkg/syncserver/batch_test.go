//go:build linux

package syncserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

func content(s string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

// TestBatchOrderWithConcurrentWriters checks that a batch whose writes run
// on several goroutines has the effect of its operations applied in order:
// a rename, a delete or a second write of the same path sees every write
// before it, and per-operation errors keep their indexes.
func TestBatchOrderWithConcurrentWriters(t *testing.T) {
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	c := testSession(t, appRoot, filesync.ClientOptions{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*syncproto.ChunkSize/16+7) // several chunks
	var ops []syncproto.Op
	for i := range 200 {
		ops = append(ops, syncproto.Op{Kind: syncproto.OpWrite, Path: fmt.Sprintf("d%d/f%03d", i%7, i), Mode: 0o644, Open: content(fmt.Sprint("file ", i))})
	}
	bigOpen := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(big)), nil }
	// Each operation after a multi-chunk write depends on it: the write is
	// still in flight on its writer when the next operation arrives.
	ops = append(ops,
		syncproto.Op{Kind: syncproto.OpWrite, Path: "twice", Mode: 0o644, Open: bigOpen},
		syncproto.Op{Kind: syncproto.OpWrite, Path: "twice", Mode: 0o644, Open: content("second")},
		syncproto.Op{Kind: syncproto.OpWrite, Path: "d0/big", Mode: 0o600, Open: bigOpen},
		syncproto.Op{Kind: syncproto.OpRename, Path: "d0/big", To: "moved/big"},
		syncproto.Op{Kind: syncproto.OpWrite, Path: "d1/big", Mode: 0o600, Open: bigOpen},
		syncproto.Op{Kind: syncproto.OpDelete, Path: "d1"},
		syncproto.Op{Kind: syncproto.OpWrite, Path: "d1/again", Mode: 0o644, Open: content("after the delete")},
		syncproto.Op{Kind: syncproto.OpWrite, Path: "big", Mode: 0o600, Open: bigOpen},
		syncproto.Op{Kind: syncproto.OpWrite, Path: "big/x", Mode: 0o644, Open: content("a file is in the way")},
		syncproto.Op{Kind: syncproto.OpWrite, Path: "last", Mode: 0o644, Open: content("last")},
	)
	res, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 1 || res.Errors[0].Index != len(ops)-2 || res.Errors[0].Path != "big/x" {
		t.Fatalf("errors %+v, want one for big/x at index %d", res.Errors, len(ops)-2)
	}
	if res.Applied != len(ops)-1 {
		t.Errorf("applied %d of %d", res.Applied, len(ops))
	}
	app := filepath.Join(appRoot, "app")
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(app, p))
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	if got := read("twice"); got != "second" {
		t.Errorf("twice = %q, want the second write", got)
	}
	if got := read("moved/big"); got != string(big) {
		t.Errorf("moved/big: %d bytes, want %d", len(got), len(big))
	}
	if _, err := os.Stat(filepath.Join(app, "d0/big")); !os.IsNotExist(err) {
		t.Errorf("d0/big still there after the rename: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(app, "d1"))
	if len(entries) != 1 || entries[0].Name() != "again" || read("d1/again") != "after the delete" {
		t.Errorf("d1 holds %v, want only the file written after the delete", entries)
	}
	if got := read("big"); got != string(big) {
		t.Errorf("big: %d bytes, want %d", len(got), len(big))
	}
	for i := 0; i < 200; i++ {
		if i%7 == 1 {
			continue
		}
		if got, want := read(fmt.Sprintf("d%d/f%03d", i%7, i)), fmt.Sprint("file ", i); got != want {
			t.Errorf("d%d/f%03d = %q", i%7, i, got)
		}
	}
	if read("last") != "last" {
		t.Error("the write after a failed one was lost")
	}
	// No temporary file is left behind.
	filepath.WalkDir(app, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".devsync") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// TestPathOperationsWaitForTheirWrites: a mkdir, chmod or chtimes after a
// multi-chunk write to its path (or below it) sees that write done: the
// directory's mtime set after a write into it is the one that stays, a
// chmod after a write to the same file finds it and wins, a mkdir below a
// directory being written into works. (Tried: letting these operations
// wait only for the writes to their own path instead of every write
// before them, for trees of many small directories; no difference was
// measurable on a 10,000-file, 1,210-directory tree, so they still wait
// for every write.)
func TestPathOperationsWaitForTheirWrites(t *testing.T) {
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app", "d"), 0o755)
	c := testSession(t, appRoot, filesync.ClientOptions{Compress: filesync.CompressNever})
	big := make([]byte, 6*syncproto.ChunkSize)
	rand.Read(big) // incompressible: the write stays in flight for a while
	bigOpen := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(big)), nil }
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	ops := []syncproto.Op{
		{Kind: syncproto.OpWrite, Path: "d/big", Mode: 0o644, Open: bigOpen},
		{Kind: syncproto.OpChtimes, Path: "d", MTime: mtime.UnixNano()},
		{Kind: syncproto.OpWrite, Path: "f", Mode: 0o644, Open: bigOpen},
		{Kind: syncproto.OpChmod, Path: "f", Mode: 0o600},
		{Kind: syncproto.OpWrite, Path: "e/big", Mode: 0o644, Open: bigOpen},
		{Kind: syncproto.OpMkdir, Path: "e/sub", Mode: 0o700},
		{Kind: syncproto.OpWrite, Path: "e/sub/x", Mode: 0o644, Open: content("x")},
	}
	res, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 0 {
		t.Fatalf("errors %+v", res.Errors)
	}
	app := filepath.Join(appRoot, "app")
	if st, err := os.Stat(filepath.Join(app, "d")); err != nil || !st.ModTime().Equal(mtime) {
		t.Errorf("d: mtime %v (%v), want %v", st.ModTime(), err, mtime)
	}
	if st, err := os.Stat(filepath.Join(app, "f")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("f: mode %v (%v), want 0600", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Join(app, "e", "sub")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("e/sub: mode %v (%v), want 0700", st.Mode(), err)
	}
	for _, p := range []string{"d/big", "f", "e/big"} {
		if b, _ := os.ReadFile(filepath.Join(app, p)); !bytes.Equal(b, big) {
			t.Errorf("%s: %d bytes", p, len(b))
		}
	}
}
