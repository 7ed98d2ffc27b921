// Package keepalive is the liveness check both ends of a devssh/devsync SSH
// connection run, the laptop's client (pkg/sshclient) and the agent's
// server (pkg/sshserver): one keepalive request at a time, and a missed
// interval only when nothing at all arrived from the peer. It imports only
// the standard library, so both towers may share it.
package keepalive

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// Conn is a net.Conn that records when bytes last arrived from the peer.
type Conn struct {
	net.Conn
	last atomic.Int64 // UnixNano of the last Read that returned bytes
}

// NewConn wraps c.
func NewConn(c net.Conn) *Conn { return &Conn{Conn: c} }

func (a *Conn) Read(p []byte) (int, error) {
	n, err := a.Conn.Read(p)
	if n > 0 {
		a.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// ReadSince says whether bytes arrived at or after t.
func (a *Conn) ReadSince(t time.Time) bool { return a.last.Load() >= t.UnixNano() }

// ErrMissed is a peer that answered no keepalive, and sent nothing at all,
// for the given number of intervals in a row.
var ErrMissed = errors.New("the peer stopped answering keepalives")

// Run checks the peer every interval until done is closed (it returns nil
// then): send sends one keepalive request and waits for its answer; one is
// in flight at a time and its answer is waited for one interval. An
// interval without the answer counts as missed only when nothing at all
// arrived on c during it: on a slow link busy with an upload the answer
// waits behind the queued data (seconds, or minutes at 1 Mbit/s with SSH's
// windows full) while the peer's other bytes keep arriving. Run returns
// send's error, or ErrMissed after max missed intervals in a row; the
// caller closes the connection.
func Run(done <-chan struct{}, interval time.Duration, max int, c *Conn, send func() error) error {
	missed := 0
	t := time.NewTicker(interval)
	defer t.Stop()
	var answer chan error // of the keepalive in flight; nil when none is
	for {
		select {
		case <-done:
			return nil
		case <-t.C:
		}
		if answer == nil {
			answer = make(chan error, 1)
			go func(answer chan<- error) { answer <- send() }(answer)
		}
		waited := time.Now()
		select {
		case err := <-answer:
			answer = nil
			if err != nil {
				return err
			}
			missed = 0
		case <-time.After(interval):
			if c.ReadSince(waited) {
				missed = 0
				continue
			}
			if missed++; missed >= max {
				return ErrMissed
			}
		case <-done:
			return nil
		}
	}
}
