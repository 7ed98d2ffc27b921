package coalesce

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
)

// gatedConn records each write; while gate is set, a write waits on it.
type gatedConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	gate   chan struct{}
	first  chan struct{} // closed when the first write has started
	once   sync.Once
	fail   error
	closed bool
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.first) })
	if g.gate != nil {
		<-g.gate
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail != nil {
		return 0, g.fail
	}
	g.writes = append(g.writes, bytes.Clone(p))
	return len(p), nil
}

func (g *gatedConn) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return nil
}

// TestConnJoinsWrites: the writes made while one is in flight
// leave together, in order, and Close sends what is queued.
func TestConnJoinsWrites(t *testing.T) {
	g := &gatedConn{gate: make(chan struct{}), first: make(chan struct{})}
	c := NewConn(g)
	var want bytes.Buffer
	write := func(s string) {
		t.Helper()
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
		want.WriteString(s)
	}
	write("first")
	<-g.first // the sender is now blocked in the first write
	for i := range 100 {
		write(fmt.Sprintf("<%d>", i))
	}
	close(g.gate)
	write("last")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got := bytes.Join(g.writes, nil)
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("sent %q, want %q", got, want.Bytes())
	}
	// "first", then the 100 queued meanwhile in one write, then "last"
	// (alone or with them).
	if len(g.writes) > 3 {
		t.Errorf("%d writes for 102 queued while one was in flight, want at most 3", len(g.writes))
	}
	if !g.closed {
		t.Error("Close did not close the connection")
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
}

// TestConnReportsWriteErrors: a failed write of queued bytes is
// returned by the next Write.
func TestConnReportsWriteErrors(t *testing.T) {
	boom := errors.New("stream reset")
	g := &gatedConn{first: make(chan struct{}), fail: boom}
	c := NewConn(g)
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err) // queued: the failure comes later
	}
	<-c.done // the sender stops at its first failed write
	if _, err := c.Write([]byte("more")); !errors.Is(err, boom) {
		t.Fatalf("Write after a failed send: %v, want %v", err, boom)
	}
	c.Close()
}
