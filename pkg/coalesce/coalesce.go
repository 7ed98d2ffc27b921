// Package coalesce joins the small writes made to a connection into fewer,
// larger ones: every layer below a kubectl-dev stream (SPDY, WebSocket,
// TLS, and the API server, the kubelet and the container runtime that
// relay it) does work per write, not only per byte.
package coalesce

import (
	"net"
	"sync"
	"time"
)

// maxQueued bounds what a Conn holds: a Write waits while this
// much is queued.
const maxQueued = 256 << 10

// Conn queues writes and sends what is queued in one write from a
// goroutine of its own. golang.org/x/crypto/ssh writes each packet of at
// most 32 KiB in pieces (its buffered writer's 4 KiB, then the rest), and
// the port-forward stream below turns each write into a SPDY frame (header
// and data written separately), a WebSocket message and a TLS record that
// the API server, the kubelet and the runtime each handle: a profile of a
// 10,000-file devsync counted 11,060 writes for 52.6 MB, 6,307 of them
// under 100 bytes. Queued, the writes made while one is in flight leave
// together; a lone write (a keystroke) leaves at once. kubectl-dev puts one
// under the SSH connection (pkg/sshclient) and one under the SPDY framer of
// the WebSocket tunnel (pkg/portforward), which writes each data frame's
// two header words and its data separately.
type Conn struct {
	net.Conn
	mu      sync.Mutex
	cond    *sync.Cond
	queued  []byte
	spare   []byte
	err     error // the first failed write: every later Write returns it
	closing bool
	done    chan struct{} // closed when the sender has stopped
}

func NewConn(c net.Conn) *Conn {
	cc := &Conn{Conn: c, done: make(chan struct{})}
	cc.cond = sync.NewCond(&cc.mu)
	go cc.send()
	return cc
}

// Write queues p (a copy) and returns; it waits while maxQueued bytes are
// queued. A failed write of queued bytes is returned by the next Write.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queued) >= maxQueued && c.err == nil && !c.closing {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.closing {
		return 0, net.ErrClosed
	}
	c.queued = append(c.queued, p...)
	c.cond.Broadcast()
	return len(p), nil
}

func (c *Conn) send() {
	defer close(c.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.queued) == 0 && !c.closing && c.err == nil {
			c.cond.Wait()
		}
		if len(c.queued) == 0 || c.err != nil {
			return
		}
		out := c.queued
		c.queued = c.spare[:0]
		c.cond.Broadcast() // writers waiting for room
		c.mu.Unlock()
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		c.spare = out[:0]
		if err != nil {
			c.err = err
			c.cond.Broadcast()
		}
	}
}

// closeFlushTimeout bounds how long Close waits for queued bytes to leave.
const closeFlushTimeout = 2 * time.Second

// Close sends what is queued (waiting at most closeFlushTimeout: the peer
// may have stopped reading), then closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closing = true
	c.cond.Broadcast()
	c.mu.Unlock()
	t := time.NewTimer(closeFlushTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
	return c.Conn.Close()
}
