package syncserver

import (
	"path"
	"strings"
	"time"
)

// Interpreters that cache what they compile from a source file check the
// cache against the source's stat: CPython's .pyc records the source's
// mtime in whole seconds and its size (importlib's SourceLoader, "timestamp"
// pycs, the default). A file the agent replaces keeps the mtime it has on
// the laptop, so an edit of the same size within the same second as the
// previous one looks unchanged to such a check, and the restarted
// interpreter would run the cached old code. A cache derived from a source
// that changed is invalid by definition: the agent removes the ones whose
// location it knows (cacheSpec) whenever it replaces, deletes or renames
// such a source (cacheInvalidator), before it answers the batch, so before
// any restart, signal or exec that follows it.

// cacheSpec names the caches derived from one source file.
type cacheSpec struct {
	// Dirs hold caches named Stem "." TAG [".opt-N"] Suffix, for any
	// interpreter TAG without a dot (PEP 3147/488:
	// __pycache__/m.cpython-311.pyc, m.cpython-311.opt-1.pyc,
	// m.pypy39.pyc; Python 3.2-3.4 also wrote .pyo there): the
	// __pycache__ beside the source, and its mirror under the app's
	// PYTHONPYCACHEPREFIX when it has one.
	Dirs     []string
	Stem     string
	Suffixes []string
	// Files are caches at fixed paths: Python 2's m.pyc and m.pyo beside
	// the source (Python 2 checks only the mtime; Python 3 imports them
	// only when the source is gone, so one left behind a deleted source
	// would be run).
	Files []string
}

// derivedCaches returns the caches derived from the source file src (an
// absolute slash-separated path in the app's root) and whether it is a
// source any known interpreter caches. pycachePrefix is the app's
// PYTHONPYCACHEPREFIX, absolute ("" for none): Python then writes the
// cache of /app/pkg/m.py as PREFIX/app/pkg/m.TAG.pyc.
func derivedCaches(src, pycachePrefix string) (cacheSpec, bool) {
	dir, base := path.Split(src)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
		if strings.HasPrefix(src, "/") {
			dir = "/"
		}
	}
	for _, ext := range []string{".py", ".pyw"} {
		stem, ok := strings.CutSuffix(base, ext)
		if !ok || stem == "" {
			continue
		}
		c := cacheSpec{
			Dirs:     []string{path.Join(dir, "__pycache__")},
			Stem:     stem,
			Suffixes: []string{".pyc", ".pyo"},
			Files:    []string{path.Join(dir, stem+".pyc"), path.Join(dir, stem+".pyo")},
		}
		if pycachePrefix != "" && path.IsAbs(dir) {
			c.Dirs = append(c.Dirs, path.Join(pycachePrefix, dir))
		}
		return c, true
	}
	return cacheSpec{}, false
}

// PycachePrefix is the absolute cache prefix that the environment env (as
// in /proc/PID/environ) gives Python (PYTHONPYCACHEPREFIX), resolved
// against the process's working directory cwd; "" for none.
func PycachePrefix(env []string, cwd string) string {
	p := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PYTHONPYCACHEPREFIX="); ok {
			p = v // the last one wins, as in getenv
		}
	}
	if p == "" {
		return ""
	}
	if !path.IsAbs(p) {
		if cwd == "" {
			cwd = "/"
		}
		p = path.Join(cwd, p)
	}
	return path.Clean(p)
}

// Matches reports whether name, an entry of c.Dir, is one of the caches.
func (c cacheSpec) Matches(name string) bool {
	rest, ok := strings.CutPrefix(name, c.Stem+".")
	if !ok {
		return false
	}
	for _, suf := range c.Suffixes {
		tag, ok := strings.CutSuffix(rest, suf)
		if !ok {
			continue
		}
		// "cpython-311" or "cpython-311.opt-1": never "x.cpython-311",
		// which is the cache of the source stem + ".x.py".
		tag, opt, dotted := strings.Cut(tag, ".")
		if tag == "" || (dotted && (!strings.HasPrefix(opt, "opt-") || strings.Contains(opt, "."))) {
			return false
		}
		return true
	}
	return false
}

// racy reports whether a file with stamp (size, mtime) replaced by one
// with stamp (size2, mtime2) is invisible to a check of the size and the
// mtime in whole seconds: a cache keyed that way, derived from the old
// file, is taken for the new one's.
func racy(size int64, mtime time.Time, size2 int64, mtime2 time.Time) bool {
	return size == size2 && mtime.Unix() == mtime2.Unix()
}
