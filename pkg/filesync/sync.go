package filesync

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// Options configure a Syncer.
type Options struct {
	// LocalDir is the local tree to mirror.
	LocalDir string
	// Ignore selects the ignore rules.
	Ignore IgnoreOptions
	// Delete removes remote files that do not exist locally during the
	// initial sync (--delete). Files deleted locally while watching are
	// always deleted remotely.
	Delete bool
	// Progress follows the initial sync (files and bytes); nil for none.
	Progress Progress
	// Warn receives warnings (special files skipped, polling fallback).
	Warn func(string)
}

// Syncer mirrors a local tree into the destination of a devsync session:
// an initial sync, then one batch per burst of local changes.
type Syncer struct {
	opts Options
	ig   *Ignorer
	mu   sync.Mutex
	r    Remote
	// state is what the remote tree holds for the paths synced so far, with
	// the local identity (dev, inode) seen when they were sent.
	state map[string]syncproto.Entry
	// racy are files of state whose mtime was too recent, when they were
	// sent, to tell a later write apart (see racyWindow): the next change
	// reported for them sends them again even when size and mtime match.
	racy map[string]bool
	// racyWindow is the const racyWindow (tests that are about other
	// things set it to 0).
	racyWindow time.Duration
	// prescan is a scan of the local tree started by Prescan, taken by
	// the next InitialSync when it is recent enough.
	prescan *prescan
}

// prescan is a local scan running (or done) in the background.
type prescan struct {
	start   time.Time
	done    chan struct{}
	entries []syncproto.Entry
	err     error
}

// racyWindow: a file whose mtime is less than this older than the start
// of the batch that sent it may have been written again since with the
// same size and an mtime that does not differ — file system timestamps
// are coarse (a kernel tick on Linux, a second or two elsewhere) — and
// the content read may be a half-written one (the watcher sends the first
// change at once). Such a file is "racy", as in git's index: the next
// event for it sends it again whatever its size and mtime say.
const racyWindow = 2 * time.Second

// PrescanMaxAge is how old a scan started by Prescan may be when
// InitialSync takes it: an older one (the connection waited for a pod) is
// scanned again.
const PrescanMaxAge = 2 * time.Second

// NewSyncer prepares a Syncer; r is the destination (the open session, a
// *Client), or nil until SetClient gives one.
func NewSyncer(r Remote, opts Options) (*Syncer, error) {
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	ig, err := NewIgnorer(opts.LocalDir, opts.Ignore)
	if err != nil {
		return nil, err
	}
	return &Syncer{opts: opts, ig: ig, r: r, state: map[string]syncproto.Entry{}, racy: map[string]bool{}, racyWindow: racyWindow}, nil
}

// Ignorer returns the ignore rules in use (for a Watcher).
func (s *Syncer) Ignorer() *Ignorer { return s.ig }

// SetClient replaces the destination (the session, a *Client) after a
// reconnect. Call InitialSync next: it compares the whole tree again, so
// edits made meanwhile are not lost.
func (s *Syncer) SetClient(r Remote) {
	s.mu.Lock()
	s.r = r
	s.state = map[string]syncproto.Entry{}
	s.racy = map[string]bool{}
	s.mu.Unlock()
}

// Prescan starts scanning the local tree in the background, for the next
// InitialSync: a caller that is about to connect starts it first, so the
// scan (tens of milliseconds for 10,000 files) overlaps the port-forward
// and SSH handshakes instead of following them. Paths that change after
// the scan began are the watcher's (start the Watcher before Prescan).
func (s *Syncer) Prescan() {
	p := &prescan{start: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.entries, p.err = ScanLocal(s.opts.LocalDir, s.ig, s.opts.Warn)
	}()
	s.mu.Lock()
	s.prescan = p
	s.mu.Unlock()
}

// scan returns the local tree: the Prescan result when there is a recent
// one, a new scan otherwise.
func (s *Syncer) scan() ([]syncproto.Entry, error) {
	p := s.prescan
	s.prescan = nil
	if p != nil {
		<-p.done
		if time.Since(p.start) <= PrescanMaxAge {
			return p.entries, p.err
		}
	}
	return ScanLocal(s.opts.LocalDir, s.ig, s.opts.Warn)
}

