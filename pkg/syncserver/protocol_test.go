//go:build linux

package syncserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// rawFrame builds one frame.
func rawFrame(t syncproto.MsgType, payload []byte) []byte {
	b := make([]byte, 5, 5+len(payload))
	binary.BigEndian.PutUint32(b, uint32(len(payload)+1))
	b[4] = byte(t)
	return append(b, payload...)
}

func encode(m syncproto.Message) []byte {
	var b bytes.Buffer
	fw := syncproto.NewFrameWriter(&b)
	if err := fw.Write(m); err != nil {
		panic(err)
	}
	fw.Flush()
	return b.Bytes()
}

// servedRoot runs Serve, with the agent's own IDs, on one end of a pipe
// for a new app root holding an empty /app; it returns the root, the
// client's end and what Serve returns.
func servedRoot(t *testing.T) (appRoot string, conn net.Conn, served <-chan error) {
	t.Helper()
	appRoot = t.TempDir()
	if err := os.MkdirAll(filepath.Join(appRoot, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	fsRoot, err := rootfs.OpenDir(appRoot)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- New(nil).Serve(context.Background(), b, Root{FS: fsRoot, Owner: rootfs.Owner{UID: -1, GID: -1}})
		b.Close()
		fsRoot.Close()
	}()
	return appRoot, a, done
}

func TestProtocolValidation(t *testing.T) {
	hello := encode(&syncproto.Hello{MinVersion: 1, MaxVersion: 1, Dest: "/app", CreateDest: true})
	helloLanes := encode(&syncproto.Hello{MinVersion: 1, MaxVersion: 1, Dest: "/app", CreateDest: true, Features: []string{syncproto.FeatureLanes}})
	begin := encode(&syncproto.Begin{ID: 1})
	tests := []struct {
		name   string
		frames [][]byte
		want   string
	}{
		{"dot-dot path", [][]byte{hello, begin, encode(&syncproto.Op{Kind: syncproto.OpWrite, Path: "../x"})}, "climbs out"},
		{"nested dot-dot", [][]byte{hello, begin, encode(&syncproto.Op{Kind: syncproto.OpDelete, Path: "a/../../etc"})}, "not clean"},
		{"absolute path", [][]byte{hello, begin, encode(&syncproto.Op{Kind: syncproto.OpMkdir, Path: "/etc/x"})}, "absolute"},
		{"rename target", [][]byte{hello, begin, encode(&syncproto.Op{Kind: syncproto.OpRename, Path: "a", To: "../b"})}, "climbs out"},
		{"NUL byte", [][]byte{hello, begin, encode(&syncproto.Op{Kind: syncproto.OpWrite, Path: "a\x00b"})}, "NUL"},
		{"empty path", [][]byte{hello, begin, encode(&syncproto.Op{Kind: syncproto.OpWrite, Path: ""})}, "empty path"},
		{"unknown op", [][]byte{hello, begin, encode(&syncproto.Op{Kind: 'z', Path: "a"})}, "unknown operation"},
		{"unknown message type", [][]byte{hello, rawFrame(99, nil)}, "unknown message type 99"},
		{"oversize frame", [][]byte{hello, {0x7f, 0, 0, 0, byte(syncproto.MsgOp)}}, "exceeds the limit"},
		{"no hello", [][]byte{begin}, "expected hello"},
		{"version mismatch", [][]byte{encode(&syncproto.Hello{MinVersion: 7, MaxVersion: 9})}, "version mismatch"},
		{"relative destination", [][]byte{encode(&syncproto.Hello{MinVersion: 1, MaxVersion: 1, Dest: "app"})}, "absolute path"},
		{"trailing bytes", [][]byte{hello, append(encode(&syncproto.ListReq{}), 1)}, ""},
		{"hash of a parent path", [][]byte{hello, encode(&syncproto.HashReq{Paths: []string{"../../etc/shadow"}})}, "climbs out"},
		{"oversize chunk", [][]byte{hello, begin, encode(&syncproto.Op{Kind: syncproto.OpWrite, Path: "f"}), rawFrame(syncproto.MsgData, make([]byte, syncproto.ChunkSize+1))}, "exceeds"},
		{"unknown lane token", [][]byte{encode(&syncproto.LaneHello{Token: "0123456789abcdef0123456789abcdef"})}, "lane token"},
		{"laned write without lanes", [][]byte{hello, begin, encode(&syncproto.LanedOp{Seq: 1, Op: syncproto.Op{Kind: syncproto.OpWrite, Path: "f"}})}, "without the lanes feature"},
		{"laned delete", [][]byte{helloLanes, begin, encode(&syncproto.LanedOp{Seq: 1, Op: syncproto.Op{Kind: syncproto.OpDelete, Path: "f"}})}, "only writes"},
		{"laned dot-dot path", [][]byte{helloLanes, begin, encode(&syncproto.LanedOp{Seq: 1, Op: syncproto.Op{Kind: syncproto.OpWrite, Path: "../f"}})}, "climbs out"},
		{"content on the session after a laned op", [][]byte{helloLanes, begin, encode(&syncproto.LanedOp{Seq: 1, Op: syncproto.Op{Kind: syncproto.OpWrite, Path: "f"}}), rawFrame(syncproto.MsgData, []byte("x"))}, "expected the file end"},
	}
	// fix the "trailing bytes" frame: the length must cover the extra byte
	tb := encode(&syncproto.ListReq{})
	tb = append(tb, 0x42)
	binary.BigEndian.PutUint32(tb, uint32(len(tb)-4))
	tests[12].frames[1], tests[12].want = tb, "trailing bytes"

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			appRoot, a, done := servedRoot(t)
			go func() {
				for _, f := range tt.frames {
					if _, err := a.Write(f); err != nil {
						return
					}
				}
			}()
			// Read the agent's answers until its Error message.
			fr := syncproto.NewFrameReader(a)
			var msg string
			for {
				typ, payload, err := fr.Next()
				if err != nil {
					break
				}
				if typ == syncproto.MsgError {
					var m syncproto.ErrorMsg
					syncproto.Decode(&m, payload)
					msg = m.Message
					break
				}
			}
			a.Close()
			err := <-done
			var pe *syncproto.ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("serve returned %v, want a protocol error", err)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("agent said %q, want it to mention %q", msg, tt.want)
			}
			entries, _ := os.ReadDir(filepath.Join(appRoot, "app"))
			if len(entries) != 0 {
				t.Errorf("the refused session wrote %d entries", len(entries))
			}
		})
	}
}

