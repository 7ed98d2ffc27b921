package filesync

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// ScanLocal lists the tree at dir without following symlinks, sorted by
// path, leaving out ignored paths. Special files (FIFOs, sockets, devices)
// are left out with a warning; unreadable directories too.
func ScanLocal(dir string, ig *Ignorer, warn func(string)) ([]syncproto.Entry, error) {
	return scanLocal(dir, "", ig, warn)
}

// scanLocal lists the subtree sub ("" for all) of dir.
func scanLocal(dir, sub string, ig *Ignorer, warn func(string)) ([]syncproto.Entry, error) {
	if warn == nil {
		warn = func(string) {}
	}
	var out []syncproto.Entry
	start := filepath.Join(dir, filepath.FromSlash(sub))
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		rel, rerr := filepath.Rel(dir, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if err != nil {
			if rel == "." || p == start {
				return err
			}
			warn(fmt.Sprintf("skipping %s: %v", DisplayPath(rel), err))
			return nil
		}
		if rel == "." {
			return nil
		}
		if ig.Match(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		e, ok := localEntry(dir, rel, info)
		if !ok {
			warn(fmt.Sprintf("skipping %s: a %s is not synced", DisplayPath(rel), describeMode(info.Mode())))
			return nil
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// localEntry describes a local file; ok is false for special files.
func localEntry(dir, rel string, info fs.FileInfo) (e syncproto.Entry, ok bool) {
	e = syncproto.Entry{Path: rel, Type: syncproto.EntryTypeOf(info.Mode()), Mode: syncproto.ModeBits(info.Mode()), MTime: info.ModTime().UnixNano()}
	e.Dev, e.Ino, _ = inode(info)
	switch e.Type {
	case syncproto.TypeFile:
		e.Size = info.Size()
	case syncproto.TypeSymlink:
		t, err := os.Readlink(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return e, false
		}
		e.Target = t
	case syncproto.TypeDir:
	default:
		return e, false
	}
	return e, true
}

// lstatLocal describes dir/rel; exists is false when it is gone.
func lstatLocal(dir, rel string) (e syncproto.Entry, exists, special bool, err error) {
	info, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return e, false, false, nil
		}
		return e, false, false, err
	}
	e, ok := localEntry(dir, rel, info)
	return e, true, !ok, nil
}

// PlanOptions tune Diff.
type PlanOptions struct {
	// Delete removes remote files that do not exist locally (--delete).
	// Without it they are left alone.
	Delete bool
}

// Plan is the set of operations that makes the remote tree match the local
// one.
type Plan struct {
	Ops []syncproto.Op
	// Check lists files of equal size but different mtimes: their content
	// hashes decide (ResolveHashes).
	Check  []syncproto.Entry
	remote map[string]syncproto.Entry
}

// Diff compares a local listing with the remote one (both relative to their
// roots; ignored paths already removed from both) and plans what to send:
// missing or different files, directories, symlinks and modes; files of the
// same size and mtime are taken as equal.
func Diff(local, remote []syncproto.Entry, opts PlanOptions) *Plan {
	p := &Plan{remote: make(map[string]syncproto.Entry, len(remote))}
	for _, r := range remote {
		p.remote[r.Path] = r
	}
	localSet := make(map[string]bool, len(local))
	for _, l := range local {
		localSet[l.Path] = true
		r, ok := p.remote[l.Path]
		if !ok {
			p.Ops = append(p.Ops, createOp(l))
			continue
		}
		if r.Type != l.Type {
			if r.Type == syncproto.TypeDir || l.Type == syncproto.TypeDir {
				p.Ops = append(p.Ops, syncproto.Op{Kind: syncproto.OpDelete, Path: l.Path})
			}
			p.Ops = append(p.Ops, createOp(l))
			continue
		}
		switch l.Type {
		case syncproto.TypeFile:
			switch {
			case l.Size != r.Size:
				p.Ops = append(p.Ops, createOp(l))
			case l.MTime != r.MTime:
				p.Check = append(p.Check, l)
			case l.Mode != r.Mode:
				p.Ops = append(p.Ops, syncproto.Op{Kind: syncproto.OpChmod, Path: l.Path, Mode: l.Mode})
			}
		case syncproto.TypeDir:
			if l.Mode != r.Mode {
				p.Ops = append(p.Ops, syncproto.Op{Kind: syncproto.OpChmod, Path: l.Path, Mode: l.Mode})
			}
		case syncproto.TypeSymlink:
			if l.Target != r.Target {
				p.Ops = append(p.Ops, createOp(l))
			}
		}
	}
	if opts.Delete {
		sorted := append([]syncproto.Entry(nil), remote...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
		deletedDir := ""
		for _, r := range sorted {
			if localSet[r.Path] {
				continue
			}
			if deletedDir != "" && strings.HasPrefix(r.Path, deletedDir+"/") {
				continue // removed with its directory
			}
			p.Ops = append(p.Ops, syncproto.Op{Kind: syncproto.OpDelete, Path: r.Path})
			if r.Type == syncproto.TypeDir {
				deletedDir = r.Path
			}
		}
	}
	sortOps(p.Ops)
	return p
}

// ResolveHashes turns the Check entries into operations: equal content
// only needs the mtime (and mode) fixed, different content is sent.
func (p *Plan) ResolveHashes(local, remote map[string][32]byte) {
	for _, l := range p.Check {
		ls, lok := local[l.Path]
		rs, rok := remote[l.Path]
		if !lok || !rok || ls != rs {
			p.Ops = append(p.Ops, createOp(l))
			continue
		}
		p.Ops = append(p.Ops, syncproto.Op{Kind: syncproto.OpChtimes, Path: l.Path, MTime: l.MTime})
		if r := p.remote[l.Path]; r.Mode != l.Mode {
			p.Ops = append(p.Ops, syncproto.Op{Kind: syncproto.OpChmod, Path: l.Path, Mode: l.Mode})
		}
	}
	p.Check = nil
	sortOps(p.Ops)
}

func createOp(l syncproto.Entry) syncproto.Op {
	switch l.Type {
	case syncproto.TypeDir:
		return syncproto.Op{Kind: syncproto.OpMkdir, Path: l.Path, Mode: l.Mode}
	case syncproto.TypeSymlink:
		return syncproto.Op{Kind: syncproto.OpSymlink, Path: l.Path, Target: l.Target}
	}
	return syncproto.Op{Kind: syncproto.OpWrite, Path: l.Path, Mode: l.Mode, MTime: l.MTime, Size: l.Size}
}

// opPhase orders a batch: renames, deletes that make room for a type
// change, directories (parents first), content and attributes, then the
// deletes of vanished files.
func opPhase(op syncproto.Op, deleteFirst bool) int {
	switch op.Kind {
	case syncproto.OpRename:
		return 0
	case syncproto.OpDelete:
		if deleteFirst {
			return 1
		}
		return 5
	case syncproto.OpMkdir:
		return 2
	case syncproto.OpChmod, syncproto.OpChtimes:
		return 4
	}
	return 3
}

// sortOps orders operations by phase, then path. A delete followed by a
// create of the same path is a type change and runs first.
func sortOps(ops []syncproto.Op) {
	creates := map[string]bool{}
	for _, op := range ops {
		if op.Kind == syncproto.OpWrite || op.Kind == syncproto.OpMkdir || op.Kind == syncproto.OpSymlink {
			creates[op.Path] = true
		}
	}
	type keyed struct {
		op    syncproto.Op
		phase int
	}
	ks := make([]keyed, len(ops))
	for i, op := range ops {
		ks[i] = keyed{op, opPhase(op, op.Kind == syncproto.OpDelete && creates[op.Path])}
	}
	sort.SliceStable(ks, func(i, j int) bool {
		if ks[i].phase != ks[j].phase {
			return ks[i].phase < ks[j].phase
		}
		return ks[i].op.Path < ks[j].op.Path
	})
	for i := range ks {
		ops[i] = ks[i].op
	}
}

// HashLocal returns the SHA-256 of the files rel under dir (unreadable files
// are left out).
func HashLocal(dir string, rels []string) map[string][32]byte {
	out := make(map[string][32]byte, len(rels))
	buf := make([]byte, 64<<10)
	for _, rel := range rels {
		f, err := openLocal(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			continue
		}
		h := sha256.New()
		_, err = io.CopyBuffer(h, f, buf)
		f.Close()
		if err == nil {
			var s [32]byte
			copy(s[:], h.Sum(nil))
			out[rel] = s
		}
	}
	return out
}

// isBelow reports whether p is dir or inside it.
func isBelow(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// DisplayPath quotes a path for messages when it has unusual characters.
func DisplayPath(p string) string {
	if !utf8.ValidString(p) || strings.ContainsAny(p, "\n\r\t\"") {
		return fmt.Sprintf("%q", p)
	}
	return p
}
