package filesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// ClientOptions configure a session.
type ClientOptions struct {
	// Dest is the destination directory in the app container (absolute);
	// empty means the app process's working directory.
	Dest string
	// NoCreateDest fails when Dest does not exist instead of creating it.
	NoCreateDest bool
	// Compress says whether what the client sends is compressed: auto
	// (the zero value) decides from the round trip of the handshake (see
	// AutoCompressRTT).
	Compress Compression
	// Name identifies the client in the agent's log.
	Name string
	// Lanes is how many extra channels carry file content (see
	// pkg/syncserver/lanes.go);
	// OpenLane opens one: another devsync subsystem channel on the same
	// SSH connection. 0 or a nil OpenLane sends everything on rw.
	Lanes    int
	OpenLane func() (io.ReadWriteCloser, error)
	// LaneMinSize is the smallest file whose content goes on the lanes;
	// 0 means LaneMinSize, a negative value sends every file on them.
	LaneMinSize int64
	// PrefetchList sends the request for the listing of the destination
	// with the Hello, in the same flight: the initial sync's first List
	// then costs no round trip of its own. A request of another kind made
	// first reads and drops that listing.
	PrefetchList bool
}

// Compression is ClientOptions.Compress.
type Compression int

const (
	// CompressAuto compresses when the handshake's round trip says that
	// the agent is across a network (AutoCompressRTT).
	CompressAuto Compression = iota
	// CompressAlways compresses: the session's channel as one zstd stream
	// (small files), and each chunk of the big files on the lanes.
	CompressAlways
	// CompressNever sends file content as it is.
	CompressNever
)

// AutoCompressRTT is the round trip from which CompressAuto compresses.
// The handshake's round trip (Hello sent to Welcome read) crosses
// everything a byte crosses: the API server, the kubelet, the runtime's
// port-forward, the SSH channel. On the local cluster it takes 1-2 ms;
// across the emulated lan link (0.5 ms each way) about 3 ms, across wan
// (15 ms each way) over 30 ms. From a few milliseconds on, the link is a
// network, whose bandwidth (1-100 Mbit/s through VPNs and cloud gateways)
// is what limits a sync, and zstd at its default level (hundreds of MB/s
// on one core) costs less than the bytes it saves. On this machine the
// CPU is the limit instead. The address of the API server says nothing:
// a loopback address is often a local proxy, a tunnel or a gateway in
// front of a remote cluster.
const AutoCompressRTT = 5 * time.Millisecond

// streamLevel is the zstd level of a compressed session: the default
// level (3), which fits 10,000 Go source files (60.6 MB) into 13.3 MB.
const streamLevel = zstd.SpeedDefault

var errClosed = errors.New("devsync connection closed")

// RemoteError is an error the agent reported before ending the session.
type RemoteError struct{ Message string }

func (e *RemoteError) Error() string { return "agent: " + e.Message }

type frame struct {
	t       syncproto.MsgType
	payload []byte
}

// Client is the kubectl side of a devsync session; it is the Remote of a
// Syncer. Its methods must not be
// called concurrently (they are serialized).
type Client struct {
	rw      io.ReadWriter
	fw      *syncproto.FrameWriter
	frames  chan frame
	readErr error // valid once frames is closed
	welcome syncproto.Welcome
	enc     *syncproto.Compressor // nil when not compressing
	rtt     time.Duration         // of the handshake
	// listPending: the listing of the destination was asked for with the
	// Hello and not read yet (ClientOptions.PrefetchList).
	listPending bool
	why         string // compressing or not, and why
	mu          sync.Mutex
	nextID      uint64
	broken      error
	buf         []byte
	// Lanes open in the background (each takes a few round trips) and
	// are waited for by the first file that needs them: a sync of small
	// files never waits. lanes and laneErr are valid once lanesReady is
	// closed; lanesReady is nil when the session has no lanes.
	lanesReady  chan struct{}
	lanesCancel context.CancelFunc
	lanes       *laneSender // nil without lanes
	laneErr     error       // why lanes could not be opened
	seq         uint64      // the last laned write's
	laneMin     int64       // ClientOptions.LaneMinSize
	// acks: the agent reports the content it received (FeatureProgress);
	// progress is the open batch's progress that the read loop feeds
	// with those reports (nil when none).
	acks     bool
	progress atomic.Pointer[batchProgress]
	// caches: the agent may report the caches it removed (FeatureCaches).
	caches bool
}

