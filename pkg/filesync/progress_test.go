package filesync

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// recorder is a Progress that records what it is told.
type recorder struct {
	mu       sync.Mutex
	total    int64
	done     []string
	finished bool
	changed  chan struct{} // a value on every Add
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1024)} }

func (r *recorder) Start(int, int64) {}
func (r *recorder) Add(n int64) {
	r.mu.Lock()
	r.total += n
	r.mu.Unlock()
	r.changed <- struct{}{}
}
func (r *recorder) FileDone(p string) { r.mu.Lock(); r.done = append(r.done, p); r.mu.Unlock() }
func (r *recorder) Finish()           { r.mu.Lock(); r.finished = true; r.mu.Unlock() }
func (r *recorder) state() (int64, []string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total, slices.Clone(r.done), r.finished
}

// waitTotal waits until the recorder has been told of want bytes.
func (r *recorder) waitTotal(t *testing.T, want int64) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if got, _, _ := r.state(); got == want {
			return
		} else if got > want {
			t.Fatalf("progress %d bytes, want %d", got, want)
		}
		select {
		case <-r.changed:
		case <-timeout:
			got, _, _ := r.state()
			t.Fatalf("progress %d bytes after 10 s, want %d", got, want)
		}
	}
}

// fakeAgent answers a client's hello on conn with a welcome of feats;
// it returns the hello's features and the agent's reader and writer.
func fakeAgent(t *testing.T, conn net.Conn, feats []string) ([]string, *syncproto.FrameReader, *syncproto.FrameWriter) {
	fr, fw := syncproto.NewFrameReader(conn), syncproto.NewFrameWriter(conn)
	typ, payload, err := fr.Next()
	var h syncproto.Hello
	if err == nil && typ == syncproto.MsgHello {
		err = syncproto.Decode(&h, payload)
	}
	if err != nil {
		t.Errorf("fake agent: hello: %s, %v", typ, err)
		return nil, fr, fw
	}
	fw.Write(&syncproto.Welcome{Version: 1, Features: feats, Dest: "/app"})
	fw.Flush()
	return h.Features, fr, fw
}

// readUntil reads frames up to one of type want, the number of content
// bytes on the way.
func readUntil(fr *syncproto.FrameReader, want syncproto.MsgType) (int64, error) {
	var n int64
	for {
		typ, payload, err := fr.Next()
		if err != nil {
			return n, err
		}
		if typ == syncproto.MsgData {
			n += int64(len(payload))
		}
		if typ == want {
			return n, nil
		}
	}
}

// TestProgressFromTheAgent: with an agent that reports what it received,
// the progress is what it reported (reports of another batch are
// ignored), the file is done once its content arrived, and the result
// completes it; with an older agent, content counts as it is sent.
func TestProgressFromTheAgent(t *testing.T) {
	const size = 2*syncproto.ChunkSize + 1000
	content := strings.Repeat("x", size)
	ops := []syncproto.Op{{Kind: syncproto.OpWrite, Path: "f", Mode: 0o644, Size: size, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(content)), nil
	}}}
	for _, acks := range []bool{true, false} {
		a, b := net.Pipe()
		agent := make(chan error, 1)
		rec := newRecorder()
		step := make(chan struct{})
		go func() {
			var feats []string
			if acks {
				feats = []string{syncproto.FeatureProgress}
			}
			offered, fr, fw := fakeAgent(t, b, feats)
			if !slices.Contains(offered, syncproto.FeatureProgress) {
				t.Errorf("the client did not offer %s: %v", syncproto.FeatureProgress, offered)
			}
			n, err := readUntil(fr, syncproto.MsgData) // begin, op, one chunk
			if err != nil || n != syncproto.ChunkSize {
				agent <- err
				return
			}
			if acks {
				fw.Write(&syncproto.Received{ID: 2, Bytes: 1 << 30}) // another batch's
				fw.Write(&syncproto.Received{ID: 1, Bytes: n})
				fw.Flush()
				<-step
			}
			if _, err := readUntil(fr, syncproto.MsgCommit); err != nil {
				agent <- err
				return
			}
			if acks {
				fw.Write(&syncproto.Received{ID: 1, Bytes: size - 1}) // a last report short of the total
			}
			fw.Write(&syncproto.Result{ID: 1, Applied: 1, Bytes: size})
			agent <- fw.Flush()
		}()
		c, err := NewClient(context.Background(), a, ClientOptions{Compress: CompressNever})
		if err != nil {
			t.Fatal(err)
		}
		applied := make(chan error, 1)
		go func() {
			_, err := c.Apply(context.Background(), ops, ApplyOptions{Progress: rec})
			applied <- err
		}()
		if acks {
			rec.waitTotal(t, syncproto.ChunkSize)
			if _, done, _ := rec.state(); len(done) != 0 {
				t.Errorf("file done after a chunk of three arrived: %v", done)
			}
			close(step)
		}
		if err := <-applied; err != nil {
			t.Fatalf("acks %v: apply: %v", acks, err)
		}
		if err := <-agent; err != nil {
			t.Fatalf("acks %v: fake agent: %v", acks, err)
		}
		if total, done, finished := rec.state(); total != size || !slices.Equal(done, []string{"f"}) || !finished {
			t.Errorf("acks %v: progress %d bytes (want %d), files done %v, finished %v", acks, total, size, done, finished)
		}
		c.Close()
		b.Close()
	}
}

// TestMalformedReceivedBreaksTheSession: a received message with trailing
// bytes is a protocol violation.
func TestMalformedReceivedBreaksTheSession(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		_, fr, _ := fakeAgent(t, b, []string{syncproto.FeatureProgress})
		readUntil(fr, syncproto.MsgCommit)
		payload := append(binary.AppendUvarint([]byte{1}, 5), 0)
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(payload)+1))
		b.Write(append(append(frame, byte(syncproto.MsgReceived)), payload...))
	}()
	c, err := NewClient(context.Background(), a, ClientOptions{Compress: CompressNever})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ops := []syncproto.Op{{Kind: syncproto.OpMkdir, Path: "d", Mode: 0o755}}
	_, err = c.Apply(context.Background(), ops, ApplyOptions{Progress: newRecorder()})
	var pe *syncproto.ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "trailing") {
		t.Fatalf("apply after a malformed received message: %v", err)
	}
}
