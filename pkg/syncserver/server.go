//go:build linux

package syncserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// Root is what the agent serves: the app's root filesystem and how files
// written into it are owned.
type Root struct {
	// FS is the app's root (rootfs.OpenProcess).
	FS *rootfs.Root
	// Owner owns every file and directory the agent creates: the app's
	// user. {-1, -1} keeps the agent's own IDs.
	Owner rootfs.Owner
	// Workdir is the default destination; empty asks FS.Workdir().
	Workdir string
	// Sync fsyncs every file before renaming it into place.
	Sync bool
	// Writers is how many files a batch writes at once; 0 means
	// DefaultWriters.
	Writers int
	// Action runs an Action message (restart, signal, exec); nil refuses them.
	Action func(ctx context.Context, a syncproto.Action) (output string, err error)
	// Agent names the agent in the Welcome message.
	Agent string
	// PycachePrefix is the app's PYTHONPYCACHEPREFIX, absolute in its root
	// (PycachePrefix), "" for none: where Python keeps the caches of the
	// files a batch changes, besides __pycache__ (caches.go).
	PycachePrefix string
}

// NewRoot serves fs with files owned by the app process's user.
func NewRoot(fs *rootfs.Root) Root { return Root{FS: fs, Owner: fs.Owner()} }

// Server serves devsync sessions and their lanes. A lane is a channel of
// its own that names its session by the session's lane token, so the
// channels of one client must be served by the same Server: the agent has
// one for all its SSH channels.
type Server struct {
	log *slog.Logger
	mu  sync.Mutex
	// lanes maps the lane token of each session that has lanes to its
	// table (lanes.go).
	lanes map[string]*laneTable
}

// New returns a Server that logs session events to log (nil discards).
func New(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{log: log, lanes: map[string]*laneTable{}}
}

// session is one devsync session (or lane): one channel.
type session struct {
	srv  *Server
	log  *slog.Logger
	root Root
	fr   *syncproto.FrameReader
	fw   *syncproto.FrameWriter
	dest string
	zstd bool
	// zstdStream: the client may send a Stream message (FeatureZstdStream).
	zstdStream bool
	dec        syncproto.Decompressor
	// dirs are directories this session created or found, so that a
	// write into them skips MkdirAll (two path resolutions per file); any
	// delete, rename or symlink forgets them.
	dirs map[string]bool
	// dirGen counts the forgetDirs: a writer's held directory (heldDir)
	// from an older generation is resolved again.
	dirGen uint64
	// dirsMu guards dirs and dirGen: a batch's writers use them at once.
	dirsMu sync.Mutex
	// staged maps each directory the current batch creates (full path)
	// to the hidden directory it is built in, stagedOrder in creation
	// order (staging.go); stagedMu guards both.
	staged      map[string]string
	stagedOrder []string
	stagedMu    sync.Mutex
	// lanes is the session's lane table when the client asked for lanes.
	lanes *laneTable
	// progress: the client takes Received messages (FeatureProgress).
	progress bool
	// caches: the client takes Caches messages (FeatureCaches).
	caches bool
	// received counts the file content (decoded) this session has read,
	// inline and from its lanes, over all its batches (progress.go).
	received atomic.Int64
	// wmu serializes the writes of fw while a batch's progress reporter
	// may write (progress.go) and for fatal.
	wmu sync.Mutex
	// abort closes the session's channel.
	abort func()
}