// NewClient opens a session over rw (the devsync SSH channel): it sends
// Hello and waits for the agent's Welcome. A goroutine reads rw until it
// fails; Close ends it by closing rw.
func NewClient(ctx context.Context, rw io.ReadWriter, opts ClientOptions) (*Client, error) {
	c := &Client{rw: rw, fw: syncproto.NewFrameWriter(rw), frames: make(chan frame, 64), laneMin: opts.LaneMinSize}
	if c.laneMin == 0 {
		c.laneMin = LaneMinSize
	}
	go c.readLoop()
	h := syncproto.Hello{MinVersion: syncproto.MinProtocolVersion, MaxVersion: syncproto.ProtocolVersion, Dest: opts.Dest, CreateDest: !opts.NoCreateDest, Client: opts.Name}
	h.Features = []string{syncproto.FeatureProgress, syncproto.FeatureCaches}
	if opts.Compress != CompressNever {
		h.Features = append(h.Features, syncproto.FeatureZstd, syncproto.FeatureZstdStream)
	}
	if opts.Lanes > 0 && opts.OpenLane != nil {
		h.Features = append(h.Features, syncproto.FeatureLanes)
	}
	if err := c.fw.Write(&h); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	if opts.PrefetchList {
		if err := c.fw.Write(&syncproto.ListReq{}); err != nil {
			return nil, fmt.Errorf("send hello: %w", err)
		}
		c.listPending = true
	}
	if err := c.fw.Flush(); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	sent := time.Now()
	t, payload, err := c.recv(ctx)
	c.rtt = time.Since(sent)
	if err != nil {
		return nil, fmt.Errorf("devsync handshake: %w", err)
	}
	if t != syncproto.MsgWelcome {
		return nil, fmt.Errorf("devsync handshake: %w", syncproto.Errorf("expected welcome, got %s", t))
	}
	if err := syncproto.Decode(&c.welcome, payload); err != nil {
		return nil, fmt.Errorf("devsync handshake: %w", err)
	}
	lanes, zstdOK, streamOK := false, false, false
	for _, f := range c.welcome.Features {
		switch f {
		case syncproto.FeatureZstd:
			zstdOK = true
		case syncproto.FeatureZstdStream:
			streamOK = true
		case syncproto.FeatureLanes:
			lanes = true
		case syncproto.FeatureProgress:
			c.acks = true
		case syncproto.FeatureCaches:
			c.caches = true
		}
	}
	compress := false
	switch {
	case opts.Compress == CompressNever:
		c.why = "--compress none"
	case !zstdOK:
		c.why = "the agent does not take compressed content"
	case opts.Compress == CompressAlways:
		compress, c.why = true, "--compress zstd"
	case c.rtt >= AutoCompressRTT:
		compress, c.why = true, fmt.Sprintf("auto: the round trip to the agent is %s, >= %s: a network link", c.rtt.Round(100*time.Microsecond), AutoCompressRTT)
	default:
		c.why = fmt.Sprintf("auto: the round trip to the agent is %s, < %s: a local link, where compressing costs more than it saves; --compress zstd to compress", c.rtt.Round(10*time.Microsecond), AutoCompressRTT)
	}
	if compress {
		enc, err := syncproto.NewCompressor()
		if err != nil {
			return nil, err
		}
		c.enc = enc
	}
	if lanes {
		t, payload, err := c.recv(ctx)
		if err != nil {
			return nil, fmt.Errorf("devsync handshake: %w", err)
		}
		var tok syncproto.LaneToken
		if t != syncproto.MsgLaneToken {
			return nil, fmt.Errorf("devsync handshake: %w", syncproto.Errorf("expected lane-token, got %s", t))
		}
		if err := syncproto.Decode(&tok, payload); err != nil {
			return nil, fmt.Errorf("devsync handshake: %w", err)
		}
		// Without lanes the session works as well, only slower.
		lctx, cancel := context.WithTimeout(context.Background(), laneOpenTimeout)
		c.lanesReady, c.lanesCancel = make(chan struct{}), cancel
		go func() {
			defer close(c.lanesReady)
			defer cancel()
			c.lanes, c.laneErr = openLanes(lctx, tok, opts.Lanes, opts.OpenLane, c.enc != nil)
		}()
	}
	if compress && streamOK {
		// Small files go inline on this channel: one zstd stream finds
		// what they share, which compressing each file alone cannot.
		if err := c.fw.Compress(streamLevel); err != nil {
			return nil, fmt.Errorf("devsync handshake: %w", err)
		}
		c.why += "; one zstd stream"
	}
	return c, nil
}

