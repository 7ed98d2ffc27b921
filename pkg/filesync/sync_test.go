package filesync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

var (
	t1 = time.Unix(1_700_000_000, 0)
	t2 = time.Unix(1_700_000_100, 0)
)

// symlinks reports whether the test may create symlinks (Windows needs a
// privilege for them).
func symlinks() bool { return runtime.GOOS != "windows" }

// sampleLocal is a local tree: files, directories, an ignored directory,
// and symlinks where the OS allows them.
func sampleLocal(t *testing.T) string {
	t.Helper()
	local := t.TempDir()
	write(t, filepath.Join(local, "main.go"), "package main\n", 0o644)
	write(t, filepath.Join(local, "nested/deeper/file.txt"), "deep", 0o644)
	write(t, filepath.Join(local, "with space/ünïcödé ✓.txt"), "utf-8", 0o644)
	write(t, filepath.Join(local, "empty"), "", 0o644)
	write(t, filepath.Join(local, "run.sh"), "#!/bin/sh\n", 0o755)
	write(t, filepath.Join(local, ".git/HEAD"), "ref", 0o644)
	write(t, filepath.Join(local, "build/out.bin"), "ignored", 0o644)
	write(t, filepath.Join(local, ".gitignore"), "build/\n", 0o644)
	if symlinks() {
		if err := os.Symlink("main.go", filepath.Join(local, "link")); err != nil {
			t.Fatal(err)
		}
	}
	return local
}

