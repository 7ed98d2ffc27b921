//go:build linux

package syncserver

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// gone: errors that say there is nothing to remove.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EISDIR)
}

// cacheInvalidator collects, during one batch, the files the batch
// replaced, deleted or renamed (change) and the files it writes (wrote,
// when a write is handed to a writer); drop then removes the caches
// derived from the changed ones (caches.go), except those the batch writes
// itself (a __pycache__ that the client syncs is the user's). A racy
// replacement (same size, same mtime second: the only one a cache check
// can take for the old file) has its caches removed at once as well
// (dropNow), right after the rename: an app's own reloader that restarts
// on the change does not wait for the batch's end. Writers call it
// concurrently; mu is held across each removal, so a cache the batch
// writes is either marked before the check or written after the removal.
type cacheInvalidator struct {
	mu      sync.Mutex
	changed map[string]bool // full paths in the app's root
	written map[string]bool
	racy    []string // replacements that a (size, whole-second mtime) check cannot see
	removed []string // by dropNow
	errs    []error
}

func (c *cacheInvalidator) wrote(full string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.written == nil {
		c.written = map[string]bool{}
	}
	c.written[full] = true
}

// change records that the file full was replaced, deleted or renamed;
// racyReplace that it was replaced by a file of the same size and mtime
// second.
func (c *cacheInvalidator) change(full string, racyReplace bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = map[string]bool{}
	}
	c.changed[full] = true
	if racyReplace {
		c.racy = append(c.racy, full)
	}
}

// dropNow removes at once the caches derived from full, which a racy
// replacement just made stale.
func (c *cacheInvalidator) dropNow(fsys *rootfs.Root, full, pycachePrefix string) {
	spec, ok := derivedCaches(full, pycachePrefix)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	byDir := map[string][]cacheSpec{}
	for _, d := range spec.Dirs {
		byDir[d] = []cacheSpec{spec}
	}
	removed, errs := removeCaches(fsys, byDir, spec.Files, c.written)
	c.removed = append(c.removed, removed...)
	c.errs = append(c.errs, errs...)
}

// drop removes the caches derived from the changed files and forgets what
// it collected. It returns the caches it removed (now and by dropNow) and
// the racy replacements of files no rule knows the caches of (nothing the
// agent can remove: the interpreter that runs them may take its cache for
// theirs).
func (c *cacheInvalidator) drop(fsys *rootfs.Root, pycachePrefix string) (removed, unknown []string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byDir := map[string][]cacheSpec{}
	var files []string
	for src := range c.changed {
		spec, ok := derivedCaches(src, pycachePrefix)
		if !ok {
			continue
		}
		for _, d := range spec.Dirs {
			byDir[d] = append(byDir[d], spec)
		}
		files = append(files, spec.Files...)
	}
	for _, src := range c.racy {
		if _, ok := derivedCaches(src, ""); !ok {
			unknown = append(unknown, src)
		}
	}
	removed, errs := removeCaches(fsys, byDir, files, c.written)
	removed = append(removed, c.removed...)
	errs = append(errs, c.errs...)
	c.changed, c.written, c.racy, c.removed, c.errs = nil, nil, nil, nil, nil
	slices.Sort(removed)
	removed = slices.Compact(removed)
	slices.Sort(unknown)
	return removed, unknown, errors.Join(errs...)
}

// removeCaches removes the entries of each directory of byDir that one of
// its specs matches, and the files, except what keep names. Nothing there
// is no error.
func removeCaches(fsys *rootfs.Root, byDir map[string][]cacheSpec, files []string, keep map[string]bool) (removed []string, errs []error) {
	remove := func(p string) {
		if keep[p] {
			return
		}
		if err := fsys.Unlink(p); err == nil {
			removed = append(removed, p)
		} else if !gone(err) {
			errs = append(errs, err)
		}
	}
	for dir, specs := range byDir {
		entries, err := fsys.ReadDir(dir)
		if err != nil {
			if !gone(err) {
				errs = append(errs, err)
			}
			continue
		}
		for _, e := range entries {
			if !e.Mode().IsRegular() {
				continue
			}
			for _, spec := range specs {
				if spec.Matches(e.Name()) {
					remove(path.Join(dir, e.Name()))
					break
				}
			}
		}
	}
	for _, f := range files {
		remove(f)
	}
	return removed, errs
}

// commitFile commits j's file and records in j whether it replaced one.
func commitFile(j *writeJob, pf *rootfs.PendingFile) error {
	if err := pf.Commit(); err != nil {
		return err
	}
	if old, cur, ok := pf.Replaced(); ok {
		j.replaced = true
		j.racy = old.Mode().IsRegular() && racy(old.Size(), old.ModTime(), cur.Size(), cur.ModTime())
	}
	return nil
}

// changedBy records what the operation op (not a write), applied, changed:
// a deleted path, both names of a rename (what was at the target is
// replaced), a symlink's name.
func (s *session) changedBy(r *batchRun, op *syncproto.Op) {
	switch op.Kind {
	case syncproto.OpDelete, syncproto.OpSymlink:
		r.caches.change(s.full(op.Path), false)
	case syncproto.OpRename:
		r.caches.change(s.full(op.Path), false)
		r.caches.change(s.full(op.To), false)
	}
}

// dropCaches removes the caches derived from what the batch changed
// (cacheInvalidator.drop), logs what it did, and returns the Caches
// message for the client (nil when it has nothing to say or does not take
// it).
func (s *session) dropCaches(r *batchRun, id uint64) *syncproto.Caches {
	removed, unknown, err := r.caches.drop(s.root.FS, s.root.PycachePrefix)
	if len(removed) > 0 {
		s.log.Info("devsync: removed the caches of replaced files", "caches", removed)
	}
	if len(unknown) > 0 {
		s.log.Info("devsync: replaced files by files of the same size and mtime second; a cache keyed by both may still hold the old ones", "files", unknown)
	}
	if err != nil {
		s.log.Warn("devsync: remove the caches of replaced files", "err", err)
	}
	if !s.caches || len(removed)+len(unknown) == 0 {
		return nil
	}
	m := &syncproto.Caches{ID: id}
	m.Removed, m.Omitted = capList(removed, m.Omitted)
	m.Racy, m.Omitted = capList(unknown, m.Omitted)
	return m
}

// capList keeps at most MaxCachesReport of l, and no path longer than a
// Caches message takes, adding the others to omitted.
func capList(l []string, omitted int) ([]string, int) {
	var out []string
	for _, p := range l {
		if len(out) == syncproto.MaxCachesReport || len(p) > syncproto.MaxPathLen {
			omitted++
			continue
		}
		out = append(out, p)
	}
	return out, omitted
}
