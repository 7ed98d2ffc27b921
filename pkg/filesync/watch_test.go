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

// fakeClock drives a Watcher's debounce: time moves only by advance, and
// every timer Next arms is reported on armed.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	timers map[*fakeTimer]bool
	armed  chan time.Duration
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Unix(1_700_000_000, 0), timers: map[*fakeTimer]bool{}, armed: make(chan time.Duration, 16)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) after(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	ft := &fakeTimer{at: c.t.Add(d), c: make(chan time.Time, 1)}
	c.timers[ft] = true
	c.mu.Unlock()
	c.armed <- d
	return ft.c, func() { c.mu.Lock(); delete(c.timers, ft); c.mu.Unlock() }
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	for ft := range c.timers {
		if !ft.at.After(c.t) {
			ft.c <- c.t
			delete(c.timers, ft)
		}
	}
}

// TestWatcherLeadingEdge: the first change after a quiet period is a batch
// at once; changes made while that batch is synced, or within the debounce
// period of the last change, wait for the debounce period of quiet and
// come together.
func TestWatcherLeadingEdge(t *testing.T) {
	const debounce = 20 * time.Millisecond
	clk := newFakeClock()
	w, err := NewWatcher(t.TempDir(), nil, WatchOptions{Debounce: debounce, now: clk.now, after: clk.after})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// A bound on a broken test, not a synchronisation.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		paths []string
		err   error
	}
	next := func() chan result {
		r := make(chan result, 1)
		go func() { p, err := w.Next(ctx); r <- result{p, err} }()
		return r
	}
	armed := func(want time.Duration) {
		t.Helper()
		select {
		case d := <-clk.armed:
			if d != want {
				t.Fatalf("Next waits %v, want %v", d, want)
			}
		case <-ctx.Done():
			t.Fatal("Next armed no timer")
		}
	}
	got := func(r chan result, want string) {
		t.Helper()
		select {
		case res := <-r:
			if res.err != nil || strings.Join(res.paths, " ") != want {
				t.Fatalf("Next = %q, %v; want %q", res.paths, res.err, want)
			}
			// Next has returned: the timers it armed are all reported
			// (a stale wake-up makes it arm one more); forget them.
			for len(clk.armed) > 0 {
				<-clk.armed
			}
		case <-ctx.Done():
			t.Fatalf("Next did not return %q", want)
		}
	}
	pending := func(r chan result) {
		t.Helper()
		select {
		case res := <-r:
			t.Fatalf("Next returned %q before the debounce period", res.paths)
		default:
		}
	}

	// The first change: as soon as its save is over (leadingSettle
	// without another event), not after the debounce period.
	w.add("a.py")
	r0 := next()
	armed(leadingSettle)
	pending(r0)
	w.add("a.py") // the same save's next event
	armed(leadingSettle)
	clk.advance(leadingSettle)
	got(r0, "a.py")

	// Changes while that batch is synced (Next not called yet): coalesced,
	// after the debounce period.
	w.add("b.py")
	w.add("c.py")
	r := next()
	armed(debounce)
	pending(r)
	clk.advance(debounce)
	got(r, "b.py c.py")

	// Quiet for the debounce period, Next waiting: the next change is sent
	// at once again.
	r = next()
	armed(time.Hour)
	w.add("d.py")
	armed(leadingSettle)
	clk.advance(leadingSettle)
	got(r, "d.py")

	// A change within the debounce period of the last one waits for quiet.
	r = next()
	armed(time.Hour)
	clk.advance(debounce / 2)
	w.add("e.py")
	armed(debounce)
	pending(r)
	w.add("f.py") // still within: the wait starts again
	armed(debounce)
	clk.advance(debounce / 2)
	pending(r)
	clk.advance(debounce / 2)
	got(r, "e.py f.py")
}