func newSyncer(t *testing.T, r Remote, opts Options) *Syncer {
	t.Helper()
	s, err := NewSyncer(r, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestInitialSync: the destination ends up as the local tree, without and
// with --delete; remote-only files are kept without it, ignored ones
// always; a second sync sends nothing.
func TestInitialSync(t *testing.T) {
	tests := []struct {
		name   string
		remote func(m *memRemote)
		delete bool
		kept   []string // remote-only paths that must stay
		gone   []string // remote-only paths that must go
	}{
		{name: "empty destination", remote: func(*memRemote) {}},
		{name: "remote-only kept", remote: func(m *memRemote) { m.put("stale/old.txt", "old", 1) }, kept: []string{"stale/old.txt", "stale"}},
		{name: "delete", delete: true, remote: func(m *memRemote) {
			m.put("stale/old.txt", "old", 1)
			m.put("stale.txt", "old", 1)
			m.put("build/cache", "ignored remotely too", 1)
		}, kept: []string{"build/cache", "build"}, gone: []string{"stale", "stale/old.txt", "stale.txt"}},
		{name: "outdated and replaced", delete: true, remote: func(m *memRemote) {
			m.put("main.go", "package old\n", 1)           // size differs
			m.put("nested/deeper", "a file in the way", 1) // a file where a directory goes
			m.put("run.sh/x", "a directory in the way", 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := sampleLocal(t)
			m := newMemRemote()
			tt.remote(m)
			s := newSyncer(t, m, Options{LocalDir: local, Delete: tt.delete})
			sum, err := s.InitialSync(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if err := sum.Err(); err != nil {
				t.Fatal(err)
			}
			files := 6
			if symlinks() {
				files++
			}
			if sum.Files+sum.Symlinks != files {
				t.Errorf("summary %+v, want %d files", sum, files)
			}
			for _, p := range tt.gone {
				if _, ok := m.files[p]; ok {
					t.Errorf("%s is still there", p)
				}
			}
			kept := map[string]*memFile{}
			for _, p := range tt.kept {
				if kept[p] = m.files[p]; kept[p] == nil {
					t.Errorf("%s was removed", p)
				}
				delete(m.files, p)
			}
			if got, want := m.tree(), localTree(t, local); got != want {
				t.Errorf("destination:\n%s\nwant:\n%s", got, want)
			}
			for p, f := range kept {
				m.files[p] = f
			}
			m.ops()
			sum, err = s.InitialSync(context.Background())
			if err != nil || !sum.Empty() {
				t.Errorf("a second sync: %v, %s", err, m.ops())
			}
		})
	}
}

// TestInitialSyncHashes: files of the same size and mtime are taken as
// equal; of the same size and another mtime their hashes decide: equal
// content only gets the mtime, different content is sent.
func TestInitialSyncHashes(t *testing.T) {
	local := t.TempDir()
	for p, c := range map[string]string{"same": "hello", "differs": "world", "equal": "equal"} {
		write(t, filepath.Join(local, p), c, 0o644)
	}
	os.Chtimes(filepath.Join(local, "same"), t2, t2)
	os.Chtimes(filepath.Join(local, "differs"), t2, t2)
	os.Chtimes(filepath.Join(local, "equal"), t1, t1)
	m := newMemRemote()
	m.put("same", "hello", t1.UnixNano())
	m.put("differs", "xxxxx", t1.UnixNano())
	m.put("equal", "EQUAL", t1.UnixNano()) // same size and mtime: not looked at
	s := newSyncer(t, m, Options{LocalDir: local})
	if _, err := s.InitialSync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.hashed, ","); got != "differs,same" {
		t.Errorf("hashed %q, want differs,same", got)
	}
	if got := m.ops(); got != "write differs; chtimes same" {
		t.Errorf("ops %q", got)
	}
	if f := m.files["same"]; f.e.MTime != t2.UnixNano() {
		t.Errorf("same: mtime %d, want %d", f.e.MTime, t2.UnixNano())
	}
	if got := string(m.files["equal"].data); got != "EQUAL" {
		t.Errorf("equal = %q: a file of the same size and mtime was sent", got)
	}
}

// TestSyncPaths: edits, new directories with their content, renames of
// files and directories (sent as renames where the OS gives inodes),
// deletes, mode and type changes, then a full rescan.
func TestSyncPaths(t *testing.T) {
	local := sampleLocal(t)
	write(t, filepath.Join(local, "gone.txt"), "to delete", 0o644)
	write(t, filepath.Join(local, "olddir/a"), "a", 0o644)
	write(t, filepath.Join(local, "olddir/b/c"), "c", 0o644)
	write(t, filepath.Join(local, "x"), "a file, then a directory", 0o644)
	m := newMemRemote()
	s := newSyncer(t, m, Options{LocalDir: local})
	// This test is about the operation each change makes; files written
	// just before they are sent are sent again by their next change
	// (TestRacyFileSentAgain).
	s.racyWindow = 0
	ctx := context.Background()
	if _, err := s.InitialSync(ctx); err != nil {
		t.Fatal(err)
	}
	m.ops()

	write(t, filepath.Join(local, "main.go"), "package main // edited\n", 0o644)
	write(t, filepath.Join(local, "newdir/inner/f.txt"), "new", 0o644)
	must(t, os.Rename(filepath.Join(local, "run.sh"), filepath.Join(local, "start.sh")))
	must(t, os.Rename(filepath.Join(local, "nested"), filepath.Join(local, "moved")))
	// x becomes a directory before olddir and gone.txt go: a directory
	// made after their delete may get olddir's inode number, and a
	// vanished path whose inode reappears is a rename (olddir->x), which
	// this test does not expect.
	must(t, os.Remove(filepath.Join(local, "x")))
	write(t, filepath.Join(local, "x/inner"), "x", 0o644)
	must(t, os.Remove(filepath.Join(local, "gone.txt")))
	must(t, os.RemoveAll(filepath.Join(local, "olddir")))
	must(t, os.Chmod(filepath.Join(local, "empty"), 0o600))
	changed := []string{"main.go", "newdir", "run.sh", "start.sh", "nested", "moved", "gone.txt", "olddir", "empty", "x", "x/inner", "build/out.bin"}
	sum, err := s.SyncPaths(ctx, changed)
	if err != nil {
		t.Fatal(err)
	}
	if err := sum.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := m.tree(), localTree(t, local); got != want {
		t.Errorf("destination:\n%s\nwant:\n%s", got, want)
	}
	ops := m.ops()
	if runtime.GOOS != "windows" {
		for _, want := range []string{"rename nested->moved", "rename run.sh->start.sh", "delete gone.txt", "delete olddir", "chmod empty", "delete x;", "mkdir x;"} {
			if !strings.Contains(ops, want) {
				t.Errorf("ops %q lack %q", ops, want)
			}
		}
		if strings.Contains(ops, "write start.sh") || strings.Contains(ops, "olddir/") || strings.Contains(ops, "build") {
			t.Errorf("ops %q: a renamed file sent again, a delete below a deleted directory, or an ignored path", ops)
		}
		if sum.Renamed != 2 {
			t.Errorf("summary %+v, want 2 renamed", sum)
		}
	}

	// The same paths again: nothing to do.
	if sum, err := s.SyncPaths(ctx, changed); err != nil || !sum.Empty() {
		t.Errorf("nothing changed, yet: %v %s", err, m.ops())
	}

	// "." rescans the whole tree and compares it with what was sent.
	write(t, filepath.Join(local, "moved/deeper/file.txt"), "deep, edited", 0o644)
	must(t, os.Remove(filepath.Join(local, "main.go")))
	if _, err := s.SyncPaths(ctx, []string{"."}); err != nil {
		t.Fatal(err)
	}
	if got := m.ops(); got != "write moved/deeper/file.txt; delete main.go" {
		t.Errorf("rescan ops %q", got)
	}
	if got, want := m.tree(), localTree(t, local); got != want {
		t.Errorf("destination after the rescan:\n%s\nwant:\n%s", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSyncErrors: an operation the agent refuses and a file that vanished
// before it was read are reported per item, the rest is synced, and the
// failed paths are sent again by the next sync of them.
func TestSyncErrors(t *testing.T) {
	local := t.TempDir()
	write(t, filepath.Join(local, "good.txt"), "good", 0o644)
	write(t, filepath.Join(local, "bad.txt"), "refused", 0o644)
	write(t, filepath.Join(local, "vanish.txt"), "gone before it is read", 0o644)
	m := newMemRemote()
	m.failWrites["bad.txt"] = "permission denied"
	s := newSyncer(t, m, Options{LocalDir: local})
	s.racyWindow = 0 // see TestSyncPaths
	s.Prescan()
	<-s.prescan.done
	must(t, os.Remove(filepath.Join(local, "vanish.txt")))
	sum, err := s.InitialSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Files != 1 || len(sum.Errors) != 2 {
		t.Fatalf("summary %+v, errors %+v", sum, sum.Errors)
	}
	var detail []string
	for _, it := range sum.Items {
		detail = append(detail, it.Path+": "+it.Err)
	}
	for _, want := range []string{"bad.txt: permission denied", "vanish.txt: local: "} {
		if !strings.Contains(strings.Join(detail, "\n"), want) {
			t.Errorf("items lack %q: %q", want, detail)
		}
	}
	if err := sum.Err(); err == nil || !strings.Contains(err.Error(), "bad.txt") || !strings.Contains(err.Error(), "vanish.txt") {
		t.Errorf("Err() = %v", err)
	}
	m.ops()

	delete(m.failWrites, "bad.txt")
	sum, err = s.SyncPaths(context.Background(), []string{"bad.txt", "good.txt"})
	if err != nil || sum.Err() != nil {
		t.Fatal(err, sum.Err())
	}
	if got := m.ops(); got != "write bad.txt" {
		t.Errorf("ops %q, want the failed file sent again", got)
	}
}

// TestSessionFailure: a failed session fails the sync; after SetClient
// the next InitialSync compares the whole tree again.
func TestSessionFailure(t *testing.T) {
	local := t.TempDir()
	write(t, filepath.Join(local, "a"), "a", 0o644)
	m := newMemRemote()
	m.sessionErr = errors.New("connection lost")
	s := newSyncer(t, m, Options{LocalDir: local})
	if _, err := s.InitialSync(context.Background()); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("InitialSync: %v", err)
	}
	n := newMemRemote()
	s.SetClient(n)
	if _, err := s.InitialSync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := n.ops(); got != "write a" {
		t.Errorf("ops after SetClient %q", got)
	}
}

// TestPrescan: InitialSync takes the scan Prescan started (a file added
// after it is the watcher's, not this sync's), unless that scan is older
// than PrescanMaxAge (the connection waited for a pod): then it scans
// again and the added file is synced too.
func TestPrescan(t *testing.T) {
	for _, stale := range []bool{false, true} {
		local := t.TempDir()
		write(t, filepath.Join(local, "before"), "b", 0o644)
		s := newSyncer(t, nil, Options{LocalDir: local})
		s.Prescan()
		<-s.prescan.done
		if stale {
			s.prescan.start = time.Now().Add(-PrescanMaxAge - time.Second)
		}
		write(t, filepath.Join(local, "after"), "a", 0o644)
		m := newMemRemote()
		s.SetClient(m)
		if _, err := s.InitialSync(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := "write before"
		if stale {
			want = "write after; write before"
		}
		if got := m.ops(); got != want {
			t.Errorf("stale=%v: ops %q, want %q", stale, got, want)
		}
		if s.prescan != nil {
			t.Errorf("stale=%v: the prescan was not consumed", stale)
		}
	}
}

// TestWatch: edits and renames reach the destination through Watch; when
// the session fails, Watch returns and hands the paths back to the watcher.
func TestWatch(t *testing.T) {
	local := t.TempDir()
	write(t, filepath.Join(local, "app.py"), "def add(a, b): return a + b\n", 0o644)
	m := newMemRemote()
	s := newSyncer(t, m, Options{LocalDir: local})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.InitialSync(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(local, s.Ignorer(), WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var mu sync.Mutex
	var lines []string
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, w, func(sum *Summary) { mu.Lock(); lines = append(lines, fmt.Sprintf("%d files", sum.Files)); mu.Unlock() })
	}()
	remote := func(p string) string {
		m.mu.Lock()
		defer m.mu.Unlock()
		if f, ok := m.files[p]; ok {
			return string(f.data)
		}
		return ""
	}
	write(t, filepath.Join(local, "app.py"), "def add(a, b): return a * b\n", 0o644)
	waitFor(t, "the edit", func() bool { return strings.Contains(remote("app.py"), "a * b") })
	must(t, os.Rename(filepath.Join(local, "app.py"), filepath.Join(local, "main.py")))
	waitFor(t, "the rename", func() bool { return remote("app.py") == "" && remote("main.py") != "" })
	mu.Lock()
	if len(lines) == 0 || lines[0] != "1 files" {
		t.Errorf("summaries %q", lines)
	}
	mu.Unlock()

	m.mu.Lock()
	m.sessionErr = errors.New("connection lost")
	m.mu.Unlock()
	write(t, filepath.Join(local, "lost.py"), "sent after the reconnect", 0o644)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "connection lost") {
			t.Fatalf("Watch returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch goes on after the session failed")
	}
	paths, err := w.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(paths, ","), "lost.py") {
		t.Errorf("paths handed back %q, want lost.py", paths)
	}
}

// TestSummaryErr: failures sharing one cause are given once.
func TestSummaryErr(t *testing.T) {
	s := &Summary{Errors: []syncproto.ItemError{{Op: syncproto.OpWrite, Path: "a", Code: "EROFS", Message: "read-only"}, {Op: syncproto.OpWrite, Path: "b", Code: "EROFS", Message: "read-only"}}}
	if e := s.Err(); e == nil || !strings.HasPrefix(e.Error(), "2 operations failed, e.g. write a: read-only") {
		t.Errorf("collapsed error %v", e)
	}
	if (&Summary{}).Err() != nil {
		t.Error("an empty summary has an error")
	}
}

// TestRacyFileSentAgain: a file sent while it was being written (the
// watcher sends the first change at once) and then finished with the same
// size and mtime — timestamps are coarse — is sent again by its next
// change: the destination never keeps the half-written content.
func TestRacyFileSentAgain(t *testing.T) {
	local := t.TempDir()
	m := newMemRemote()
	s := newSyncer(t, m, Options{LocalDir: local})
	ctx := context.Background()
	if _, err := s.InitialSync(ctx); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(local, "app.py")
	now := time.Now()
	write(t, f, "print('half')\x00\x00\x00\x00", 0o644)
	must(t, os.Chtimes(f, now, now))
	if _, err := s.SyncPaths(ctx, []string{"app.py"}); err != nil {
		t.Fatal(err)
	}
	if got := string(m.files["app.py"].data); got != "print('half')\x00\x00\x00\x00" {
		t.Fatalf("first batch sent %q", got)
	}
	m.ops()
	// The rest of the save: same size, same mtime.
	write(t, f, "print('whole')\n\n\n", 0o644)
	must(t, os.Chtimes(f, now, now))
	if _, err := s.SyncPaths(ctx, []string{"app.py"}); err != nil {
		t.Fatal(err)
	}
	if got := string(m.files["app.py"].data); got != "print('whole')\n\n\n" {
		t.Fatalf("after the second event the destination holds %q (ops %q)", got, m.ops())
	}
	// An old file (mtime well before the batch) is trusted: an event that
	// changed nothing sends nothing.
	old := now.Add(-time.Hour)
	must(t, os.Chtimes(f, old, old))
	if _, err := s.SyncPaths(ctx, []string{"app.py"}); err != nil {
		t.Fatal(err)
	}
	m.ops()
	if sum, err := s.SyncPaths(ctx, []string{"app.py"}); err != nil || !sum.Empty() {
		t.Fatalf("an unchanged old file was sent again: %v %s", err, m.ops())
	}
}
