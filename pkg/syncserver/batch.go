//go:build linux

package syncserver

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// DefaultWriters is how many files the agent writes at once within a batch.
// Creating many small files is bound by the kernel (ext4 inode and directory
// entry allocation), not by the stream: with several files in flight that
// work uses more than one CPU while the session goroutine keeps reading the
// stream. Operations other than writes (mkdir, delete, rename, symlink,
// chmod, chtimes) wait for every write before them, and a second write to a
// path (or a path below or above it) waits for the first, so a batch has the effect of applying its
// operations in order.
const DefaultWriters = 4

// writeChunks is how many chunks a file may have queued. Up to writers
// files are being written and as many more wait for a writer (so that the
// session goroutine reads ahead instead of parking until a writer is free):
// with ChunkSize chunks, a batch holds at most 2*writers*writeChunks +
// writers + 1 chunks in memory (9.25 MiB with the defaults), whatever the
// size of the files.
const writeChunks = 4

// writeJob is one file being written by a writer goroutine. The session
// goroutine reads its content frames and hands them over on chunks; the
// last item carries the FileEnd (end != nil), or the channel is closed
// without one when the session fails.
type writeJob struct {
	index  int
	op     syncproto.Op
	chunks chan chunk
	// laned: the content comes from the session's lanes (lanes.go), as
	// chunks with offsets, in any order; seq is its LanedOp's.
	laned bool
	seq   uint64
	// replaced: the committed file took the place of another; racy: of
	// one with the same size and mtime second (caches.go).
	replaced, racy bool
}

type chunk struct {
	buf *[]byte
	n   int
	off int64 // laned content: where the chunk goes in the file
	end *syncproto.FileEnd
}

// batchRun applies one batch: writes run on writer goroutines, everything
// else on the session goroutine once the writes before it are done.
type batchRun struct {
	s    *session
	jobs chan *writeJob

	inflight sync.WaitGroup // writes handed over and not finished
	workers  sync.WaitGroup

	mu      sync.Mutex
	busy    map[string]bool // paths of writes in flight (at most writers)
	applied int
	bytes   int64
	failed  int
	errs    []syncproto.ItemError
	fatal   error // a protocol violation found while writing

	// caches collects what the batch changed, to drop the caches derived
	// from it before the batch is answered (caches.go).
	caches cacheInvalidator
}

func (s *session) batch(b syncproto.Begin) (err error) {
	n := s.root.Writers
	if n <= 0 {
		n = DefaultWriters
	}
	r := &batchRun{s: s, jobs: make(chan *writeJob, n), busy: map[string]bool{}}
	for range n {
		r.workers.Add(1)
		go r.work()
	}
	var cur *writeJob // the write whose content is being read
	stopProgress := s.reportProgress(b.ID)
	defer func() {
		stopProgress(err == nil)
		if cur != nil {
			close(cur.chunks) // the writer aborts the file
		}
		if err != nil && s.lanes != nil {
			s.lanes.close() // laned writers and lanes give up
		}
		close(r.jobs)
		r.workers.Wait()
		// Ended early: unfinished files are aborted, the finished ones
		// are kept (staging.go).
		if perr := s.publish(); perr != nil {
			s.log.Warn("devsync: publish new directories", "err", perr)
		}
		// The finished ones stay: their stale caches go (a reconnect's
		// initial sync finds them equal and does not write them again).
		s.dropCaches(r, b.ID)
	}()
	for index := 0; ; index++ {
		t, payload, err := s.fr.Next()
		if err != nil {
			return err
		}
		switch t {
		case syncproto.MsgCommit:
			var c syncproto.Commit
			if err := syncproto.Decode(&c, payload); err != nil {
				return err
			}
			if c.ID != b.ID {
				return syncproto.Errorf("commit of batch %d inside batch %d", c.ID, b.ID)
			}
			r.inflight.Wait()
			if r.fatal != nil {
				return r.fatal
			}
			if err := s.publish(); err != nil {
				r.done(-1, nil, 0, err)
			}
			// Before the result, so before any action that follows it:
			// a restarted app never finds a cache of a replaced file.
			report := s.dropCaches(r, b.ID)
			stopProgress(true) // every received message precedes the result
			if report != nil {
				if err := s.fw.Write(report); err != nil {
					return err
				}
			}
			return s.fw.Write(r.result(b.ID))
		case syncproto.MsgOp:
		case syncproto.MsgLanedOp:
			if err := s.lanedWrite(r, index, payload); err != nil {
				return err
			}
			continue
		default:
			return syncproto.Errorf("unexpected %s message inside a batch", t)
		}
		var op syncproto.Op
		if err := syncproto.Decode(&op, payload); err != nil {
			return err
		}
		if err := op.Validate(); err != nil {
			return err
		}
		if op.Kind != syncproto.OpWrite {
			r.inflight.Wait()
			if r.fatal != nil {
				return r.fatal
			}
			n, err := s.apply(&op)
			r.done(index, &op, n, err)
			if err == nil {
				s.changedBy(r, &op)
			}
			continue
		}
		if r.conflicts(op.Path) {
			r.inflight.Wait()
		}
		cur = &writeJob{index: index, op: op, chunks: make(chan chunk, writeChunks)}
		r.mu.Lock()
		r.busy[op.Path] = true
		r.mu.Unlock()
		r.caches.wrote(s.full(op.Path))
		r.inflight.Add(1)
		r.jobs <- cur
		if err := s.readContent(cur); err != nil {
			return err
		}
		cur = nil
	}
}

