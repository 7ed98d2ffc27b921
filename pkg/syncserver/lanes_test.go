//go:build linux

package syncserver_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// TestWithLanes runs the engine's end-to-end tests again with file content
// on three lanes: trees, ordering, a file larger than memory allows, errors.
func TestWithLanes(t *testing.T) {
	testLanes, testLaneMin = 3, -1
	defer func() { testLanes, testLaneMin = 0, 0 }()
	t.Run("RoundTrip", TestRoundTrip)
	t.Run("HostileSymlinkInApp", TestHostileSymlinkInApp)
	t.Run("BatchOrder", TestBatchOrderWithConcurrentWriters)
	t.Run("LargeFileBoundedMemory", TestLargeFileBoundedMemory)
}

// testCompress makes testSession's clients compress (auto does not over a
// pipe: its round trip is below filesync.AutoCompressRTT).
var testCompress bool

// TestCompressed runs the session tests with compression on: small files
// in one zstd stream on the session's channel, big files' chunks on the
// lanes compressed one by one.
func TestCompressed(t *testing.T) {
	testCompress = true
	defer func() { testCompress = false }()
	t.Run("RoundTrip", TestRoundTrip)
	t.Run("BatchOrder", TestBatchOrderWithConcurrentWriters)
	t.Run("LargeFileBoundedMemory", TestLargeFileBoundedMemory)
	t.Run("NewDirectoryAppearsWhole", TestNewDirectoryAppearsWhole)
	t.Run("Lanes", TestWithLanes)
}

// TestLanesCarryOnlyLargeFiles: small files go inline, a file of
// LaneMinSize or more on the lanes.
func TestLanesCarryOnlyLargeFiles(t *testing.T) {
	testLanes = 2
	defer func() { testLanes = 0 }()
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	c := testSession(t, appRoot, filesync.ClientOptions{})
	big := strings.Repeat("x", filesync.LaneMinSize)
	for _, tt := range []struct {
		name, content string
		laned         bool
	}{{"small", "a small file", false}, {"big", big, true}} {
		before := laneCount.sent.Load()
		ops := []syncproto.Op{{Kind: syncproto.OpWrite, Path: tt.name, Mode: 0o644, Size: int64(len(tt.content)), Open: content(tt.content)}}
		if res, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{}); err != nil || len(res.Errors) > 0 {
			t.Fatal(err, res.Errors)
		}
		if laned := laneCount.sent.Load() > before; laned != tt.laned {
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
	c := testSession(t, appRoot, filesync.ClientOptions{Lanes: 2, OpenLane: func() (io.ReadWriteCloser, error) {
		return nil, os.ErrPermission
	}})
	if n, err := c.Lanes(); n != 0 || err == nil {
		t.Fatalf("lanes %d, %v; want none and the reason", n, err)
	}
	res, err := c.Apply(context.Background(), []syncproto.Op{{Kind: syncproto.OpWrite, Path: "f", Mode: 0o644, Open: content("without lanes")}}, filesync.ApplyOptions{})
	if err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if b, _ := os.ReadFile(filepath.Join(appRoot, "app", "f")); string(b) != "without lanes" {
		t.Errorf("f = %q", b)
	}
}

// TestLanesOpenInTheBackground: a batch of small files does not wait for
// the lanes to open (they take round trips that a sync of small files
// does not need); a large file waits for them and goes on them.
func TestLanesOpenInTheBackground(t *testing.T) {
	gate := make(chan struct{})
	testLanes, testLaneGate = 2, gate
	laneCount.opened.Store(0)
	defer func() { testLanes, testLaneGate = 0, nil }()
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	c := testSession(t, appRoot, filesync.ClientOptions{})
	ops := []syncproto.Op{{Kind: syncproto.OpWrite, Path: "small", Mode: 0o644, Size: 5, Open: content("small")}}
	if res, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{}); err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if n := laneCount.opened.Load(); n != 0 {
		t.Fatalf("%d lanes opened while their opening was held", n)
	}
	close(gate)
	if n, err := c.Lanes(); n != 2 {
		t.Fatalf("%d lanes, %v", n, err)
	}
	before := laneCount.sent.Load()
	big := strings.Repeat("x", filesync.LaneMinSize)
	ops = []syncproto.Op{{Kind: syncproto.OpWrite, Path: "big", Mode: 0o644, Size: int64(len(big)), Open: content(big)}}
	if res, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{}); err != nil || len(res.Errors) > 0 {
		t.Fatal(err, res.Errors)
	}
	if laneCount.sent.Load() == before {
		t.Error("the large file did not travel on the lanes")
	}
	for name, want := range map[string]string{"small": "small", "big": big} {
		if b, _ := os.ReadFile(filepath.Join(appRoot, "app", name)); string(b) != want {
			t.Errorf("%s: %d bytes arrived", name, len(b))
		}
	}
}