// Serve runs one devsync session over rw (an SSH channel, a net.Conn, a
// pipe) until the client closes it, ctx is cancelled, or the client
// violates the protocol. Protocol violations (unknown message types,
// oversize frames, paths that are absolute, unclean or contain "..") are
// answered with an Error message and end the session. When ctx is cancelled,
// rw is closed if it is an io.Closer. A channel whose first message is a
// LaneHello is served as a lane of the session of this Server that the
// token names (root is not used then).
func (srv *Server) Serve(ctx context.Context, rw io.ReadWriter, root Root) error {
	if root.FS == nil {
		return errors.New("devsync: no root filesystem to serve")
	}
	s := &session{srv: srv, log: srv.log, root: root, fr: syncproto.NewFrameReader(rw), fw: syncproto.NewFrameWriter(rw), abort: func() {}}
	if c, ok := rw.(io.Closer); ok {
		s.abort = func() { c.Close() }
		stop := context.AfterFunc(ctx, s.abort)
		defer stop()
	}
	defer func() {
		s.dec.Close()
		s.fr.Close()
		if s.lanes != nil {
			s.lanes.close()
		}
	}()
	err := s.run(ctx)
	var pe *syncproto.ProtocolError
	if errors.As(err, &pe) {
		s.log.Warn("devsync: refusing the client", "err", err)
		return s.fatal(err)
	}
	if errors.Is(err, io.EOF) || (ctx.Err() != nil && err != nil) {
		return nil
	}
	return err
}

func (s *session) run(ctx context.Context) error {
	t, payload, err := s.fr.Next()
	if err != nil {
		return err
	}
	if t == syncproto.MsgLaneHello {
		return s.srv.serveLane(ctx, s.fr, s.fw, payload)
	}
	if err := s.hello(t, payload); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		t, payload, err := s.fr.Next()
		if err != nil {
			return err
		}
		switch t {
		case syncproto.MsgList:
			var m syncproto.ListReq
			if err := syncproto.Decode(&m, payload); err != nil {
				return err
			}
			err = s.list(m)
		case syncproto.MsgHash:
			var m syncproto.HashReq
			if err := syncproto.Decode(&m, payload); err != nil {
				return err
			}
			err = s.hash(m)
		case syncproto.MsgBegin:
			var m syncproto.Begin
			if err := syncproto.Decode(&m, payload); err != nil {
				return err
			}
			err = s.batch(m)
		case syncproto.MsgAction:
			var m syncproto.Action
			if err := syncproto.Decode(&m, payload); err != nil {
				return err
			}
			err = s.action(ctx, m)
		case syncproto.MsgStream:
			// From here on the client's frames are one zstd stream.
			if !s.zstdStream {
				return syncproto.Errorf("stream message without the %s feature", syncproto.FeatureZstdStream)
			}
			if err := syncproto.Decode(&syncproto.Stream{}, payload); err != nil {
				return err
			}
			err = s.fr.Decompress()
		default:
			return syncproto.Errorf("unexpected %s message", t)
		}
		if err != nil {
			return err
		}
		if err := s.fw.Flush(); err != nil {
			return err
		}
	}
}