// lanedWrite starts a write whose content comes on the lanes: it registers
// the file with the lanes, hands it to a writer, and passes on the FileEnd
// that follows on the session's channel.
func (s *session) lanedWrite(r *batchRun, index int, payload []byte) error {
	var m syncproto.LanedOp
	if err := syncproto.Decode(&m, payload); err != nil {
		return err
	}
	if s.lanes == nil {
		return syncproto.Errorf("laned write without the lanes feature")
	}
	if m.Op.Kind != syncproto.OpWrite {
		return syncproto.Errorf("laned %s: only writes travel on lanes", m.Op.Kind)
	}
	if err := m.Op.Validate(); err != nil {
		return err
	}
	if r.conflicts(m.Op.Path) {
		r.inflight.Wait()
	}
	j := &writeJob{index: index, op: m.Op, chunks: make(chan chunk, writeChunks), laned: true, seq: m.Seq}
	if err := s.lanes.register(j); err != nil {
		return err
	}
	r.mu.Lock()
	r.busy[m.Op.Path] = true
	r.mu.Unlock()
	r.caches.wrote(s.full(m.Op.Path))
	r.inflight.Add(1)
	r.jobs <- j
	t, payload, err := s.fr.Next()
	if err != nil {
		return err
	}
	if t != syncproto.MsgFileEnd {
		return syncproto.Errorf("expected the file end of laned write %q, got %s", m.Op.Path, t)
	}
	var end syncproto.FileEnd
	if err := syncproto.Decode(&end, payload); err != nil {
		return err
	}
	if end.Size < 0 {
		return syncproto.Errorf("write %q: negative size", m.Op.Path)
	}
	select {
	case j.chunks <- chunk{end: &end}:
		return nil
	case <-s.lanes.done:
		return errSessionEnded
	}
}

// conflicts reports whether a write of p must wait for the writes in
// flight: one of them is p itself, a directory on p's way, or below p.
func (r *batchRun) conflicts(p string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for q := range r.busy {
		if q == p || strings.HasPrefix(p, q+"/") || strings.HasPrefix(q, p+"/") {
			return true
		}
	}
	return false
}

// readContent reads the data frames of one file up to its FileEnd and
// passes them to the file's writer. It validates them: chunk sizes, the
// compression feature, and the announced size against what arrived.
func (s *session) readContent(j *writeJob) error {
	var received int64
	for {
		t, payload, err := s.fr.Next()
		if err != nil {
			return err
		}
		switch t {
		case syncproto.MsgData, syncproto.MsgDataZstd:
			data := payload
			if t == syncproto.MsgDataZstd {
				if data, err = s.decompress(payload); err != nil {
					return err
				}
			} else if len(data) > syncproto.ChunkSize {
				return syncproto.Errorf("data chunk of %d bytes exceeds %d", len(data), syncproto.ChunkSize)
			}
			received += int64(len(data))
			s.received.Add(int64(len(data)))
			buf := syncproto.GetChunk()
			j.chunks <- chunk{buf: buf, n: copy(*buf, data)}
		case syncproto.MsgFileEnd:
			var end syncproto.FileEnd
			if err := syncproto.Decode(&end, payload); err != nil {
				return err
			}
			if end.Abort == "" && end.Size != received {
				return syncproto.Errorf("write %q: file end announces %d bytes, %d received", j.op.Path, end.Size, received)
			}
			j.chunks <- chunk{end: &end}
			close(j.chunks)
			return nil
		default:
			return syncproto.Errorf("unexpected %s message inside the content of %q", t, j.op.Path)
		}
	}
}

func (r *batchRun) work() {
	defer r.workers.Done()
	var held heldDir
	defer held.release()
	for j := range r.jobs {
		var n int64
		var err error
		if j.laned {
			n, err = r.s.writeLaned(j)
		} else {
			n, err = r.s.writeFile(j, &held)
		}
		r.mu.Lock()
		delete(r.busy, j.op.Path)
		r.mu.Unlock()
		if err == nil && j.replaced {
			full := r.s.full(j.op.Path)
			r.caches.change(full, j.racy)
			if j.racy {
				r.caches.dropNow(r.s.root.FS, full, r.s.root.PycachePrefix)
			}
		}
		r.done(j.index, &j.op, n, err)
		r.inflight.Done()
	}
}

