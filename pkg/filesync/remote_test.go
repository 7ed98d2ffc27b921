package filesync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// memRemote is a Remote holding its tree in memory: it applies batches the
// way the agent does (in order, parents created for writes and symlinks,
// deletes recursive) and records what it was asked, so that the planner and
// the Syncer are tested on any OS, without an agent.
type memRemote struct {
	mu    sync.Mutex
	files map[string]*memFile
	// batches are the operations of every Apply, hashed the paths of
	// every Hash call.
	batches [][]syncproto.Op
	hashed  []string
	// failWrites fails the operations on these paths with the message
	// (an item error, as a read-only file would); sessionErr fails the
	// next Apply as a broken session does.
	failWrites map[string]string
	sessionErr error
}

type memFile struct {
	e    syncproto.Entry
	data []byte
}

func newMemRemote() *memRemote {
	return &memRemote{files: map[string]*memFile{}, failWrites: map[string]string{}}
}

var _ Remote = (*memRemote)(nil)

func (m *memRemote) List(ctx context.Context, sub string, fn func(syncproto.Entry) error) error {
	m.mu.Lock()
	var entries []syncproto.Entry
	for p, f := range m.files {
		if sub == "" || isBelow(p, sub) && p != sub {
			entries = append(entries, f.e)
		}
	}
	m.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (m *memRemote) Hash(ctx context.Context, paths []string) (map[string][32]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][32]byte{}
	for _, p := range paths {
		m.hashed = append(m.hashed, p)
		if f, ok := m.files[p]; ok && f.e.Type == syncproto.TypeFile {
			out[p] = sha256.Sum256(f.data)
		}
	}
	return out, nil
}

func (m *memRemote) Apply(ctx context.Context, ops []syncproto.Op, opts ApplyOptions) (*BatchResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.sessionErr; err != nil {
		m.sessionErr = nil
		return nil, err
	}
	m.batches = append(m.batches, append([]syncproto.Op(nil), ops...))
	res := &BatchResult{}
	for _, op := range ops {
		var data []byte
		if op.Kind == syncproto.OpWrite {
			open := op.Open
			if open == nil {
				open = func() (io.ReadCloser, error) {
					return os.Open(filepath.Join(opts.LocalDir, filepath.FromSlash(op.Path)))
				}
			}
			r, err := open()
			if err == nil {
				data, err = io.ReadAll(r)
				r.Close()
			}
			if err != nil {
				res.Errors = append(res.Errors, syncproto.ItemError{Index: -1, Op: op.Kind, Path: op.Path, Message: "local: " + err.Error()})
				continue
			}
		}
		index := len(res.Ops)
		res.Ops = append(res.Ops, op)
		if msg, ok := m.failWrites[op.Path]; ok {
			res.Errors = append(res.Errors, syncproto.ItemError{Index: index, Op: op.Kind, Path: op.Path, Code: "EACCES", Message: msg})
			continue
		}
		if err := m.apply(op, data); err != nil {
			res.Errors = append(res.Errors, syncproto.ItemError{Index: index, Op: op.Kind, Path: op.Path, Message: err.Error()})
			continue
		}
		res.Applied++
		res.Bytes += int64(len(data))
	}
	return res, nil
}