func (s *session) hello(t syncproto.MsgType, payload []byte) error {
	if t != syncproto.MsgHello {
		return syncproto.Errorf("expected hello, got %s", t)
	}
	var h syncproto.Hello
	if err := syncproto.Decode(&h, payload); err != nil {
		return err
	}
	v := min(syncproto.ProtocolVersion, h.MaxVersion)
	if v < syncproto.MinProtocolVersion || v < h.MinVersion {
		return syncproto.Errorf("version mismatch: the client speaks %d to %d, the agent %d to %d: use the same release of kubectl-devsync and the agent", h.MinVersion, h.MaxVersion, syncproto.MinProtocolVersion, syncproto.ProtocolVersion)
	}
	if err := syncproto.ValidateDest(h.Dest); err != nil {
		return err
	}
	var err error
	dest := h.Dest
	if dest == "" {
		dest = s.root.Workdir
	}
	if dest == "" {
		if dest, err = s.root.FS.Workdir(); err != nil {
			return s.fatal(err)
		}
	}
	s.dest = path.Clean("/" + dest)
	if h.CreateDest {
		if err := s.root.FS.MkdirAll(s.dest, 0o755, s.root.Owner); err != nil {
			return s.fatal(fmt.Errorf("create the destination %s in the app container: %w", s.dest, explain(err)))
		}
	}
	if _, err := s.root.FS.ReadDir(s.dest); err != nil {
		return s.fatal(fmt.Errorf("destination %s in the app container: %w", s.dest, explain(err)))
	}
	var feats []string
	lanes := false
	for _, f := range h.Features {
		switch f {
		case syncproto.FeatureZstd:
			s.zstd = true
			feats = append(feats, f)
		case syncproto.FeatureZstdStream:
			s.zstdStream = true
			feats = append(feats, f)
		case syncproto.FeatureLanes:
			lanes = true
			feats = append(feats, f)
		case syncproto.FeatureProgress:
			s.progress = true
			feats = append(feats, f)
		case syncproto.FeatureCaches:
			s.caches = true
			feats = append(feats, f)
		}
	}
	s.log.Info("devsync: session", "client", h.Client, "protocol", v, "dest", s.dest)
	if err := s.fw.Write(&syncproto.Welcome{Version: v, Features: feats, Dest: s.dest, UID: s.root.Owner.UID, GID: s.root.Owner.GID, PID: s.root.FS.PID(), Agent: s.root.Agent}); err != nil {
		return err
	}
	if lanes {
		if s.lanes, err = s.srv.newLaneTable(s.zstd, s.abort, &s.received); err != nil {
			return err
		}
		if err := s.fw.Write(&syncproto.LaneToken{Token: s.lanes.token, Max: syncproto.MaxLanes}); err != nil {
			return err
		}
	}
	return s.fw.Flush()
}

// fatal sends err to the client as the session's last message. The client
// may be busy writing rather than reading: the write is given a short time,
// then abandoned (the caller closes the channel after Serve returns). It
// returns err.
func (s *session) fatal(err error) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if s.fw.Write(&syncproto.ErrorMsg{Message: err.Error()}) == nil {
			s.fw.Flush()
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	return err
}

func (s *session) full(rel string) string { return path.Join(s.dest, rel) }

func (s *session) list(m syncproto.ListReq) error {
	start := s.dest
	if m.Path != "" {
		if err := syncproto.ValidatePath(m.Path); err != nil {
			return err
		}
		start = s.full(m.Path)
	}
	var batch []syncproto.Entry
	size, count := 0, 0
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.fw.Write(&syncproto.ListEntries{Entries: batch})
		batch, size = batch[:0], 0
		return err
	}
	walkErr := s.root.FS.Walk(start, func(rel string, info fs.FileInfo, target string, err error) error {
		if err != nil {
			// An unreadable subdirectory is reported, not fatal.
			s.log.Warn("devsync: list", "path", rel, "err", err)
			return nil
		}
		if strings.HasPrefix(info.Name(), rootfs.TempPrefix) {
			if info.IsDir() {
				return fs.SkipDir // a staged directory (staging.go)
			}
			return nil
		}
		if m.Path != "" {
			rel = m.Path + "/" + rel
		}
		e := syncproto.Entry{Path: rel, Type: syncproto.EntryTypeOf(info.Mode()), Mode: syncproto.ModeBits(info.Mode()), MTime: info.ModTime().UnixNano(), Target: target}
		if e.Type == syncproto.TypeFile {
			e.Size = info.Size()
		}
		batch = append(batch, e)
		count++
		size += len(rel) + len(target) + 32
		if len(batch) >= syncproto.MaxListEntries || size > syncproto.MaxFrameSize/2 {
			return send()
		}
		return nil
	})
	if err := send(); err != nil {
		return err
	}
	end := syncproto.ListEnd{Count: count}
	if walkErr != nil {
		end.Error = explain(walkErr).Error()
	}
	return s.fw.Write(&end)
}

func (s *session) hash(m syncproto.HashReq) error {
	for _, p := range m.Paths {
		if err := syncproto.ValidatePath(p); err != nil {
			return err
		}
		r := syncproto.HashResult{Path: p}
		if sum, err := s.hashFile(s.full(p)); err != nil {
			r.Error = explain(err).Error()
		} else {
			r.Sum = sum
		}
		if err := s.fw.Write(&r); err != nil {
			return err
		}
	}
	return s.fw.Write(&syncproto.HashEnd{})
}