// done records the outcome of the operation at index.
func (r *batchRun) done(index int, op *syncproto.Op, n int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.applied++
		r.bytes += n
		return
	}
	var pe *syncproto.ProtocolError
	if errors.As(err, &pe) {
		if r.fatal == nil {
			r.fatal = err
		}
		return
	}
	r.failed++
	if len(r.errs) < syncproto.MaxResultErrors-1 {
		r.errs = append(r.errs, itemError(index, op, err))
	}
}

func (r *batchRun) result(id uint64) *syncproto.Result {
	res := &syncproto.Result{ID: id, Applied: r.applied, Bytes: r.bytes, Errors: r.errs}
	slices.SortFunc(res.Errors, func(a, b syncproto.ItemError) int { return a.Index - b.Index })
	if r.failed > len(res.Errors) {
		res.Errors = append(res.Errors, syncproto.ItemError{Index: -1, Message: fmt.Sprintf("%d more errors", r.failed-len(res.Errors))})
	}
	return res
}

// writeFile writes one file from its job's chunks, atomically (a temporary
// file renamed into place). It consumes every chunk even when the write
// fails, so the session goroutine never blocks on a failed file.
func (s *session) writeFile(j *writeJob, held *heldDir) (int64, error) {
	op := &j.op
	pf, werr := s.create(op, held)
	defer func() {
		if pf != nil {
			s.abortFile(pf)
		}
	}()
	for c := range j.chunks {
		if c.end != nil {
			if werr != nil {
				return 0, werr
			}
			if c.end.Abort != "" {
				return 0, fmt.Errorf("the client could not read the file: %s", c.end.Abort)
			}
			n := pf.Size()
			err := commitFile(j, pf)
			pf = nil
			return n, err
		}
		if werr == nil {
			if _, err := pf.Write((*c.buf)[:c.n]); err != nil {
				werr = err
				s.abortFile(pf)
				pf = nil
			}
		}
		syncproto.PutChunk(c.buf)
	}
	// The session ended in the middle of the file.
	return 0, errors.New("the session ended before the file's content did")
}

// heldDir is the directory a writer created its last file in, held open
// (rootfs.Dir): files arrive sorted by path, so the next file of a writer
// is usually in the same directory, and creating it there skips resolving
// the directory's path (an openat2 and a close per file). The server's
// dirGen tells when it may be stale: every delete, rename, symlink and
// publish changes it, and those run while no write is in flight.
type heldDir struct {
	d   *rootfs.Dir
	dir string // the server's name for it (as create computes it)
	gen uint64
}

func (h *heldDir) release() {
	if h.d != nil {
		h.d.Close()
		h.d = nil
	}
}

// create starts the temporary file for op, creating its parent directories
// unless this session has already seen them. held (nil for none) is the
// writer's held directory.
// abortFile drops a file that will not be committed. The client gets the
// write's own error (or none, when the session ends); a failed abort only
// leaves the temporary file behind, which is logged.
func (s *session) abortFile(pf *rootfs.PendingFile) {
	if err := pf.Abort(); err != nil {
		s.log.Warn("devsync: remove an uncommitted file", "err", err)
	}
}

func (s *session) create(op *syncproto.Op, held *heldDir) (*rootfs.PendingFile, error) {
	full, staged := s.stagedPath(s.full(op.Path))
	opts := rootfs.WriteOptions{Mode: rootfs.FileMode(op.Mode), Owner: s.root.Owner, Sync: s.root.Sync, Parents: true, Direct: staged}
	if op.MTime != 0 {
		opts.ModTime = time.Unix(0, op.MTime)
	}
	dir := path.Dir(full)
	s.dirsMu.Lock()
	known := s.dirs[dir]
	gen := s.dirGen
	s.dirsMu.Unlock()
	if held != nil {
		if held.d != nil && (held.gen != gen || held.dir != dir) {
			held.release()
		}
		if held.d == nil && known {
			if d, err := s.root.FS.HoldDir(dir); err == nil {
				held.d, held.dir, held.gen = d, dir, gen
			}
		}
		if held.d != nil {
			if pf, err := held.d.Create(path.Base(full), opts); err == nil {
				return pf, nil
			}
			// Gone or replaced behind our back: resolve it again below.
			held.release()
		}
	}
	if known {
		opts.Parents = false
	}
	pf, err := s.root.FS.Create(full, opts)
	if err != nil && !opts.Parents {
		// The directory went away behind our back (the app removed it).
		s.dirsMu.Lock()
		delete(s.dirs, dir)
		s.dirsMu.Unlock()
		opts.Parents = true
		pf, err = s.root.FS.Create(full, opts)
	}
	if err != nil {
		return nil, err
	}
	s.dirsMu.Lock()
	if s.dirs == nil {
		s.dirs = map[string]bool{}
	}
	s.dirs[dir] = true
	s.dirsMu.Unlock()
	return pf, nil
}

// forgetDirs drops the directories this session knows: after a delete, a
// rename or a symlink, any of them may be gone or replaced.
func (s *session) forgetDirs() {
	s.dirsMu.Lock()
	s.dirs = nil
	s.dirGen++
	s.dirsMu.Unlock()
}
