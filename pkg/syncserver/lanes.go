//go:build linux

package syncserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// Lanes
//
// An SSH channel carries at most its flow-control window in flight, and
// golang.org/x/crypto/ssh fixes that window at 2 MiB: through the API server,
// the kubelet and the container runtime's stream server one channel moved
// about 60 MB/s here, under half of what the port-forward stream itself
// carries. A session therefore lets file content travel on lanes: further
// channels of the same SSH connection (the same port-forward, the same
// authentication), each with its own window.
//
// When both sides have FeatureLanes, the agent follows Welcome with a
// LaneToken (128 random bits). The client opens up to Max channels of the
// devsync subsystem and sends LaneHello{Token} on each; the agent attaches
// them to the session. A write then goes as LanedOp{Seq, Op} followed by
// FileEnd{Size} on the session's channel, while its content goes as
// LaneData{Seq, Offset, bytes} frames spread over the lanes. The agent
// registers each LanedOp before it hands the file to a writer; a lane frame
// for a Seq not registered yet waits for it. The client sends every lane's
// frames in Seq order, so the content of the files being written always
// precedes, on every lane, what waits; nothing waits on itself. A writer
// places the chunks at their offsets and commits once FileEnd has arrived
// and Size bytes have. A lane that fails ends the session.

// laneTable is a session's side of its lanes: the laned writes in flight.
type laneTable struct {
	srv   *Server // whose lanes table holds this one
	token string
	zstd  bool
	abort func() // ends the session (closes its channel)
	// received is the session's count of content received (progress.go).
	received *atomic.Int64

	mu       sync.Mutex
	cond     *sync.Cond
	jobs     map[uint64]*writeJob
	lastSeq  uint64
	attached int
	lost     bool // a lane closed while the session went on
	closed   bool
	done     chan struct{}
}

var errSessionEnded = errors.New("the devsync session ended")

func (srv *Server) newLaneTable(zstd bool, abort func(), received *atomic.Int64) (*laneTable, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	t := &laneTable{srv: srv, token: hex.EncodeToString(b[:]), zstd: zstd, abort: abort, received: received, jobs: map[uint64]*writeJob{}, done: make(chan struct{})}
	t.cond = sync.NewCond(&t.mu)
	srv.mu.Lock()
	srv.lanes[t.token] = t
	srv.mu.Unlock()
	return t, nil
}

// close ends the table: lanes and writers waiting on it give up.
func (t *laneTable) close() {
	t.srv.mu.Lock()
	delete(t.srv.lanes, t.token)
	t.srv.mu.Unlock()
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.done)
	}
	t.cond.Broadcast()
	t.mu.Unlock()
}

// fail ends the session from a lane: its writers stop waiting, its channel
// closes.
func (t *laneTable) fail() {
	t.close()
	t.abort()
}

// register makes a laned write known to the lanes; seq must grow.
func (t *laneTable) register(j *writeJob) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if j.seq <= t.lastSeq {
		return syncproto.Errorf("laned write %d after %d: sequence numbers must grow", j.seq, t.lastSeq)
	}
	if t.lost {
		return syncproto.Errorf("a lane of this session closed: laned writes cannot go on")
	}
	t.jobs[j.seq], t.lastSeq = j, j.seq
	t.cond.Broadcast()
	return nil
}

func (t *laneTable) finish(seq uint64) {
	t.mu.Lock()
	delete(t.jobs, seq)
	t.mu.Unlock()
}

// deliver hands a chunk that arrived on a lane to its file's writer,
// waiting until the session has registered the file.
func (t *laneTable) deliver(seq uint64, c chunk) error {
	t.mu.Lock()
	for {
		if t.closed {
			t.mu.Unlock()
			return errSessionEnded
		}
		if j, ok := t.jobs[seq]; ok {
			t.mu.Unlock()
			// Counted for the batch's progress before the writer has it:
			// a registered write is one of the current batch, whose
			// Result waits for the writer.
			if c.end == nil {
				t.received.Add(int64(c.n))
			}
			select {
			case j.chunks <- c:
				return nil
			case <-t.done:
				return errSessionEnded
			}
		}
		if seq <= t.lastSeq {
			t.mu.Unlock()
			return syncproto.Errorf("lane data for write %d, which is complete", seq)
		}
		t.cond.Wait()
	}
}