func (s *session) hashFile(name string) (sum [32]byte, err error) {
	f, err := s.root.FS.Open(name)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 64<<10)); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

func itemError(index int, op *syncproto.Op, err error) syncproto.ItemError {
	ie := syncproto.ItemError{Index: index, Message: explain(err).Error()}
	if op != nil { // nil: no one operation's (publishing new directories)
		ie.Op, ie.Path = op.Kind, op.Path
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		ie.Code = unix.ErrnoName(errno)
	}
	return ie
}

// explain adds the remedy to errors a user can act on.
func explain(err error) error {
	switch {
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("%w: the app container's filesystem is read-only there; mount a writable volume (e.g. an emptyDir) at the destination or choose another --dest", err)
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("%w: the app container's filesystem is full", err)
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%w: a symlink on the way is a magic link or loops; it is not followed", err)
	}
	return err
}

// apply runs one operation other than a write (see batch.go).
func (s *session) apply(op *syncproto.Op) (int64, error) {
	fsys, full := s.root.FS, s.full(op.Path)
	if op.Kind == syncproto.OpDelete || op.Kind == syncproto.OpRename {
		// They act on what the client sees: the staged directories too.
		if err := s.publish(); err != nil {
			return 0, err
		}
	} else if staged, ok := s.stagedPath(full); ok {
		full = staged
	} else if op.Kind == syncproto.OpMkdir && s.stage(full, rootfs.FileMode(op.Mode)) {
		return 0, nil
	}
	switch op.Kind {
	case syncproto.OpMkdir:
		return 0, fsys.EnsureDir(full, rootfs.FileMode(op.Mode), s.root.Owner)
	case syncproto.OpDelete:
		s.forgetDirs()
		return 0, fsys.RemoveAll(full)
	case syncproto.OpRename:
		s.forgetDirs()
		to := s.full(op.To)
		if err := fsys.MkdirAll(path.Dir(to), 0o755, s.root.Owner); err != nil {
			return 0, err
		}
		return 0, fsys.Rename(full, to)
	case syncproto.OpSymlink:
		s.forgetDirs()
		if err := fsys.MkdirAll(path.Dir(full), 0o755, s.root.Owner); err != nil {
			return 0, err
		}
		return 0, fsys.Symlink(op.Target, full, s.root.Owner)
	case syncproto.OpChmod:
		return 0, fsys.Chmod(full, rootfs.FileMode(op.Mode))
	case syncproto.OpChtimes:
		return 0, fsys.Chtimes(full, time.Unix(0, op.MTime))
	}
	return 0, syncproto.Errorf("unknown operation %s", op.Kind)
}

func (s *session) decompress(payload []byte) ([]byte, error) {
	if !s.zstd {
		return nil, syncproto.Errorf("compressed data without the zstd feature")
	}
	return s.dec.Decompress(payload)
}

func (s *session) action(ctx context.Context, a syncproto.Action) error {
	var res syncproto.ActionResult
	if s.root.Action == nil {
		res.Error = fmt.Sprintf("the agent cannot %s the app: run kubectl devpatch --supervise for restarts", a.Kind)
	} else if out, err := s.root.Action(ctx, a); err != nil {
		res.Error, res.Output = err.Error(), out
	} else {
		res.Output = out
	}
	return s.fw.Write(&res)
}

// ServeError answers a client's hello with err as an Error message (the
// agent could not find or open the app) and returns err.
func ServeError(ctx context.Context, rw io.ReadWriter, err error) error {
	if c, ok := rw.(io.Closer); ok {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
	}
	s := &session{fr: syncproto.NewFrameReader(rw), fw: syncproto.NewFrameWriter(rw)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = s.fr.Next()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	return s.fatal(err)
}