// InitialSync makes the destination match the local tree: it lists both,
// compares sizes and mtimes, then content hashes where only the mtime
// differs, and sends what differs in one batch.
func (s *Syncer) InitialSync(ctx context.Context) (*Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	local, err := s.scan()
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", s.opts.LocalDir, err)
	}
	var remote []syncproto.Entry
	err = s.r.List(ctx, "", func(e syncproto.Entry) error {
		if !s.ig.Match(e.Path, e.Type == syncproto.TypeDir) {
			remote = append(remote, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the destination: %w", err)
	}
	plan := Diff(local, remote, PlanOptions{Delete: s.opts.Delete})
	if len(plan.Check) > 0 {
		paths := make([]string, len(plan.Check))
		for i, e := range plan.Check {
			paths[i] = e.Path
		}
		rs, err := s.r.Hash(ctx, paths)
		if err != nil {
			return nil, fmt.Errorf("hash remote files: %w", err)
		}
		plan.ResolveHashes(HashLocal(s.opts.LocalDir, paths), rs)
	}
	sum, err := s.apply(ctx, plan.Ops, s.opts.Progress, start)
	if err != nil {
		return nil, err
	}
	for _, e := range local {
		s.state[e.Path] = e
		s.markRacy(e.Path, e, start)
	}
	if !s.opts.Delete {
		// Remote entries left alone are known too: a local delete of one of
		// them (made while a reconnect was pending) is synced by the watch.
		// No local identity: they never match a rename.
		for _, e := range remote {
			if _, ok := s.state[e.Path]; !ok {
				e.Dev, e.Ino = 0, 0
				s.state[e.Path] = e
			}
		}
	}
	s.forgetFailed(sum)
	return sum, nil
}

// SyncPaths sends the changes of the given local paths (relative,
// slash-separated; "." means the whole tree): written, created, deleted,
// renamed (a vanished path whose inode reappears elsewhere is renamed
// remotely, not sent again), mode changes, new directories with their
// content.
func (s *Syncer) SyncPaths(ctx context.Context, paths []string) (*Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	set := map[string]bool{}
	for _, p := range paths {
		p = strings.Trim(path.Clean("/"+p), "/")
		if p == "" {
			p = "."
		}
		set[p] = true
		if IsIgnoreFile(p) {
			d := path.Dir(p)
			if d == "." {
				d = ""
			}
			if err := s.ig.Reload(d); err != nil {
				// The previous rules stay in force; the sync goes on.
				s.opts.Warn(fmt.Sprintf("reload the ignore rules of %s: %v", DisplayPath(p), err))
			}
		}
	}
	if set["."] {
		// Full rescan (event overflow, polling): compare with the state.
		set = map[string]bool{}
		local, err := ScanLocal(s.opts.LocalDir, s.ig, s.opts.Warn)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", s.opts.LocalDir, err)
		}
		seen := map[string]bool{}
		for _, e := range local {
			seen[e.Path] = true
			if st, ok := s.state[e.Path]; !ok || !sameEntry(st, e) || s.racy[e.Path] {
				set[e.Path] = true
			}
		}
		for p := range s.state {
			if !seen[p] {
				set[p] = true
			}
		}
	}

	current := map[string]syncproto.Entry{} // local entries of the changed paths
	var gone []string
	sorted := sortedKeys(set)
	for _, p := range sorted {
		if s.ig.Match(p, false) && s.ig.Match(p, true) {
			continue
		}
		e, exists, special, err := lstatLocal(s.opts.LocalDir, p)
		if err != nil {
			s.opts.Warn(fmt.Sprintf("skipping %s: %v", DisplayPath(p), err))
			continue
		}
		if !exists {
			if _, known := s.state[p]; known {
				gone = append(gone, p)
			}
			continue
		}
		if special {
			s.opts.Warn(fmt.Sprintf("skipping %s: special files are not synced", DisplayPath(p)))
			continue
		}
		if s.ig.Match(p, e.Type == syncproto.TypeDir) {
			continue
		}
		current[p] = e
		if e.Type == syncproto.TypeDir {
			if st, ok := s.state[p]; !ok || st.Type != syncproto.TypeDir || st.Ino != e.Ino {
				// A new (or replaced) directory: its content may predate the watch.
				sub, err := scanLocal(s.opts.LocalDir, p, s.ig, s.opts.Warn)
				if err != nil {
					s.opts.Warn(fmt.Sprintf("scan %s: %v", DisplayPath(p), err))
				}
				for _, c := range sub {
					current[c.Path] = c
				}
			}
		}
	}

	var ops []syncproto.Op
	// Renames: a vanished path whose identity appears at a new path.
	// The type must match too: a freed inode number is soon reused.
	type identity struct {
		dev, ino uint64
		typ      syncproto.EntryType
	}
	byIno := map[identity]string{}
	for _, p := range gone {
		if st := s.state[p]; st.Ino != 0 {
			byIno[identity{st.Dev, st.Ino, st.Type}] = p
		}
	}
	renamed := map[string]bool{}
	for _, p := range sortedKeys(current) {
		e := current[p]
		if st, ok := s.state[p]; ok && st.Ino == e.Ino && st.Dev == e.Dev {
			continue
		}
		old, ok := byIno[identity{e.Dev, e.Ino, e.Type}]
		if !ok || renamed[old] || isBelow(p, old) {
			continue
		}
		if parentRenamed(old, renamed) {
			continue
		}
		renamed[old] = true
		ops = append(ops, syncproto.Op{Kind: syncproto.OpRename, Path: old, To: p})
		s.moveState(old, p)
	}

	for _, p := range sortedKeys(current) {
		e := current[p]
		st, known := s.state[p]
		switch {
		case !known:
			ops = append(ops, createOp(e))
		case st.Type != e.Type:
			if st.Type == syncproto.TypeDir || e.Type == syncproto.TypeDir {
				ops = append(ops, syncproto.Op{Kind: syncproto.OpDelete, Path: p})
			}
			ops = append(ops, createOp(e))
		case e.Type == syncproto.TypeFile && s.racy[p]:
			ops = append(ops, createOp(e))
		case sameEntry(st, e):
		case e.Type == syncproto.TypeFile && (st.Size != e.Size || st.MTime != e.MTime):
			ops = append(ops, createOp(e))
		case e.Type == syncproto.TypeSymlink && st.Target != e.Target:
			ops = append(ops, createOp(e))
		case st.Mode != e.Mode:
			ops = append(ops, syncproto.Op{Kind: syncproto.OpChmod, Path: p, Mode: e.Mode})
		}
	}
	deletedDir := ""
	for _, p := range gone {
		if renamed[p] || parentRenamed(p, renamed) {
			continue
		}
		if _, still := s.state[p]; !still {
			continue
		}
		if deletedDir != "" && isBelow(p, deletedDir) {
			continue
		}
		ops = append(ops, syncproto.Op{Kind: syncproto.OpDelete, Path: p})
		deletedDir = p
	}
	sortOps(ops)
	if len(ops) == 0 {
		return &Summary{Duration: time.Since(start)}, nil
	}
	sum, err := s.apply(ctx, ops, nil, start)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		if op.Kind == syncproto.OpDelete {
			s.dropState(op.Path)
		}
	}
	for p, e := range current {
		s.state[p] = e
		s.markRacy(p, e, start)
	}
	s.forgetFailed(sum)
	return sum, nil
}

