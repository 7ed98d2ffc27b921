//go:build linux

package syncserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncserver"
)

// testWriters is the agent's Writers in testSession (0: DefaultWriters).
var testWriters int

// testLanes, when set, makes testSession open that many lanes, and
// testLaneMin is their ClientOptions.LaneMinSize.
var (
	testLanes   int
	testLaneMin int64
)

// testLaneGate, when set, holds the opening of testSession's lanes until
// it is closed.
var testLaneGate chan struct{}

// laneCount counts the lanes testSession opened and the bytes the client
// wrote on them.
var laneCount struct {
	opened atomic.Int64
	sent   atomic.Int64
}

// countingConn counts what is written on a lane.
type countingConn struct{ net.Conn }

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	laneCount.sent.Add(int64(n))
	return n, err
}

// testDelay delays every read of testSession's client by that much: a
// round trip as long as a network's.
var testDelay time.Duration

type delayedConn struct {
	net.Conn
	d time.Duration
}

func (c delayedConn) Read(p []byte) (int, error) {
	time.Sleep(c.d)
	return c.Conn.Read(p)
}

// testAgentConn, when set, wraps the agent's end of testSession's pipes
// (the session's and its lanes').
var testAgentConn func(net.Conn) net.Conn

// testSession serves appRoot (a fake app root filesystem) over net.Pipe,
// the session and its lanes with one syncserver.Server, and returns a
// client whose destination is /app.
func testSession(t *testing.T, appRoot string, opts filesync.ClientOptions) *filesync.Client {
	t.Helper()
	fsRoot, err := rootfs.OpenDir(appRoot)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	agentConn := func(c net.Conn) net.Conn { return c }
	if testAgentConn != nil {
		agentConn = testAgentConn
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	srv := syncserver.New(nil)
	go func() {
		done <- srv.Serve(ctx, agentConn(b), syncserver.Root{FS: fsRoot, Owner: rootfs.Owner{UID: -1, GID: -1}, Workdir: "/app", Writers: testWriters})
		b.Close()
	}()
	if opts.Dest == "" {
		opts.Dest = "/app"
	}
	if testCompress && opts.Compress == filesync.CompressAuto {
		opts.Compress = filesync.CompressAlways
	}
	var lanes sync.WaitGroup
	ours := testLanes > 0 && opts.Lanes == 0
	if ours {
		opts.Lanes, opts.LaneMinSize = testLanes, testLaneMin
		gate := testLaneGate
		opts.OpenLane = func() (io.ReadWriteCloser, error) {
			if gate != nil {
				<-gate
			}
			la, lb := net.Pipe()
			lanes.Add(1)
			go func() {
				defer lanes.Done()
				if err := srv.Serve(ctx, agentConn(lb), syncserver.Root{FS: fsRoot, Owner: rootfs.Owner{UID: -1, GID: -1}, Workdir: "/app"}); err != nil {
					t.Errorf("serve a lane: %v", err)
				}
				lb.Close()
			}()
			laneCount.opened.Add(1)
			return countingConn{la}, nil
		}
	}
	clientSide := a
	if testDelay > 0 {
		clientSide = delayedConn{a, testDelay}
	}
	c, err := filesync.NewClient(ctx, clientSide, opts)
	if err != nil {
		t.Fatal(err)
	}
	if ours && testLaneGate == nil {
		if n, err := c.Lanes(); n != opts.Lanes {
			t.Fatalf("%d lanes open, want %d (%v)", n, opts.Lanes, err)
		}
	}
	t.Cleanup(func() {
		c.Close()
		lanes.Wait()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		cancel()
		fsRoot.Close()
	})
	return c
}

// servedRoot runs a Server, with the agent's own IDs, on one end of a pipe
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
		done <- syncserver.New(nil).Serve(context.Background(), b, syncserver.Root{FS: fsRoot, Owner: rootfs.Owner{UID: -1, GID: -1}})
		b.Close()
		fsRoot.Close()
	}()
	return appRoot, a, done
}

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

