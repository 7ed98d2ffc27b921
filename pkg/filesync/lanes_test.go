//go:build linux

package filesync

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// TestWithLanes runs the engine's end-to-end tests again with file content
// on three lanes: trees, ordering, a file larger than memory allows, errors.
func TestWithLanes(t *testing.T) {
	testLanes, laneMinSize = 3, 0
	defer func() { testLanes, laneMinSize = 0, LaneMinSize }()
	t.Run("RoundTrip", TestRoundTrip)
	t.Run("HostileSymlinkInApp", TestHostileSymlinkInApp)
	t.Run("BatchOrder", TestBatchOrderWithConcurrentWriters)
	t.Run("LargeFileBoundedMemory", TestLargeFileBoundedMemory)
	t.Run("ReadOnlyDestination", TestReadOnlyDestination)
}

// TestLanesCarryOnlyLargeFiles: small files go inline, a file of
// LaneMinSize or more on the lanes.
func TestLanesCarryOnlyLargeFiles(t *testing.T) {
	testLanes = 2
	defer func() { testLanes = 0 }()
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	c := testSession(t, appRoot, ClientOptions{})
	big := strings.Repeat("x", LaneMinSize)
	for _, tt := range []struct {
		name, content string
		laned         bool
	}{{"small", "a small file", false}, {"big", big, true}} {
		before := c.waitLanes(true).sent.Load()
		ops := []syncproto.Op{{Kind: syncproto.OpWrite, Path: tt.name, Mode: 0o644, Size: int64(len(tt.content)), Open: content(tt.content)}}
		if res, err := c.Apply(context.Background(), ops, ApplyOptions{}); err != nil || len(res.Errors) > 0 {
			t.Fatal(err, res.Errors)
		}
		if laned := c.waitLanes(true).sent.Load() > before; laned != tt.laned {
			t.Errorf("%s file: on the lanes %v, want %v", tt.name, laned, tt.laned)
		}
		if b, _ := os.ReadFile(filepath.Join(appRoot, "app", tt.name)); string(b) != tt.content {
			t.Errorf("%s file: %d bytes arrived", tt.name, len(b))
		}
	}
}

// TestLaneRefused: a session whose lanes cannot be opened works without
// them and says why.
func TestLaneRefused(t *testing.T) {
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	c := testSession(t, appRoot, ClientOptions{Lanes: 2, OpenLane: func() (io.ReadWriteCloser, error) {
		return nil, os.ErrPermission
	}})
	if n, err := c.Lanes(); n != 0 || err == nil {
		t.Fatalf("lanes %d, %v; want none and the reason", n, err)
	}
	res, err := c.Apply(context.Background(), []syncproto.Op{{Kind: syncproto.OpWrite, Path: "f", Mode: 0o644, Open: content("without lanes")}}, ApplyOptions{})
	if err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if b, _ := os.ReadFile(filepath.Join(appRoot, "app", "f")); string(b) != "without lanes" {
		t.Errorf("f = %q", b)
	}
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
			c, lane, served := rawLaneSession(t)
			ctx := context.Background()
			laneW := syncproto.NewFrameWriter(lane)
			c.fw.Write(&syncproto.Begin{ID: 1})
			tt.send(c.fw, laneW)
			c.fw.Write(&syncproto.Commit{ID: 1})
			c.fw.Flush()
			_, _, err := c.recv(ctx)
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
	c, lane, served := rawLaneSession(t)
	ctx := context.Background()
	// A laned write whose content never comes: its lane closes instead.
	c.fw.Write(&syncproto.Begin{ID: 1})
	c.fw.Write(&syncproto.LanedOp{Seq: 1, Op: syncproto.Op{Kind: syncproto.OpWrite, Path: "f"}})
	c.fw.Write(&syncproto.FileEnd{Size: 10})
	c.fw.Write(&syncproto.Commit{ID: 1})
	c.fw.Flush()
	lane.Close()
	done := make(chan error, 1)
	go func() { _, _, err := c.recv(ctx); done <- err }()
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

// rawLaneSession is a session with one lane whose protocol a test writes by
// hand: the client's lane sender is bypassed through the returned conn.
// served reports what the session's Serve returned.
func rawLaneSession(t *testing.T) (c *Client, lane net.Conn, served chan error) {
	t.Helper()
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	fsRoot, err := rootfs.OpenDir(appRoot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsRoot.Close() })
	root := Root{FS: fsRoot, Owner: rootfs.Owner{UID: -1, GID: -1}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, b := net.Pipe()
	served = make(chan error, 1)
	go func() { served <- Serve(ctx, b, root); b.Close() }()
	c, err = NewClient(ctx, a, ClientOptions{Dest: "/app", Lanes: 1, OpenLane: func() (io.ReadWriteCloser, error) {
		la, lb := net.Pipe()
		go func() { Serve(ctx, lb, root); lb.Close() }()
		lane = la
		return la, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if n, err := c.Lanes(); n != 1 {
		t.Fatal(n, err)
	}
	return c, lane, served
}

// TestLanesOpenInTheBackground: a batch of small files does not wait for
// the lanes to open (they take round trips that a sync of small files
// does not need); a large file waits for them and goes on them.
func TestLanesOpenInTheBackground(t *testing.T) {
	gate := make(chan struct{})
	testLanes, testLaneGate = 2, gate
	defer func() { testLanes, testLaneGate = 0, nil }()
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	c := testSession(t, appRoot, ClientOptions{})
	ops := []syncproto.Op{{Kind: syncproto.OpWrite, Path: "small", Mode: 0o644, Size: 5, Open: content("small")}}
	if res, err := c.Apply(context.Background(), ops, ApplyOptions{}); err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if c.waitLanes(false) != nil {
		t.Fatal("the lanes opened while their opening was held")
	}
	close(gate)
	big := strings.Repeat("x", LaneMinSize)
	ops = []syncproto.Op{{Kind: syncproto.OpWrite, Path: "big", Mode: 0o644, Size: int64(len(big)), Open: content(big)}}
	if res, err := c.Apply(context.Background(), ops, ApplyOptions{}); err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if l := c.waitLanes(false); l == nil || l.sent.Load() == 0 {
		t.Error("the large file did not travel on the lanes")
	}
	for name, want := range map[string]string{"small": "small", "big": big} {
		if b, _ := os.ReadFile(filepath.Join(appRoot, "app", name)); string(b) != want {
			t.Errorf("%s: %d bytes arrived", name, len(b))
		}
	}
}
