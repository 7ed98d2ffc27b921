//go:build linux

package syncserver_test

import (
	"context"
	"crypto/rand"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// valve lets the agent read only as many bytes, over all its channels, as
// the test allows: a link as slow as the test wants, without timing.
type valve struct {
	mu       sync.Mutex
	cond     *sync.Cond
	allowed  int64
	consumed int64
}

func newValve() *valve {
	v := &valve{allowed: math.MaxInt64}
	v.cond = sync.NewCond(&v.mu)
	return v
}

// set allows the agent n bytes in all (math.MaxInt64: no limit).
func (v *valve) set(n int64) {
	v.mu.Lock()
	v.allowed = n
	v.cond.Broadcast()
	v.mu.Unlock()
}

func (v *valve) read() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.consumed
}

// waitDrained waits until the agent has read all it is allowed, or done
// is closed.
func (v *valve) waitDrained(done <-chan struct{}) {
	stop := context.AfterFunc(doneCtx(done), func() { v.mu.Lock(); v.cond.Broadcast(); v.mu.Unlock() })
	defer stop()
	v.mu.Lock()
	defer v.mu.Unlock()
	for v.consumed < v.allowed && !isClosed(done) {
		v.cond.Wait()
	}
}

func doneCtx(done <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-done; cancel() }()
	return ctx
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

type valveConn struct {
	net.Conn
	v      *valve
	closed chan struct{}
	once   sync.Once
}

func (c *valveConn) Read(p []byte) (int, error) {
	v := c.v
	v.mu.Lock()
	for v.consumed >= v.allowed && !isClosed(c.closed) {
		v.cond.Wait()
	}
	n := int64(len(p))
	if v.allowed != math.MaxInt64 {
		n = min(n, v.allowed-v.consumed)
	}
	v.mu.Unlock()
	if n <= 0 {
		n = int64(len(p)) // closed: let the read fail
	}
	got, err := c.Conn.Read(p[:n])
	v.mu.Lock()
	v.consumed += int64(got)
	v.cond.Broadcast()
	v.mu.Unlock()
	return got, err
}

func (c *valveConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.v.mu.Lock()
		c.v.cond.Broadcast()
		c.v.mu.Unlock()
	})
	return c.Conn.Close()
}

// linkProgress is a Progress that checks, at every Add, that it never runs
// ahead of what the agent has read from its channels.
type linkProgress struct {
	t       *testing.T
	v       *valve
	mu      sync.Mutex
	total   int64
	ahead   int64 // the most the progress ran ahead of the agent's reads
	done    int
	changed chan struct{}
}

func (p *linkProgress) Start(int, int64) {}
func (p *linkProgress) Add(n int64) {
	read := p.v.read()
	p.mu.Lock()
	p.total += n
	p.ahead = max(p.ahead, p.total-read)
	p.mu.Unlock()
	select {
	case p.changed <- struct{}{}:
	default:
	}
}
func (p *linkProgress) FileDone(string) { p.mu.Lock(); p.done++; p.mu.Unlock() }
func (p *linkProgress) Finish()         {}
func (p *linkProgress) state() (total, ahead int64, done int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total, p.ahead, p.done
}

// TestProgressFollowsTheAgent: the agent reads its channels only as fast
// as the test lets it; the progress the client reports never exceeds what
// the agent has read, and once the agent has read some, the progress
// catches up to within what may sit unparsed in its buffers (a 64 KiB
// read buffer and a partial chunk per channel). Before the agent reported
// what it received, the client counted content handed to its channels:
// a whole lane queue ahead (and on SSH, 2 MiB windows per channel).
func TestProgressFollowsTheAgent(t *testing.T) {
	for _, tt := range []struct {
		name  string
		lanes int
	}{{"inline", 0}, {"lanes", 3}} {
		t.Run(tt.name, func(t *testing.T) {
			testLanes = tt.lanes
			v := newValve()
			testAgentConn = func(c net.Conn) net.Conn { return &valveConn{Conn: c, v: v, closed: make(chan struct{})} }
			defer func() { testLanes, testAgentConn = 0, nil }()
			defer v.set(math.MaxInt64) // the sessions end freely

			appRoot := t.TempDir()
			os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
			c := testSession(t, appRoot, filesync.ClientOptions{})
			var ops []syncproto.Op
			var size int64
			add := func(name string, n int) {
				b := make([]byte, n)
				rand.Read(b)
				ops = append(ops, syncproto.Op{Kind: syncproto.OpWrite, Path: name, Mode: 0o644, Size: int64(n), Open: content(string(b))})
				size += int64(n)
			}
			for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
				add(name, 200<<10+17) // inline
			}
			if tt.lanes > 0 {
				add("big", 6<<20+5) // on the lanes
			}
			p := &linkProgress{t: t, v: v, changed: make(chan struct{}, 1)}
			conns := int64(1 + tt.lanes)
			slack := conns * (syncproto.ChunkSize + 64<<10 + 4<<10)

			start := v.read()
			v.set(start)
			applied := make(chan error, 1)
			finished := make(chan struct{})
			go func() {
				res, err := c.Apply(context.Background(), ops, filesync.ApplyOptions{Progress: p})
				if err == nil && len(res.Errors) > 0 {
					t.Errorf("apply: %v", res.Errors)
				}
				applied <- err
				close(finished)
			}()
			const step = 512 << 10
			steps := 0
			for allowed := start + step; !isClosed(finished); allowed += step {
				v.set(allowed)
				v.waitDrained(finished)
				if isClosed(finished) {
					break
				}
				steps++
				// The agent is stalled at allowed: its reports catch up.
				read := v.read()
				timeout := time.After(10 * time.Second)
				for {
					total, _, _ := p.state()
					if total >= read-start-slack {
						break
					}
					select {
					case <-p.changed:
					case <-timeout:
						t.Fatalf("the agent read %d bytes of the batch; progress stays at %d", read-start, total)
					}
				}
			}
			if err := <-applied; err != nil {
				t.Fatal(err)
			}
			total, ahead, done := p.state()
			t.Logf("%d steps of %d KiB; the progress ran ahead of the agent's reads by at most %d bytes", steps, step>>10, ahead)
			if ahead > 0 {
				t.Errorf("the progress ran %d bytes ahead of what the agent had read", ahead)
			}
			if total != size || done != len(ops) {
				t.Errorf("progress at the end: %d bytes of %d, %d files of %d", total, size, done, len(ops))
			}
			if min := size / step / 2; int64(steps) < min {
				t.Errorf("only %d steps (want at least %d): the valve did not hold the agent", steps, min)
			}
		})
	}
}