// TestExplain: errors a user can act on carry the remedy.
func TestExplain(t *testing.T) {
	err := explain(&fs.PathError{Op: "create", Path: "x", Err: syscall.EROFS})
	if !strings.Contains(err.Error(), "read-only") || !strings.Contains(err.Error(), "--dest") || !errors.Is(err, syscall.EROFS) {
		t.Errorf("EROFS message %q", err)
	}
	ie := itemError(3, &syncproto.Op{Kind: syncproto.OpWrite, Path: "a"}, &fs.PathError{Op: "create", Path: "a", Err: syscall.EACCES})
	if ie.Index != 3 || ie.Code != "EACCES" || ie.Path != "a" || ie.Op != syncproto.OpWrite {
		t.Errorf("item error %+v", ie)
	}
}

// rawClient is the client's end of a session written by hand.
type rawClient struct {
	fw *syncproto.FrameWriter
	fr *syncproto.FrameReader
}

func newRawClient(conn net.Conn) *rawClient {
	return &rawClient{fw: syncproto.NewFrameWriter(conn), fr: syncproto.NewFrameReader(conn)}
}

// recv returns the next message; an Error message is an error.
func (c *rawClient) recv() (syncproto.MsgType, []byte, error) {
	t, payload, err := c.fr.Next()
	if err != nil {
		return 0, nil, err
	}
	if t == syncproto.MsgError {
		var m syncproto.ErrorMsg
		if err := syncproto.Decode(&m, payload); err != nil {
			return 0, nil, err
		}
		return 0, nil, errors.New(m.Message)
	}
	return t, payload, nil
}