// Compression reports whether the session compresses what it sends, why,
// and the round trip of the handshake it may have decided from.
func (c *Client) Compression() (bool, string, time.Duration) {
	return c.enc != nil, c.why, c.rtt
}

// laneOpenTimeout bounds the opening of the lanes.
const laneOpenTimeout = time.Minute

// waitLanes returns the lanes once they are open (nil when none could be);
// with wait false it does not wait and returns nil while they are opening.
func (c *Client) waitLanes(wait bool) *laneSender {
	if c.lanesReady == nil {
		return nil
	}
	if wait {
		<-c.lanesReady
		return c.lanes
	}
	select {
	case <-c.lanesReady:
		return c.lanes
	default:
		return nil
	}
}

// Lanes reports how many lanes carry file content, and why none could be
// opened when the session asked for some. It waits for them to open.
func (c *Client) Lanes() (int, error) {
	l := c.waitLanes(true)
	if l == nil {
		return 0, c.laneErr
	}
	return len(l.conns), nil
}

// Welcome is the agent's answer to the handshake (destination, owner).
func (c *Client) Welcome() syncproto.Welcome { return c.welcome }

// Close ends the session by closing rw when it is an io.Closer.
func (c *Client) Close() error {
	var err error
	if cl, ok := c.rw.(io.Closer); ok {
		err = cl.Close() // the session first: then its lanes end quietly
	}
	if c.lanesReady != nil {
		c.lanesCancel()
		select {
		case <-c.lanesReady:
			if c.lanes != nil {
				c.lanes.close()
			}
		case <-time.After(time.Second):
			// Still opening (a stalled connection): the lanes end with it.
		}
	}
	// A request still writing (on a stalled connection, now closed) keeps
	// its compressors: they are only released when none uses them.
	if c.mu.TryLock() {
		c.fw.Close()
		if c.enc != nil {
			c.enc.Close()
		}
		c.mu.Unlock()
	}
	return err
}

func (c *Client) readLoop() {
	fr := syncproto.NewFrameReader(c.rw)
	for {
		t, payload, err := fr.Next()
		if err == nil && t == syncproto.MsgReceived {
			// Handled here: a request waiting for its answer never
			// sees it.
			var m syncproto.Received
			if err = syncproto.Decode(&m, payload); err == nil {
				if p := c.progress.Load(); p != nil && p.id == m.ID {
					p.received(m.Bytes)
				}
				continue
			}
		}
		if err != nil {
			c.readErr = err
			close(c.frames)
			return
		}
		c.frames <- frame{t: t, payload: append([]byte(nil), payload...)}
	}
}

