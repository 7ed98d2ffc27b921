package filesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// DefaultLanes is how many lanes kubectl devsync opens (see
// pkg/syncserver/lanes.go): with
// 2 MiB in flight per channel, eight carry 16 MiB. One 200 MB file took
// 2.0 s with 2 lanes, 1.63 s with 4 and 1.53 s with 8 on the local cluster
// (docs/benchmarks.md), 2.8-3.1 s without lanes.
const DefaultLanes = 8

// LaneMinSize is the smallest file whose content goes on the lanes; smaller
// files go inline on the session's channel. Spreading small files costs
// more than it gains: 10,000 files of 5 KB took 1.83 s on lanes and 1.42 s
// inline (medians of 4 interleaved runs on the local cluster).
const LaneMinSize = 1 << 20

// laneQueue bounds the chunks read ahead for the lanes (client memory:
// laneQueue+lanes chunks of ChunkSize).
const laneQueue = 8

// laneItem is one chunk of a laned write, read from the local file.
type laneItem struct {
	seq uint64
	off int64
	buf *[]byte
	n   int
}

// laneSender spreads chunks over the lanes: each lane's goroutine takes the
// next chunk from one queue, compresses it if that helps, and sends it, so
// every lane carries chunks in the order they were queued.
type laneSender struct {
	q     chan laneItem
	stop  chan struct{}
	wg    sync.WaitGroup
	conns []io.ReadWriteCloser

	sent atomic.Int64 // bytes written on the lanes
	// raw is the Seq of the last file a chunk of which did not compress:
	// its further chunks are sent as they are (random or compressed data
	// would only cost CPU).
	raw atomic.Uint64

	mu     sync.Mutex
	err    error
	closed bool
}

// openLanes attaches up to n lanes to the session with tok, all at once
// (each takes a few round trips). The lanes that open are used; the error
// says why none did.
func openLanes(ctx context.Context, tok syncproto.LaneToken, n int, open func() (io.ReadWriteCloser, error), zstdOn bool) (*laneSender, error) {
	l := &laneSender{q: make(chan laneItem, laneQueue), stop: make(chan struct{})}
	var mu sync.Mutex
	var firstErr error
	var opening sync.WaitGroup
	for range min(n, tok.Max, syncproto.MaxLanes) {
		opening.Add(1)
		go func() {
			defer opening.Done()
			rw, err := open()
			if err == nil {
				if err = l.handshake(ctx, rw, tok.Token); err != nil {
					rw.Close()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			l.conns = append(l.conns, rw)
		}()
	}
	opening.Wait()
	if len(l.conns) == 0 {
		l.close()
		return nil, firstErr
	}
	for _, rw := range l.conns {
		var enc *syncproto.Compressor
		if zstdOn {
			var err error
			if enc, err = syncproto.NewCompressor(); err != nil {
				l.close()
				return nil, err
			}
		}
		l.wg.Add(1)
		go l.send(rw, enc)
	}
	return l, nil
}

// handshake sends LaneHello and starts the lane's reader, which reports
// the agent's answer.
func (l *laneSender) handshake(ctx context.Context, rw io.ReadWriter, token string) error {
	fw := syncproto.NewFrameWriter(rw)
	if err := fw.Write(&syncproto.LaneHello{Token: token}); err != nil {
		return err
	}
	if err := fw.Flush(); err != nil {
		return err
	}
	ready := make(chan error, 1)
	l.wg.Add(1)
	go l.watch(rw, ready)
	select {
	case err := <-ready:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send writes the queue's chunks on one lane; it flushes whenever the queue
// is empty, before it waits.
func (l *laneSender) send(rw io.Writer, enc *syncproto.Compressor) {
	defer l.wg.Done()
	if enc != nil {
		defer enc.Close()
	}
	fw := syncproto.NewFrameWriter(rw)
	var hdr []byte
	for {
		var it laneItem
		select {
		case it = <-l.q:
		case <-l.stop:
			return
		default:
			if err := fw.Flush(); err != nil {
				l.fail(err)
			}
			select {
			case it = <-l.q:
			case <-l.stop:
				return
			}
		}
		if l.failed() == nil {
			data, t := (*it.buf)[:it.n], syncproto.MsgLaneData
			if enc != nil && l.raw.Load() != it.seq {
				var z bool
				if data, z = enc.Compress(data); z {
					t = syncproto.MsgLaneDataZstd
				} else {
					l.raw.Store(it.seq)
				}
			}
			hdr = syncproto.AppendLaneDataHeader(hdr[:0], it.seq, it.off)
			if err := fw.WriteParts(t, hdr, data); err != nil {
				l.fail(err)
			}
			l.sent.Add(int64(len(hdr) + len(data) + 5))
		}
		syncproto.PutChunk(it.buf)
	}
}

// watch reads what the agent says on a lane: LaneWelcome (reported on
// ready), then nothing but an Error before the agent ends the session.
func (l *laneSender) watch(r io.Reader, ready chan<- error) {
	defer l.wg.Done()
	fr := syncproto.NewFrameReader(r)
	for {
		t, payload, err := fr.Next()
		if err != nil {
			if ready != nil {
				ready <- fmt.Errorf("lane handshake: %w", err)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
				l.fail(fmt.Errorf("a devsync lane failed: %w", err))
			}
			return
		}
		var rerr error
		switch {
		case t == syncproto.MsgError:
			var m syncproto.ErrorMsg
			if rerr = syncproto.Decode(&m, payload); rerr == nil {
				rerr = &RemoteError{Message: m.Message}
			}
		case t == syncproto.MsgLaneWelcome && ready != nil:
			ready <- nil
			ready = nil
			continue
		default:
			rerr = syncproto.Errorf("unexpected %s message on a lane", t)
		}
		if ready != nil {
			ready <- rerr
		} else {
			l.fail(rerr)
		}
		return
	}
}

func (l *laneSender) fail(err error) {
	l.mu.Lock()
	if l.err == nil && !l.closed {
		l.err = err
	}
	l.mu.Unlock()
}

func (l *laneSender) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// put queues a chunk for the lanes. When the queue is full it first calls
// flush (the session channel's): the agent takes a lane's chunks only once
// it has read the LanedOp they belong to, which may still sit in the
// session channel's buffer.
func (l *laneSender) put(ctx context.Context, it laneItem, flush func() error) error {
	if err := l.failed(); err != nil {
		return err
	}
	select {
	case l.q <- it:
		return nil
	default:
	}
	if err := flush(); err != nil {
		return err
	}
	select {
	case l.q <- it:
		return nil
	case <-l.stop:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the lanes and closes their channels.
func (l *laneSender) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.stop)
	l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.wg.Wait()
}

// sendLaned streams src as the content of laned write seq: chunks go to
// the lanes, the FileEnd on the session's channel.
func (c *Client) sendLaned(ctx context.Context, src io.Reader, seq uint64, p *batchProgress) error {
	var size int64
	for {
		buf := syncproto.GetChunk()
		n, rerr := io.ReadFull(src, *buf)
		if n > 0 {
			if err := c.lanes.put(ctx, laneItem{seq: seq, off: size, buf: buf, n: n}, c.fw.Flush); err != nil {
				syncproto.PutChunk(buf)
				return err
			}
			size += int64(n)
			p.sent(int64(n))
		} else {
			syncproto.PutChunk(buf)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return c.fw.Write(&syncproto.FileEnd{Size: size})
		}
		if rerr != nil {
			return c.fw.Write(&syncproto.FileEnd{Size: size, Abort: rerr.Error()})
		}
	}
}