// markRacy records whether the file e, sent by a batch that began at
// start, is racy (see racyWindow).
func (s *Syncer) markRacy(p string, e syncproto.Entry, start time.Time) {
	if e.Type == syncproto.TypeFile && s.racyWindow > 0 && e.MTime > start.Add(-s.racyWindow).UnixNano() {
		s.racy[p] = true
	} else {
		delete(s.racy, p)
	}
}

func parentRenamed(p string, renamed map[string]bool) bool {
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if renamed[d] {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sameEntry(a, b syncproto.Entry) bool {
	return a.Type == b.Type && a.Mode == b.Mode && a.Target == b.Target &&
		(a.Type != syncproto.TypeFile || (a.Size == b.Size && a.MTime == b.MTime))
}

func (s *Syncer) moveState(old, new string) {
	for p, e := range s.state {
		if isBelow(p, old) {
			np := new + strings.TrimPrefix(p, old)
			delete(s.state, p)
			e.Path = np
			s.state[np] = e
			if s.racy[p] {
				delete(s.racy, p)
				s.racy[np] = true
			}
		}
	}
}

func (s *Syncer) dropState(dir string) {
	for p := range s.state {
		if isBelow(p, dir) {
			delete(s.state, p)
			delete(s.racy, p)
		}
	}
}

// forgetFailed removes failed paths from the state so that they are sent
// again by the next change or sync.
func (s *Syncer) forgetFailed(sum *Summary) {
	for _, e := range sum.Errors {
		if e.Path != "" {
			s.dropState(e.Path)
		}
	}
}

func (s *Syncer) apply(ctx context.Context, ops []syncproto.Op, p Progress, start time.Time) (*Summary, error) {
	sum := &Summary{}
	if len(ops) > 0 {
		res, err := s.r.Apply(ctx, ops, ApplyOptions{LocalDir: s.opts.LocalDir, Progress: p})
		if err != nil {
			return nil, err
		}
		sum.add(res)
	}
	sum.Duration = time.Since(start)
	return sum, nil
}

// Watch runs until ctx ends or the session fails: every debounced batch of
// w becomes one SyncPaths call, reported to report. On a session failure
// the paths of the failed batch are handed back to w, so that after a
// reconnect (SetClient, InitialSync, Watch again) nothing is lost.
func (s *Syncer) Watch(ctx context.Context, w *Watcher, report func(*Summary)) error {
	for {
		paths, err := w.Next(ctx)
		if err != nil {
			return err
		}
		sum, err := s.SyncPaths(ctx, paths)
		if err != nil {
			w.Requeue(paths)
			return err
		}
		if report != nil && !sum.Empty() {
			report(sum)
		}
	}
}

// Item is one operation of a summary.
type Item struct {
	Op    syncproto.OpKind
	Path  string
	To    string
	Bytes int64
	Err   string
}

// Summary reports one applied batch.
type Summary struct {
	Files, Dirs, Symlinks, Deleted, Renamed, Attrs int
	Bytes                                          int64 // content bytes written
	Wire                                           int64 // bytes sent on the channel (compressed)
	Duration                                       time.Duration
	Items                                          []Item                // every operation, for -v
	Errors                                         []syncproto.ItemError // failures
	// CachesRemoved, Racy and CachesOmitted: what the agent did so that
	// the app does not run a cache of a changed file (BatchResult).
	CachesRemoved, Racy []string
	CachesOmitted       int
}

func (s *Summary) add(r *BatchResult) {
	failed := map[int]bool{}
	for _, e := range r.Errors {
		if e.Index >= 0 {
			failed[e.Index] = true
		}
	}
	s.Errors = append(s.Errors, r.Errors...)
	s.CachesRemoved = append(s.CachesRemoved, r.CachesRemoved...)
	s.Racy = append(s.Racy, r.Racy...)
	s.CachesOmitted += r.CachesOmitted
	s.Bytes += r.Bytes
	s.Wire += r.Wire
	for i, op := range r.Ops {
		it := Item{Op: op.Kind, Path: op.Path, To: op.To}
		if op.Kind == syncproto.OpWrite {
			it.Bytes = op.Size
		}
		if failed[i] {
			it.Err = "failed"
			for _, e := range r.Errors {
				if e.Index == i {
					it.Err = e.Message
				}
			}
			s.Items = append(s.Items, it)
			continue
		}
		s.Items = append(s.Items, it)
		switch op.Kind {
		case syncproto.OpWrite:
			s.Files++
		case syncproto.OpSymlink:
			s.Symlinks++
		case syncproto.OpMkdir:
			s.Dirs++
		case syncproto.OpDelete:
			s.Deleted++
		case syncproto.OpRename:
			s.Renamed++
		default:
			s.Attrs++
		}
	}
	for _, e := range r.Errors {
		if e.Index < 0 && e.Path != "" {
			s.Items = append(s.Items, Item{Op: e.Op, Path: e.Path, Err: e.Message})
		}
	}
}

// Empty reports a batch that changed nothing and failed nothing.
func (s *Summary) Empty() bool { return len(s.Items) == 0 && len(s.Errors) == 0 }

// Err is nil when every operation succeeded. Otherwise it names the first
// failures; when they all share one cause (a read-only filesystem, a
// permission problem) that cause is given once.
func (s *Summary) Err() error {
	if len(s.Errors) == 0 {
		return nil
	}
	codes := map[string]bool{}
	for _, e := range s.Errors {
		codes[e.Code] = true
	}
	first := s.Errors[0]
	if len(codes) == 1 && first.Code != "" && len(s.Errors) > 1 {
		return fmt.Errorf("%d operations failed, e.g. %s %s: %s", len(s.Errors), first.Op, DisplayPath(first.Path), first.Message)
	}
	var msgs []string
	for i, e := range s.Errors {
		if i == 3 {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(s.Errors)-3))
			break
		}
		msgs = append(msgs, e.Error())
	}
	return errors.New(strings.Join(msgs, "; "))
}