// expect decodes the next message into m, which must be of its type.
func (c *rawClient) expect(t *testing.T, m syncproto.Message) {
	t.Helper()
	typ, payload, err := c.recv()
	if err != nil {
		t.Fatal(err)
	}
	if typ != m.MsgType() {
		t.Fatalf("got %s, want %s", typ, m.MsgType())
	}
	if err := syncproto.Decode(m, payload); err != nil {
		t.Fatal(err)
	}
}

// rawLaneSession is a session with one lane whose protocol a test writes by
// hand. served reports what the session's Serve returned.
func rawLaneSession(t *testing.T) (c, lane *rawClient, laneConn net.Conn, served chan error) {
	t.Helper()
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	fsRoot, err := rootfs.OpenDir(appRoot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsRoot.Close() })
	srv := New(nil)
	root := Root{FS: fsRoot, Owner: rootfs.Owner{UID: -1, GID: -1}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close() })
	served = make(chan error, 1)
	go func() { served <- srv.Serve(ctx, b, root); b.Close() }()
	c = newRawClient(a)
	c.fw.Write(&syncproto.Hello{MinVersion: 1, MaxVersion: 1, Dest: "/app", Features: []string{syncproto.FeatureLanes}})
	c.fw.Flush()
	var w syncproto.Welcome
	c.expect(t, &w)
	var tok syncproto.LaneToken
	c.expect(t, &tok)
	la, lb := net.Pipe()
	t.Cleanup(func() { la.Close() })
	go func() { srv.Serve(ctx, lb, root); lb.Close() }()
	lane = newRawClient(la)
	lane.fw.Write(&syncproto.LaneHello{Token: tok.Token})
	lane.fw.Flush()
	lane.expect(t, &syncproto.LaneWelcome{})
	return c, lane, la, served
}

// TestLaneProtocolViolations: content beyond a file's end and a sequence
// number that does not grow end the session with an error.
func TestLaneProtocolViolations(t *testing.T) {
	for _, tt := range []struct {
		name string
		send func(main, lane *syncproto.FrameWriter)
		want string
	}{
		{"content beyond the file end", func(main, lane *syncproto.FrameWriter) {
			main.Write(&syncproto.LanedOp{Seq: 1, Op: syncproto.Op{Kind: syncproto.OpWrite, Path: "f"}})
			main.Write(&syncproto.FileEnd{Size: 1})
			main.Flush()
			lane.WriteParts(syncproto.MsgLaneData, syncproto.AppendLaneDataHeader(nil, 1, 0), []byte("too long"))
			lane.Flush()
		}, "more content"},
		{"sequence number that does not grow", func(main, lane *syncproto.FrameWriter) {
			main.Write(&syncproto.LanedOp{Seq: 5, Op: syncproto.Op{Kind: syncproto.OpWrite, Path: "f"}})
			main.Write(&syncproto.FileEnd{Size: 0})
			main.Write(&syncproto.LanedOp{Seq: 5, Op: syncproto.Op{Kind: syncproto.OpWrite, Path: "g"}})
		}, "must grow"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, lane, _, served := rawLaneSession(t)
			go func() {
				c.fw.Write(&syncproto.Begin{ID: 1})
				tt.send(c.fw, lane.fw)
				c.fw.Write(&syncproto.Commit{ID: 1})
				c.fw.Flush()
			}()
			_, _, err := c.recv()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("agent said %v, want %q", err, tt.want)
			}
			var pe *syncproto.ProtocolError
			if err := <-served; !errors.As(err, &pe) {
				t.Errorf("serve returned %v, want a protocol error", err)
			}
		})
	}
}

// TestLaneLostEndsSession: a lane that closes while its session goes on
// ends the session, so no writer waits for content that cannot come.
func TestLaneLostEndsSession(t *testing.T) {
	c, _, laneConn, served := rawLaneSession(t)
	// A laned write whose content never comes: its lane closes instead.
	c.fw.Write(&syncproto.Begin{ID: 1})
	c.fw.Write(&syncproto.LanedOp{Seq: 1, Op: syncproto.Op{Kind: syncproto.OpWrite, Path: "f"}})
	c.fw.Write(&syncproto.FileEnd{Size: 10})
	c.fw.Write(&syncproto.Commit{ID: 1})
	go c.fw.Flush()
	laneConn.Close()
	done := make(chan error, 1)
	go func() { _, _, err := c.recv(); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the session answered as if nothing was lost")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session still waits for the lost lane's content")
	}
	<-served
}