// serveLane runs a lane: LaneHello (already read) names the session; then
// LaneData frames until the client closes the channel.
func (srv *Server) serveLane(ctx context.Context, fr *syncproto.FrameReader, fw *syncproto.FrameWriter, payload []byte) error {
	var h syncproto.LaneHello
	if err := syncproto.Decode(&h, payload); err != nil {
		return err
	}
	srv.mu.Lock()
	t := srv.lanes[h.Token]
	srv.mu.Unlock()
	if t == nil {
		return syncproto.Errorf("no devsync session has this lane token")
	}
	t.mu.Lock()
	ok := t.attached < syncproto.MaxLanes && !t.closed
	if ok {
		t.attached++
	}
	t.mu.Unlock()
	if !ok {
		return syncproto.Errorf("the session has %d lanes already", syncproto.MaxLanes)
	}
	if err := fw.Write(&syncproto.LaneWelcome{}); err != nil {
		return err
	}
	if err := fw.Flush(); err != nil {
		return err
	}
	var dec syncproto.Decompressor
	defer dec.Close()
	for {
		typ, payload, err := fr.Next()
		if err != nil {
			t.mu.Lock()
			closed, waiting := t.closed, len(t.jobs) > 0
			t.mu.Unlock()
			if closed || ctx.Err() != nil {
				return nil
			}
			eof := errors.Is(err, io.EOF)
			if eof && !waiting {
				// The client is closing the session, or it lost a lane
				// between writes: a later laned write fails (register).
				t.mu.Lock()
				t.lost = true
				t.mu.Unlock()
				return nil
			}
			// Content may be lost with the lane: the session cannot go on
			// (its writers would wait for it).
			srv.log.Warn("devsync: a lane ended with writes waiting for content", "err", err)
			t.fail()
			if eof {
				return nil
			}
			return err
		}
		if typ != syncproto.MsgLaneData && typ != syncproto.MsgLaneDataZstd {
			t.fail()
			return syncproto.Errorf("unexpected %s message on a lane", typ)
		}
		seq, off, data, err := syncproto.ParseLaneData(payload)
		if err != nil {
			t.fail()
			return err
		}
		if typ == syncproto.MsgLaneDataZstd {
			if !t.zstd {
				t.fail()
				return syncproto.Errorf("compressed data without the zstd feature")
			}
			if data, err = dec.Decompress(data); err != nil {
				t.fail()
				return err
			}
		}
		if len(data) > syncproto.ChunkSize {
			t.fail()
			return syncproto.Errorf("lane data chunk of %d bytes exceeds %d", len(data), syncproto.ChunkSize)
		}
		buf := syncproto.GetChunk()
		if err := t.deliver(seq, chunk{buf: buf, n: copy(*buf, data), off: off}); err != nil {
			syncproto.PutChunk(buf)
			var pe *syncproto.ProtocolError
			if errors.As(err, &pe) {
				t.fail()
				return err
			}
			return nil
		}
	}
}

// writeLaned writes a laned file: chunks from the lanes at their offsets,
// until FileEnd has come and its Size bytes have.
func (s *session) writeLaned(j *writeJob) (int64, error) {
	t := s.lanes
	defer t.finish(j.seq)
	pf, werr := s.create(&j.op, nil)
	defer func() {
		if pf != nil {
			s.abortFile(pf)
		}
	}()
	var received int64
	var end *syncproto.FileEnd
	for end == nil || received < end.Size {
		var c chunk
		select {
		case c = <-j.chunks:
		case <-t.done:
			return 0, errSessionEnded
		}
		if c.end != nil {
			end = c.end
		} else {
			received += int64(c.n)
			if werr == nil {
				if _, err := pf.WriteAt((*c.buf)[:c.n], c.off); err != nil {
					werr = err
					s.abortFile(pf)
					pf = nil
				}
			}
			syncproto.PutChunk(c.buf)
		}
		if end != nil && (received > end.Size || (c.end == nil && c.off+int64(c.n) > end.Size)) {
			return 0, syncproto.Errorf("write %q: more content than the %d bytes its file end announces", j.op.Path, end.Size)
		}
	}
	if werr != nil {
		return 0, werr
	}
	if end.Abort != "" {
		return 0, fmt.Errorf("the client could not read the file: %s", end.Abort)
	}
	if pf.Size() != end.Size {
		return 0, syncproto.Errorf("write %q: %d bytes announced, content up to %d", j.op.Path, end.Size, pf.Size())
	}
	err := commitFile(j, pf)
	pf = nil
	return end.Size, err
}
