package filesync

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// collect gathers batches from a watcher.
type collector struct {
	mu      sync.Mutex
	seen    map[string]bool
	batches int
}

func collect(ctx context.Context, w *Watcher) *collector {
	c := &collector{seen: map[string]bool{}}
	go func() {
		for {
			paths, err := w.Next(ctx)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.batches++
			for _, p := range paths {
				c.seen[p] = true
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) has(p string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[p] || c.seen["."]
}

func TestWatcherDebounceAndNewDirs(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, ".gitignore"), "ignored/\n", 0o644)
	os.MkdirAll(filepath.Join(root, "ignored"), 0o755)
	ig, _ := NewIgnorer(root, IgnoreOptions{})
	w, err := NewWatcher(root, ig, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Polling() {
		t.Fatal("polling without a reason")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := collect(ctx, w)
	for i := range 100 {
		write(t, filepath.Join(root, "burst", "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), "x", 0o644)
	}
	waitFor(t, "the burst", func() bool { return c.has("burst/fa") && c.has("burst/zc") || c.has("burst") })
	c.mu.Lock()
	if c.batches > 20 {
		t.Errorf("100 writes in %d batches: no debouncing", c.batches)
	}
	c.mu.Unlock()
	// A file in a directory created after the start is seen: the new
	// directory got its watch before its creation was reported.
	write(t, filepath.Join(root, "burst", "later.txt"), "x", 0o644)
	waitFor(t, "a write in a new directory", func() bool { return c.has("burst/later.txt") })
	write(t, filepath.Join(root, "ignored", "x"), "x", 0o644)
	os.Chmod(filepath.Join(root, "burst", "later.txt"), 0o600)
	waitFor(t, "a mode change", func() bool { return c.has("burst/later.txt") })
	if c.has("ignored/x") && !c.has(".") {
		t.Error("an ignored path was reported")
	}
}

func TestWatcherLimitFallsBackToPolling(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a", "b", "c"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	var warnings []string
	var mu sync.Mutex
	n := 0
	w, err := NewWatcher(root, nil, WatchOptions{
		PollInterval: 20 * time.Millisecond,
		Warn:         func(s string) { mu.Lock(); warnings = append(warnings, s); mu.Unlock() },
		addWatch: func(fw *fsnotify.Watcher, dir string) error {
			if n++; n > 2 {
				return syscall.ENOSPC
			}
			return fw.Add(dir)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.Polling() {
		t.Fatal("not polling after the watch limit")
	}
	mu.Lock()
	msg := strings.Join(warnings, "\n")
	mu.Unlock()
	if !strings.Contains(msg, "fs.inotify.max_user_watches") || !strings.Contains(msg, "sysctl") {
		t.Errorf("warning %q does not name the sysctl", msg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := collect(ctx, w)
	write(t, filepath.Join(root, "c", "new.txt"), "x", 0o644)
	waitFor(t, "polling to see a change", func() bool { return c.has("c/new.txt") })
}