// TestLaneTokenOfAnotherServer: a lane is attached only by the Server
// that serves its session (there is no process-wide table).
func TestLaneTokenOfAnotherServer(t *testing.T) {
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	fsRoot, err := rootfs.OpenDir(appRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer fsRoot.Close()
	root := Root{FS: fsRoot, Owner: rootfs.Owner{UID: -1, GID: -1}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := func(srv *Server) (*rawClient, chan error) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close() })
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ctx, b, root); b.Close() }()
		return newRawClient(a), served
	}
	c, _ := serve(New(nil))
	c.fw.Write(&syncproto.Hello{MinVersion: 1, MaxVersion: 1, Dest: "/app", Features: []string{syncproto.FeatureLanes}})
	c.fw.Flush()
	c.expect(t, &syncproto.Welcome{})
	var tok syncproto.LaneToken
	c.expect(t, &tok)
	lane, served := serve(New(nil))
	go func() {
		lane.fw.Write(&syncproto.LaneHello{Token: tok.Token})
		lane.fw.Flush()
	}()
	if _, _, err := lane.recv(); err == nil || !strings.Contains(err.Error(), "lane token") {
		t.Errorf("another server attached the lane: %v", err)
	}
	var pe *syncproto.ProtocolError
	if err := <-served; !errors.As(err, &pe) {
		t.Errorf("serve returned %v, want a protocol error", err)
	}
}

// TestReceivedDuringBatch: with FeatureProgress the agent reports the
// content of the open batch it has received, every report precedes the
// batch's result, and none follows it; without the feature the welcome
// does not list it.
func TestReceivedDuringBatch(t *testing.T) {
	_, conn, _ := servedRoot(t)
	defer conn.Close()
	c := newRawClient(conn)
	c.fw.Write(&syncproto.Hello{MinVersion: 1, MaxVersion: 1, Dest: "/app", Features: []string{syncproto.FeatureProgress}})
	c.fw.Flush()
	var w syncproto.Welcome
	c.expect(t, &w)
	if !slices.Contains(w.Features, syncproto.FeatureProgress) {
		t.Fatalf("welcome features %v", w.Features)
	}
	c.fw.Write(&syncproto.Begin{ID: 9, Count: 1})
	c.fw.Write(&syncproto.Op{Kind: syncproto.OpWrite, Path: "f", Mode: 0o644, Size: 300_000})
	c.fw.WriteRaw(syncproto.MsgData, make([]byte, 100_000))
	c.fw.Flush()
	var r syncproto.Received
	c.expect(t, &r) // within ProgressInterval
	if r.ID != 9 || r.Bytes != 100_000 {
		t.Fatalf("received %+v, want batch 9, 100000 bytes", r)
	}
	c.fw.WriteRaw(syncproto.MsgData, make([]byte, 200_000))
	c.fw.Write(&syncproto.FileEnd{Size: 300_000})
	c.fw.Write(&syncproto.Commit{ID: 9})
	c.fw.Flush()
	for {
		typ, payload, err := c.recv()
		if err != nil {
			t.Fatal(err)
		}
		if typ == syncproto.MsgResult {
			break
		}
		if typ != syncproto.MsgReceived || syncproto.Decode(&r, payload) != nil || r.ID != 9 || r.Bytes <= 100_000 || r.Bytes > 300_000 {
			t.Fatalf("before the result: %s %+v", typ, r)
		}
	}
	// Nothing follows the result: the next request's answer comes first.
	c.fw.Write(&syncproto.ListReq{})
	c.fw.Flush()
	c.expect(t, &syncproto.ListEntries{})

	_, conn2, _ := servedRoot(t)
	defer conn2.Close()
	c2 := newRawClient(conn2)
	c2.fw.Write(&syncproto.Hello{MinVersion: 1, MaxVersion: 1, Dest: "/app"})
	c2.fw.Flush()
	c2.expect(t, &w)
	if slices.Contains(w.Features, syncproto.FeatureProgress) {
		t.Errorf("welcome lists %s, which the client did not offer", syncproto.FeatureProgress)
	}
}