// apply runs one operation on the tree.
func (m *memRemote) apply(op syncproto.Op, data []byte) error {
	switch op.Kind {
	case syncproto.OpWrite:
		if err := m.parents(op.Path); err != nil {
			return err
		}
		if f, ok := m.files[op.Path]; ok && f.e.Type == syncproto.TypeDir {
			return fmt.Errorf("%s is a directory", op.Path)
		}
		m.files[op.Path] = &memFile{e: syncproto.Entry{Path: op.Path, Type: syncproto.TypeFile, Mode: op.Mode, Size: int64(len(data)), MTime: op.MTime}, data: data}
	case syncproto.OpMkdir:
		if err := m.parents(op.Path); err != nil {
			return err
		}
		if f, ok := m.files[op.Path]; ok && f.e.Type != syncproto.TypeDir {
			return fmt.Errorf("%s exists", op.Path)
		}
		m.files[op.Path] = &memFile{e: syncproto.Entry{Path: op.Path, Type: syncproto.TypeDir, Mode: op.Mode}}
	case syncproto.OpSymlink:
		if err := m.parents(op.Path); err != nil {
			return err
		}
		m.remove(op.Path)
		m.files[op.Path] = &memFile{e: syncproto.Entry{Path: op.Path, Type: syncproto.TypeSymlink, Mode: 0o777, Target: op.Target}}
	case syncproto.OpDelete:
		m.remove(op.Path)
	case syncproto.OpRename:
		if _, ok := m.files[op.Path]; !ok {
			return fs.ErrNotExist
		}
		if err := m.parents(op.To); err != nil {
			return err
		}
		m.remove(op.To)
		for p, f := range m.files {
			if isBelow(p, op.Path) {
				delete(m.files, p)
				np := op.To + strings.TrimPrefix(p, op.Path)
				f.e.Path = np
				m.files[np] = f
			}
		}
	case syncproto.OpChmod, syncproto.OpChtimes:
		f, ok := m.files[op.Path]
		if !ok {
			return fs.ErrNotExist
		}
		if op.Kind == syncproto.OpChmod {
			f.e.Mode = op.Mode
		} else {
			f.e.MTime = op.MTime
		}
	default:
		return fmt.Errorf("unknown operation %s", op.Kind)
	}
	return nil
}

// parents creates the parent directories of p, as the agent does.
func (m *memRemote) parents(p string) error {
	d := path.Dir(p)
	if d == "." {
		return nil
	}
	if f, ok := m.files[d]; ok {
		if f.e.Type != syncproto.TypeDir {
			return errors.New("not a directory: " + d)
		}
		return nil
	}
	if err := m.parents(d); err != nil {
		return err
	}
	m.files[d] = &memFile{e: syncproto.Entry{Path: d, Type: syncproto.TypeDir, Mode: 0o755}}
	return nil
}

func (m *memRemote) remove(p string) {
	for q := range m.files {
		if isBelow(q, p) {
			delete(m.files, q)
		}
	}
}

// put adds a remote file (test setup).
func (m *memRemote) put(p, content string, mtime int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parents(p)
	m.files[p] = &memFile{e: syncproto.Entry{Path: p, Type: syncproto.TypeFile, Mode: 0o644, Size: int64(len(content)), MTime: mtime}, data: []byte(content)}
}

// tree describes the remote tree like localTree does the local one.
func (m *memRemote) tree() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var entries []syncproto.Entry
	data := map[string][]byte{}
	for p, f := range m.files {
		entries = append(entries, f.e)
		data[p] = f.data
	}
	return describe(entries, func(p string) []byte { return data[p] })
}

// ops lists the operations of every batch applied so far, and forgets them.
func (m *memRemote) ops() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var all []syncproto.Op
	for _, b := range m.batches {
		all = append(all, b...)
	}
	m.batches = nil
	return opsString(all)
}

// localTree describes the local tree at dir as the Syncer sees it.
func localTree(t *testing.T, dir string) string {
	t.Helper()
	ig, err := NewIgnorer(dir, IgnoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ScanLocal(dir, ig, nil)
	if err != nil {
		t.Fatal(err)
	}
	return describe(entries, func(p string) []byte {
		b, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		return b
	})
}

// describe is one line per entry: path, type, mode (not for symlinks),
// target, and for files size, mtime and content.
func describe(entries []syncproto.Entry, content func(string) []byte) string {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s", e.Path, e.Type)
		switch e.Type {
		case syncproto.TypeFile:
			fmt.Fprintf(&b, " %o %d %d %q", e.Mode, e.Size, e.MTime, content(e.Path))
		case syncproto.TypeDir:
			fmt.Fprintf(&b, " %o", e.Mode)
		case syncproto.TypeSymlink:
			fmt.Fprintf(&b, " -> %s", e.Target)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// write creates the file p (and its parent directories) with content and
// mode.
func write(t *testing.T, p string, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
}