// treeOf describes a tree: "path type mode size target sha" per line.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	entries, err := filesync.ScanLocal(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Path + " " + e.Type.String() + " " + string(rune('0'+e.Mode>>6&7)) + string(rune('0'+e.Mode>>3&7)) + string(rune('0'+e.Mode&7)) + " " + e.Target)
		if e.Type == syncproto.TypeFile {
			data, _ := os.ReadFile(filepath.Join(dir, e.Path))
			sum := sha256.Sum256(data)
			b.WriteString(" " + string(rune(len(data))) + string(sum[:4]))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func sampleTree(t *testing.T) string {
	local := t.TempDir()
	write(t, filepath.Join(local, "main.go"), "package main\n", 0o644)
	write(t, filepath.Join(local, "nested/deeper/deepest/file.txt"), "deep", 0o600)
	write(t, filepath.Join(local, "with space/ünïcödé ✓.txt"), "utf-8", 0o644)
	write(t, filepath.Join(local, "empty"), "", 0o644)
	write(t, filepath.Join(local, "run.sh"), "#!/bin/sh\n", 0o755)
	write(t, filepath.Join(local, ".git/HEAD"), "ref", 0o644)
	write(t, filepath.Join(local, "build/out.bin"), "ignored", 0o644)
	write(t, filepath.Join(local, ".gitignore"), "build/\n", 0o644)
	os.MkdirAll(filepath.Join(local, "emptydir"), 0o750)
	os.Chmod(filepath.Join(local, "emptydir"), 0o750)
	os.Symlink("main.go", filepath.Join(local, "link-rel"))
	os.Symlink("/usr/bin/python3", filepath.Join(local, "link-abs"))
	// Files saved an hour ago: a file whose mtime is within 2 s of its
	// sync is racy and sent again on its next event (filesync's
	// racyWindow), which the tests below do not count on.
	old := time.Now().Add(-time.Hour)
	filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	return local
}

func TestRoundTrip(t *testing.T) {
	local := sampleTree(t)
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	write(t, filepath.Join(appRoot, "app/remote-only.txt"), "keep me", 0o644)
	c := testSession(t, appRoot, filesync.ClientOptions{})
	var warnings []string
	s, err := filesync.NewSyncer(c, filesync.Options{LocalDir: local, Warn: func(w string) { warnings = append(warnings, w) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sum, err := s.InitialSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Err() != nil {
		t.Fatal(sum.Err())
	}
	if sum.Files+sum.Symlinks != 8 {
		t.Errorf("summary %+v, want 8 files", sum)
	}
	remote := filepath.Join(appRoot, "app")
	if _, err := os.Stat(filepath.Join(remote, "remote-only.txt")); err != nil {
		t.Error("a remote-only file was removed without --delete")
	}
	os.Remove(filepath.Join(remote, "remote-only.txt"))
	if got := treeOf(t, remote); got != withoutIgnored(t, local) {
		t.Errorf("remote tree differs:\n got:\n%s\nwant:\n%s", got, withoutIgnored(t, local))
	}
	// mtimes are preserved
	li, _ := os.Stat(filepath.Join(local, "main.go"))
	ri, _ := os.Stat(filepath.Join(remote, "main.go"))
	if !li.ModTime().Equal(ri.ModTime()) {
		t.Errorf("mtime %v, want %v", ri.ModTime(), li.ModTime())
	}

	// A second initial sync sends nothing.
	sum, err = s.InitialSync(ctx)
	if err != nil || len(sum.Items) != 0 {
		t.Fatalf("second sync: %v %+v", err, sum.Items)
	}

	// Changes: edit, delete, rename (file and directory), chmod, type change.
	write(t, filepath.Join(local, "main.go"), "package main // edited\n", 0o644)
	os.Remove(filepath.Join(local, "empty"))
	os.Rename(filepath.Join(local, "run.sh"), filepath.Join(local, "start.sh"))
	os.Rename(filepath.Join(local, "nested/deeper"), filepath.Join(local, "moved dir"))
	os.Chmod(filepath.Join(local, "with space/ünïcödé ✓.txt"), 0o600)
	os.Remove(filepath.Join(local, "link-rel"))
	os.MkdirAll(filepath.Join(local, "link-rel"), 0o755)
	write(t, filepath.Join(local, "link-rel/inner"), "x", 0o644)
	sum, err = s.SyncPaths(ctx, []string{"main.go", "empty", "run.sh", "start.sh", "nested/deeper", "moved dir", "with space/ünïcödé ✓.txt", "link-rel", "link-rel/inner"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Err() != nil || sum.Renamed != 2 || sum.Files != 2 {
		t.Errorf("summary %+v: %v", sum, sum.Err())
	}
	if got := treeOf(t, remote); got != withoutIgnored(t, local) {
		t.Errorf("remote tree differs after changes:\n got:\n%s\nwant:\n%s", got, withoutIgnored(t, local))
	}

	// --delete removes remote-only files (but not ignored ones).
	write(t, filepath.Join(remote, "stale/old.txt"), "old", 0o644)
	write(t, filepath.Join(remote, "build/cache"), "ignored remotely too", 0o644)
	s, err = filesync.NewSyncer(c, filesync.Options{LocalDir: local, Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.InitialSync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(remote, "stale")); !os.IsNotExist(err) {
		t.Error("--delete left a remote-only directory")
	}
	if _, err := os.Stat(filepath.Join(remote, "build/cache")); err != nil {
		t.Error("--delete removed an ignored remote file")
	}
}

func withoutIgnored(t *testing.T, local string) string {
	ig, _ := filesync.NewIgnorer(local, filesync.IgnoreOptions{})
	entries, _ := filesync.ScanLocal(local, ig, nil)
	tmp := t.TempDir()
	for _, e := range entries {
		src := filepath.Join(local, e.Path)
		dst := filepath.Join(tmp, e.Path)
		switch e.Type {
		case syncproto.TypeDir:
			os.MkdirAll(dst, fs.FileMode(e.Mode))
			os.Chmod(dst, fs.FileMode(e.Mode))
		case syncproto.TypeSymlink:
			os.Symlink(e.Target, dst)
		case syncproto.TypeFile:
			b, _ := os.ReadFile(src)
			write(t, dst, string(b), fs.FileMode(e.Mode))
		}
	}
	return treeOf(t, tmp)
}

func TestHostileSymlinkInApp(t *testing.T) {
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	os.MkdirAll(filepath.Join(appRoot, "etc"), 0o755)
	os.Symlink("/etc", filepath.Join(appRoot, "app/link"))
	c := testSession(t, appRoot, filesync.ClientOptions{})
	name := "devsync-hostile-" + time.Now().Format("150405.000000000")
	res, err := c.Apply(context.Background(), []syncproto.Op{{Kind: syncproto.OpWrite, Path: "link/" + name, Mode: 0o644, Size: 3,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("pwn")), nil }}}, filesync.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat("/etc/" + name); err == nil {
		os.Remove("/etc/" + name)
		t.Fatal("the agent's /etc was written")
	}
	if len(res.Errors) == 0 {
		if b, err := os.ReadFile(filepath.Join(appRoot, "etc", name)); err != nil || string(b) != "pwn" {
			t.Fatalf("the write neither failed nor stayed in the app's root: %v", err)
		}
	}
}

// lazyReader produces n bytes of incompressible data without holding them.
type lazyReader struct {
	n     int64
	block []byte
	off   int64
}

func newLazyReader(n int64) *lazyReader {
	block := make([]byte, 1<<20+7)
	rand.New(rand.NewSource(1)).Read(block)
	return &lazyReader{n: n, block: block}
}

func (r *lazyReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if rem := r.n - r.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n := 0
	for n < len(p) {
		i := int((r.off + int64(n)) % int64(len(r.block)))
		n += copy(p[n:], r.block[i:])
	}
	r.off += int64(n)
	return n, nil
}

func (r *lazyReader) Close() error { return nil }

func TestLargeFileBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MB")
	}
	const size = 200 << 20
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	c := testSession(t, appRoot, filesync.ClientOptions{})

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	want := sha256.New()
	src := newLazyReader(size)
	res, err := c.Apply(context.Background(), []syncproto.Op{{Kind: syncproto.OpWrite, Path: "big.bin", Mode: 0o644, Size: size,
		Open: func() (io.ReadCloser, error) {
			return struct {
				io.Reader
				io.Closer
			}{io.TeeReader(src, want), src}, nil
		}}}, filesync.ApplyOptions{})
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 || res.Bytes != size {
		t.Fatalf("result %+v", res)
	}
	f, err := os.Open(filepath.Join(appRoot, "app/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	io.Copy(got, f)
	f.Close()
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("content differs")
	}
	grown := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by at most %s while streaming %s", fmt.Sprintf("%d MiB", grown>>20), fmt.Sprintf("%d MiB", size>>20))
	// Compressing holds memory of a fixed size, whatever the file's: the
	// stream's 4 MiB window at both ends, and each lane's encoder and
	// decoder (the race detector doubles what each allocation holds).
	limit := int64(32 << 20)
	if testCompress {
		limit = 56 << 20
	}
	if grown > limit {
		t.Errorf("heap grew by %s streaming a %s file: content is being buffered", fmt.Sprintf("%d MiB", grown>>20), fmt.Sprintf("%d MiB", size>>20))
	}
}
