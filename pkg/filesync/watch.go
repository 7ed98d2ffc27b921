package filesync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// WatchOptions tune a Watcher.
type WatchOptions struct {
	// Debounce is the quiet period that ends a burst (default 20 ms).
	Debounce time.Duration
	// MaxDelay caps the wait from a burst's first event (default 150 ms),
	// so a continuous stream of events still produces batches.
	MaxDelay time.Duration
	// Poll forces polling instead of inotify.
	Poll bool
	// PollInterval is the period of a polling scan (default 1 s).
	PollInterval time.Duration
	// Warn receives warnings, among them the switch to polling.
	Warn func(string)

	// addWatch replaces fsnotify's Add (tests simulate the watch limit).
	addWatch func(w *fsnotify.Watcher, dir string) error
	// now and after replace the clock (tests); after's stop releases the
	// timer.
	now   func() time.Time
	after func(d time.Duration) (c <-chan time.Time, stop func())
}

// leadingSettle is how long the first change after a quiet period waits
// for more events of the same save.
const leadingSettle = 2 * time.Millisecond

// Watcher reports changed paths of a local tree in batches. The first
// change after a quiet period (no event for the debounce period, and no
// batch being synced) is reported as soon as the save is over (2 ms
// without another event): an edit is on its way at once. What follows — events within the
// debounce period of the last one, or while the caller syncs a batch — is
// coalesced into the next batch, which waits for the debounce period of
// quiet (at most MaxDelay from its first event). A file read while still
// being written is sent again by that next batch (its later writes are
// events; the Syncer does not trust a size and mtime that may not have
// changed since: see racyWindow). It
// watches every directory with inotify (adding watches for new
// directories); when the inotify limits are too low it says so, naming the
// sysctl to raise, and falls back to polling — it never watches a part of
// the tree silently.
type Watcher struct {
	root string
	ig   *Ignorer
	opts WatchOptions

	fsw     *fsnotify.Watcher
	watched map[string]bool // relative directories with a watch
	polling bool

	mu      sync.Mutex
	pending map[string]bool
	first   time.Time
	last    time.Time // the last event, kept across batches
	// leading: the pending batch began after a quiet period, with no batch
	// in flight; Next returns it at once.
	leading bool
	// inFlight: Next returned a batch and has not been called again (the
	// caller is syncing it).
	inFlight bool
	wake     chan struct{}
	err      error
	done     chan struct{}
	wg       sync.WaitGroup
}

// NewWatcher starts watching root. ig may be nil (nothing ignored).
func NewWatcher(root string, ig *Ignorer, opts WatchOptions) (*Watcher, error) {
	if opts.Debounce <= 0 {
		opts.Debounce = 20 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 150 * time.Millisecond
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	if opts.addWatch == nil {
		opts.addWatch = func(w *fsnotify.Watcher, dir string) error { return w.Add(dir) }
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.after == nil {
		opts.after = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTimer(d)
			return t.C, func() { t.Stop() }
		}
	}
	w := &Watcher{root: root, ig: ig, opts: opts, pending: map[string]bool{}, wake: make(chan struct{}, 1), done: make(chan struct{}), watched: map[string]bool{}}
	if opts.Poll {
		w.startPolling()
		return w, nil
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENOSPC) {
			w.opts.Warn(limitMessage(root, "fs.inotify.max_user_instances", 0, err))
			w.startPolling()
			return w, nil
		}
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	w.fsw = fsw
	if err := w.addTree(""); err != nil {
		if isLimit(err) {
			fsw.Close()
			w.fsw = nil
			w.opts.Warn(limitMessage(root, "fs.inotify.max_user_watches", len(w.watched), err))
			w.startPolling()
			return w, nil
		}
		fsw.Close()
		return nil, err
	}
	w.wg.Add(1)
	go w.eventLoop()
	return w, nil
}

func isLimit(err error) bool { return errors.Is(err, syscall.ENOSPC) }

func limitMessage(root, sysctl string, n int, err error) string {
	cur := ""
	if b, e := os.ReadFile("/proc/sys/" + strings.ReplaceAll(sysctl, ".", "/")); e == nil {
		cur = " (now " + strings.TrimSpace(string(b)) + ")"
	}
	what := ""
	if n > 0 {
		what = fmt.Sprintf(" after %d directories", n)
	}
	return fmt.Sprintf("watching %s: the inotify limit %s%s is reached%s (%v); falling back to polling, which is slower and uses more CPU. Raise it with: sudo sysctl -w %s=524288 (on the machine running kubectl)", root, sysctl, cur, what, err, sysctl)
}

// Polling reports whether the watcher polls instead of using inotify.
func (w *Watcher) Polling() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.polling
}

// addTree adds watches for rel and every directory below it that is not
// ignored.
func (w *Watcher) addTree(rel string) error {
	start := filepath.Join(w.root, filepath.FromSlash(rel))
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && rel == "" {
				return err
			}
			return nil // vanished meanwhile
		}
		if !d.IsDir() {
			return nil
		}
		r, _ := filepath.Rel(w.root, p)
		r = filepath.ToSlash(r)
		if r != "." && w.ig.Match(r, true) {
			return filepath.SkipDir
		}
		if r == "." {
			r = ""
		}
		if w.watched[r] {
			return nil
		}
		if err := w.opts.addWatch(w.fsw, p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("watch %s: %w", p, err)
		}
		w.watched[r] = true
		return nil
	})
}