// TestPrefetchedList: with PrefetchList the listing asked for with the
// Hello serves the first List; a request of another kind made first drops
// it, and the session goes on.
func TestPrefetchedList(t *testing.T) {
	local := sampleTree(t)
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app/sub"), 0o755)
	write(t, filepath.Join(appRoot, "app/sub/there.txt"), "there", 0o644)

	c := testSession(t, appRoot, filesync.ClientOptions{PrefetchList: true})
	s, err := filesync.NewSyncer(c, filesync.Options{LocalDir: local})
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := s.InitialSync(context.Background()); err != nil || sum.Err() != nil || sum.Files == 0 {
		t.Fatalf("initial sync after a prefetched listing: %+v, %v", sum, err)
	}

	c = testSession(t, appRoot, filesync.ClientOptions{PrefetchList: true})
	hs, err := c.Hash(context.Background(), []string{"sub/there.txt"})
	if err != nil || len(hs) != 1 {
		t.Fatalf("Hash before the prefetched listing was read: %v, %v", hs, err)
	}
	var names []string
	if err := c.List(context.Background(), "", func(e syncproto.Entry) error { names = append(names, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "sub/there.txt") {
		t.Errorf("List after Hash: %v", names)
	}
}

// TestAutoCompression: auto compresses when the handshake's round trip is
// a network's, and not over a pipe; never and always do as they say.
func TestAutoCompression(t *testing.T) {
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	for _, tt := range []struct {
		mode  filesync.Compression
		delay time.Duration
		want  bool
		why   string
	}{
		{filesync.CompressAuto, 0, false, "a local link"},
		{filesync.CompressAuto, 2 * filesync.AutoCompressRTT, true, "a network link; one zstd stream"},
		{filesync.CompressNever, 2 * filesync.AutoCompressRTT, false, "--compress none"},
		{filesync.CompressAlways, 0, true, "--compress zstd; one zstd stream"},
	} {
		testDelay = tt.delay
		c := testSession(t, appRoot, filesync.ClientOptions{Compress: tt.mode})
		testDelay = 0
		z, why, rtt := c.Compression()
		if tt.mode == filesync.CompressAuto && tt.delay == 0 && rtt >= filesync.AutoCompressRTT {
			// A loaded machine (the race detector, parallel packages) can
			// take longer than the threshold over an in-process pipe: auto
			// then rightly compresses. The rule is what is tested.
			tt.want, tt.why = true, "a network link"
		}
		if z != tt.want || !strings.Contains(why, tt.why) {
			t.Errorf("mode %d, read delay %s: compress %v (%s), want %v (%s)", tt.mode, tt.delay, z, why, tt.want, tt.why)
		}
		// The delayed read may start sleeping before the client's clock
		// starts, so the measure can fall a little short of the delay; it
		// must still clear the threshold that the decision is made on.
		if tt.delay > 0 && rtt < filesync.AutoCompressRTT {
			t.Errorf("measured round trip %s under a read delay of %s, below auto's threshold %s", rtt, tt.delay, filesync.AutoCompressRTT)
		}
		// The session works either way.
		if err := c.List(context.Background(), "", func(syncproto.Entry) error { return nil }); err != nil {
			t.Errorf("mode %d: List: %v", tt.mode, err)
		}
	}
}