// recv returns the next frame; an Error message becomes a *RemoteError.
func (c *Client) recv(ctx context.Context) (syncproto.MsgType, []byte, error) {
	select {
	case f, ok := <-c.frames:
		if !ok {
			if errors.Is(c.readErr, io.EOF) || errors.Is(c.readErr, io.ErrClosedPipe) {
				return 0, nil, fmt.Errorf("the agent closed the devsync session: %w", errClosed)
			}
			return 0, nil, c.readErr
		}
		if f.t == syncproto.MsgError {
			var m syncproto.ErrorMsg
			if err := syncproto.Decode(&m, f.payload); err != nil {
				return 0, nil, err
			}
			return 0, nil, &RemoteError{Message: m.Message}
		}
		return f.t, f.payload, nil
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

// lock serializes requests; a request that failed midway breaks the session.
func (c *Client) lock() error {
	c.mu.Lock()
	if c.broken != nil {
		c.mu.Unlock()
		return fmt.Errorf("devsync session unusable after an earlier failure: %w", c.broken)
	}
	return nil
}

// callbackError is an error of the caller's callback: the session is fine.
type callbackError struct{ error }

func (e callbackError) Unwrap() error { return e.error }

func (c *Client) unlock(err *error) {
	var ce callbackError
	if errors.As(*err, &ce) {
		*err = ce.error
	} else if *err != nil {
		c.broken = *err
	}
	c.mu.Unlock()
}

// writeErr explains a failed write with what the agent said, if anything.
func (c *Client) writeErr(err error) error {
	select {
	case f, ok := <-c.frames:
		if ok && f.t == syncproto.MsgError {
			var m syncproto.ErrorMsg
			if syncproto.Decode(&m, f.payload) == nil {
				return &RemoteError{Message: m.Message}
			}
		}
	case <-time.After(100 * time.Millisecond):
	}
	return err
}

// List walks the destination (or its subdirectory sub) on the agent and
// calls fn for every entry, in lexical order per directory.
func (c *Client) List(ctx context.Context, sub string, fn func(syncproto.Entry) error) (err error) {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.unlock(&err)
	if sub == "" && c.listPending {
		c.listPending = false
		return c.readList(ctx, fn)
	}
	if err := c.dropPendingList(ctx); err != nil {
		return err
	}
	if err := c.fw.Write(&syncproto.ListReq{Path: sub}); err != nil {
		return c.writeErr(err)
	}
	if err := c.fw.Flush(); err != nil {
		return c.writeErr(err)
	}
	return c.readList(ctx, fn)
}

// dropPendingList reads and drops a prefetched listing that no List
// claimed before another request.
func (c *Client) dropPendingList(ctx context.Context) error {
	if !c.listPending {
		return nil
	}
	c.listPending = false
	return c.readList(ctx, func(syncproto.Entry) error { return nil })
}

// readList reads one listing's frames, calling fn for each entry.
func (c *Client) readList(ctx context.Context, fn func(syncproto.Entry) error) error {
	var fnErr error
	for {
		t, payload, err := c.recv(ctx)
		if err != nil {
			return err
		}
		switch t {
		case syncproto.MsgListEntries:
			var m syncproto.ListEntries
			if err := syncproto.Decode(&m, payload); err != nil {
				return err
			}
			for _, e := range m.Entries {
				if fnErr == nil {
					fnErr = fn(e)
				}
			}
		case syncproto.MsgListEnd:
			var m syncproto.ListEnd
			if err := syncproto.Decode(&m, payload); err != nil {
				return err
			}
			if fnErr != nil {
				return callbackError{fnErr}
			}
			if m.Error != "" {
				return fmt.Errorf("list the destination in the app container: %s", m.Error)
			}
			return nil
		default:
			return syncproto.Errorf("unexpected %s message in a listing", t)
		}
	}
}

// Hash returns the SHA-256 of remote files. Files that cannot be read are
// missing from the map.
func (c *Client) Hash(ctx context.Context, paths []string) (_ map[string][32]byte, err error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.unlock(&err)
	if err := c.dropPendingList(ctx); err != nil {
		return nil, err
	}
	out := make(map[string][32]byte, len(paths))
	for len(paths) > 0 {
		n := min(len(paths), syncproto.MaxHashPaths)
		if err := c.fw.Write(&syncproto.HashReq{Paths: paths[:n]}); err != nil {
			return nil, c.writeErr(err)
		}
		if err := c.fw.Flush(); err != nil {
			return nil, c.writeErr(err)
		}
		paths = paths[n:]
		for done := false; !done; {
			t, payload, err := c.recv(ctx)
			if err != nil {
				return nil, err
			}
			switch t {
			case syncproto.MsgHashResult:
				var m syncproto.HashResult
				if err := syncproto.Decode(&m, payload); err != nil {
					return nil, err
				}
				if m.Error == "" {
					out[m.Path] = m.Sum
				}
			case syncproto.MsgHashEnd:
				done = true
			default:
				return nil, syncproto.Errorf("unexpected %s message in hash results", t)
			}
		}
	}
	return out, nil
}

// Progress receives the progress of a batch (see NewProgressBar). Add and
// FileDone may be called from the session's read loop while Apply runs:
// an implementation must be safe for concurrent use.
type Progress interface {
	// Start announces the files to write and their total size.
	Start(files int, bytes int64)
	// Add reports bytes of content that reached the agent (when the agent
	// reports them, FeatureProgress), else sent.
	Add(bytes int64)
	// FileDone reports a written file whose content reached the agent
	// (or was sent, as Add).
	FileDone(path string)
	// Finish ends the batch.
	Finish()
}

// ApplyOptions configure Apply.
type ApplyOptions struct {
	// LocalDir holds the content of write operations without Open.
	LocalDir string
	// Progress, when set, follows the batch.
	Progress Progress
}

// BatchResult is what the agent applied.
type BatchResult struct {
	Ops      []syncproto.Op        // operations sent, in order
	Applied  int                   // operations the agent applied
	Bytes    int64                 // content bytes written by the agent
	Wire     int64                 // bytes sent on the channel
	Errors   []syncproto.ItemError // per-operation errors (agent and local)
	Duration time.Duration
	// CachesRemoved are the caches derived from files the batch changed
	// that the agent removed, Racy the files it replaced by one of the
	// same size and mtime second whose caches it does not know (paths in
	// the app's root; syncproto.Caches); CachesOmitted counts the ones
	// left off both lists.
	CachesRemoved, Racy []string
	CachesOmitted       int
}

// Apply sends a batch and waits for the agent's result. File content is
// streamed in chunks of ChunkSize; no file is held whole in memory.
// Operations whose local file cannot be opened are reported in Errors and
// not sent. The returned error is a session failure (connection, protocol);
// per-file failures are in the result.
func (c *Client) Apply(ctx context.Context, ops []syncproto.Op, opts ApplyOptions) (_ *BatchResult, err error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.unlock(&err)
	if err := c.dropPendingList(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	wire0 := c.fw.Wire()
	if l := c.waitLanes(false); l != nil {
		wire0 += l.sent.Load() // counted below with the lanes' total
	}
	c.nextID++
	id := c.nextID
	res := &BatchResult{}
	var bp *batchProgress // nil without opts.Progress
	if p := opts.Progress; p != nil {
		files, bytes := 0, int64(0)
		for _, op := range ops {
			if op.Kind == syncproto.OpWrite {
				files++
				bytes += op.Size
			}
		}
		p.Start(files, bytes)
		defer p.Finish()
		bp = &batchProgress{p: p, id: id, acks: c.acks}
		if bp.acks {
			c.progress.Store(bp)
			defer func() {
				c.progress.Store(nil)
				bp.finish(err == nil)
			}()
		}
	}
	if err := c.fw.Write(&syncproto.Begin{ID: id, Count: len(ops)}); err != nil {
		return nil, c.writeErr(err)
	}
	for i := range ops {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		op := ops[i]
		var src io.ReadCloser
		if op.Kind == syncproto.OpWrite {
			open := op.Open
			if open == nil {
				p := filepath.Join(opts.LocalDir, filepath.FromSlash(op.Path))
				open = func() (io.ReadCloser, error) { return openLocal(p) }
			}
			if src, err = open(); err != nil {
				res.Errors = append(res.Errors, syncproto.ItemError{Index: -1, Op: op.Kind, Path: op.Path, Message: "local: " + err.Error()})
				continue
			}
		}
		res.Ops = append(res.Ops, op)
		if src != nil && op.Size >= c.laneMin && c.waitLanes(true) != nil {
			c.seq++
			err := c.fw.Write(&syncproto.LanedOp{Seq: c.seq, Op: op})
			if err == nil {
				// The agent takes the file's chunks from the lanes once
				// it has read this op: sent now, not with the batch's
				// end, it lets the agent write (and count, for the
				// progress) the chunks as they arrive.
				err = c.fw.Flush()
			}
			if err == nil {
				err = c.sendLaned(ctx, src, c.seq, bp)
			}
			src.Close()
			if err != nil {
				return nil, c.writeErr(err)
			}
			bp.fileSent(op.Path)
			continue
		}
		if err := c.fw.Write(&op); err != nil {
			if src != nil {
				src.Close()
			}
			return nil, c.writeErr(err)
		}
		if src != nil {
			err := c.sendContent(src, bp)
			src.Close()
			if err != nil {
				return nil, c.writeErr(err)
			}
		}
		if op.Kind == syncproto.OpWrite {
			bp.fileSent(op.Path)
		}
	}
	if err := c.fw.Write(&syncproto.Commit{ID: id}); err != nil {
		return nil, c.writeErr(err)
	}
	if err := c.fw.Flush(); err != nil {
		return nil, c.writeErr(err)
	}
	t, payload, err := c.recv(ctx)
	if err != nil {
		return nil, err
	}
	if t == syncproto.MsgCaches && c.caches {
		var m syncproto.Caches
		if err := syncproto.Decode(&m, payload); err != nil {
			return nil, err
		}
		if m.ID != id {
			return nil, syncproto.Errorf("caches of batch %d, expected %d", m.ID, id)
		}
		res.CachesRemoved, res.Racy, res.CachesOmitted = m.Removed, m.Racy, m.Omitted
		if t, payload, err = c.recv(ctx); err != nil {
			return nil, err
		}
	}
	if t != syncproto.MsgResult {
		return nil, syncproto.Errorf("expected a result, got %s", t)
	}
	var r syncproto.Result
	if err := syncproto.Decode(&r, payload); err != nil {
		return nil, err
	}
	if r.ID != id {
		return nil, syncproto.Errorf("result of batch %d, expected %d", r.ID, id)
	}
	res.Applied, res.Bytes = r.Applied, r.Bytes
	res.Errors = append(res.Errors, r.Errors...)
	res.Wire = c.fw.Wire() - wire0
	if l := c.waitLanes(false); l != nil {
		res.Wire += l.sent.Load()
	}
	res.Duration = time.Since(start)
	return res, nil
}

// sendContent streams src as data frames and ends with FileEnd. A read
// error aborts the file on the agent, not the session.
func (c *Client) sendContent(src io.Reader, p *batchProgress) error {
	if c.buf == nil {
		c.buf = make([]byte, syncproto.ChunkSize)
	}
	var size int64
	for {
		n, rerr := io.ReadFull(src, c.buf)
		if n > 0 {
			chunk := c.buf[:n]
			t := syncproto.MsgData
			if c.enc != nil && !c.fw.Compressed() {
				var z bool
				if chunk, z = c.enc.Compress(chunk); z {
					t = syncproto.MsgDataZstd
				}
			}
			if err := c.fw.WriteRaw(t, chunk); err != nil {
				return err
			}
			size += int64(n)
			p.sent(int64(n))
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return c.fw.Write(&syncproto.FileEnd{Size: size})
		}
		if rerr != nil {
			return c.fw.Write(&syncproto.FileEnd{Size: size, Abort: rerr.Error()})
		}
	}
}

// Action asks the agent to restart or signal the app, or to run a command
// in its view; output is the command's output.
func (c *Client) Action(ctx context.Context, a syncproto.Action) (output string, err error) {
	if err := c.lock(); err != nil {
		return "", err
	}
	defer c.unlock(&err)
	if err := c.dropPendingList(ctx); err != nil {
		return "", err
	}
	if err := c.fw.Write(&a); err != nil {
		return "", c.writeErr(err)
	}
	if err := c.fw.Flush(); err != nil {
		return "", c.writeErr(err)
	}
	t, payload, err := c.recv(ctx)
	if err != nil {
		return "", err
	}
	if t != syncproto.MsgActionResult {
		return "", syncproto.Errorf("expected an action result, got %s", t)
	}
	var r syncproto.ActionResult
	if err := syncproto.Decode(&r, payload); err != nil {
		return "", err
	}
	if r.Error != "" {
		return r.Output, fmt.Errorf("%s the app: %s", a.Kind, r.Error)
	}
	return r.Output, nil
}