func (w *Watcher) removeTree(rel string) {
	for d := range w.watched {
		if d == rel || strings.HasPrefix(d, rel+"/") {
			// The directory is gone: the watch on it usually went with it,
			// and fsnotify then reports that it is not watched.
			_ = w.fsw.Remove(filepath.Join(w.root, filepath.FromSlash(d)))
			delete(w.watched, d)
		}
	}
}

func (w *Watcher) eventLoop() {
	defer w.wg.Done()
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			w.handle(ev)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.opts.Warn("the inotify event queue overflowed: rescanning the whole tree (raise fs.inotify.max_queued_events to avoid it)")
				w.add(".")
				continue
			}
			w.opts.Warn(fmt.Sprintf("watching %s: %v", w.root, err))
		}
	}
}

func (w *Watcher) handle(ev fsnotify.Event) {
	rel, err := filepath.Rel(w.root, ev.Name)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return
	}
	rel = filepath.ToSlash(rel)
	if ev.Op.Has(fsnotify.Rename) || ev.Op.Has(fsnotify.Remove) {
		if w.watched[rel] {
			w.removeTree(rel)
		}
	}
	if ev.Op.Has(fsnotify.Create) {
		if info, err := os.Lstat(ev.Name); err == nil && info.IsDir() && !w.ig.Match(rel, true) {
			if err := w.addTree(rel); err != nil {
				if isLimit(err) {
					w.switchToPolling(limitMessage(w.root, "fs.inotify.max_user_watches", len(w.watched), err))
					return
				}
				w.opts.Warn(err.Error())
			}
		}
	}
	if w.ig.Match(rel, false) && w.ig.Match(rel, true) {
		return
	}
	w.add(rel)
}

// switchToPolling replaces inotify by polling after a late limit error.
func (w *Watcher) switchToPolling(msg string) {
	w.opts.Warn(msg)
	go w.fsw.Close()
	w.startPolling()
	w.add(".")
}

func (w *Watcher) add(rel string) {
	w.mu.Lock()
	now := w.opts.now()
	if len(w.pending) == 0 {
		w.first = now
		w.leading = !w.inFlight && (w.last.IsZero() || now.Sub(w.last) >= w.opts.Debounce)
	}
	w.last = now
	w.pending[rel] = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Requeue hands paths back (their batch failed) for the next Next.
func (w *Watcher) Requeue(paths []string) {
	for _, p := range paths {
		w.add(p)
	}
}

// Next waits for the next batch: changed paths relative to the root,
// sorted. A batch that began after a quiet period is returned at once (the
// leading edge); any other once no event came for the debounce period, or
// MaxDelay after its first event. "." means "rescan everything". Calling
// Next again says that the previous batch is synced: until then, events
// only accumulate for the next batch.
func (w *Watcher) Next(ctx context.Context) ([]string, error) {
	w.mu.Lock()
	w.inFlight = false
	w.mu.Unlock()
	for {
		w.mu.Lock()
		if w.err != nil {
			err := w.err
			w.mu.Unlock()
			return nil, err
		}
		n := len(w.pending)
		var wait time.Duration
		if n > 0 {
			now := w.opts.now()
			quiet := w.last.Add(w.opts.Debounce)
			deadline := w.first.Add(w.opts.MaxDelay)
			if quiet.After(deadline) {
				quiet = deadline
			}
			if w.leading {
				// The first change after a quiet period goes as soon as
				// the save that made it is over: its events (open with
				// O_TRUNC, the writes, close) come within a millisecond.
				// Sent at the first of them, the file would often be
				// read empty, and the content come only with the next
				// batch, a round trip later.
				if settled := w.last.Add(leadingSettle); settled.Before(quiet) {
					quiet = settled
				}
			}
			if !now.Before(quiet) {
				out := make([]string, 0, n)
				for p := range w.pending {
					out = append(out, p)
				}
				w.pending = map[string]bool{}
				w.leading = false
				w.inFlight = true
				w.mu.Unlock()
				sort.Strings(out)
				return out, nil
			}
			wait = quiet.Sub(now)
		}
		w.mu.Unlock()
		if n == 0 {
			wait = time.Hour // nothing pending: only a wake ends the wait
		}
		timer, stop := w.opts.after(wait)
		select {
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-w.done:
			stop()
			return nil, errors.New("watcher closed")
		case <-w.wake:
		case <-timer:
		}
		stop()
	}
}

// Close stops watching.
func (w *Watcher) Close() error {
	select {
	case <-w.done:
		return nil
	default:
	}
	close(w.done)
	var err error
	if w.fsw != nil {
		err = w.fsw.Close()
	}
	w.wg.Wait()
	return err
}

func (w *Watcher) startPolling() {
	w.mu.Lock()
	w.polling = true
	w.mu.Unlock()
	snap := w.snapshot()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(w.opts.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
			}
			next := w.snapshot()
			for p, e := range next {
				if old, ok := snap[p]; !ok || !sameEntry(old, e) || old.Ino != e.Ino {
					w.add(p)
				}
			}
			for p := range snap {
				if _, ok := next[p]; !ok {
					w.add(p)
				}
			}
			snap = next
		}
	}()
}

func (w *Watcher) snapshot() map[string]syncproto.Entry {
	entries, err := ScanLocal(w.root, w.ig, nil)
	if err != nil {
		w.opts.Warn(fmt.Sprintf("polling %s: %v", w.root, err))
	}
	m := make(map[string]syncproto.Entry, len(entries))
	for _, e := range entries {
		m[e.Path] = e
	}
	return m
}
