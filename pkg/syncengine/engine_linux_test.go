package syncengine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncserver"
)

// pipeSession is a session over a pipe to a real sync server on a temp
// root; the test loses it or makes its pod "gone" at will.
type pipeSession struct {
	n      int
	client *filesync.Client
	conn   net.Conn
	lost   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	gone   string
}

func (s *pipeSession) Ref() string              { return "pod/demo-" + string(rune('0'+s.n)) }
func (s *pipeSession) Client() *filesync.Client { return s.client }
func (s *pipeSession) Lost() <-chan struct{}    { return s.lost }
func (s *pipeSession) Close()                   { s.client.Close(); s.conn.Close() }

func (s *pipeSession) Gone(context.Context) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone
}

func (s *pipeSession) lose() { s.once.Do(func() { s.conn.Close(); close(s.lost) }) }

// pipeConnector connects to root; it refuses while down.
type pipeConnector struct {
	t    *testing.T
	root string
	srv  *syncserver.Server

	mu       sync.Mutex
	sessions []*pipeSession
	down     bool
	actions  []syncproto.Action
}

var errDown = errors.New("no pod with a ready agent")

func (c *pipeConnector) Connect(ctx context.Context, _ time.Duration) (Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, errDown
	}
	fsys, err := rootfs.OpenDir(c.root)
	if err != nil {
		return nil, err
	}
	a, b := net.Pipe()
	go func() {
		defer fsys.Close()
		c.srv.Serve(context.Background(), b, syncserver.Root{
			FS: fsys, Owner: rootfs.Owner{UID: -1, GID: -1}, Workdir: "/app",
			Action: func(_ context.Context, act syncproto.Action) (string, error) {
				c.mu.Lock()
				defer c.mu.Unlock()
				c.actions = append(c.actions, act)
				return "", nil
			},
		})
		b.Close()
	}()
	cl, err := filesync.NewClient(ctx, a, filesync.ClientOptions{Name: "test"})
	if err != nil {
		a.Close()
		return nil, err
	}
	s := &pipeSession{n: len(c.sessions) + 1, client: cl, conn: a, lost: make(chan struct{})}
	c.sessions = append(c.sessions, s)
	return s, nil
}

func (c *pipeConnector) session(i int) *pipeSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i >= len(c.sessions) {
		return nil
	}
	return c.sessions[i]
}

func (c *pipeConnector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

func (c *pipeConnector) actionCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.actions)
}

func (c *pipeConnector) setDown(d bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = d
}

// events records what the engine told its observer.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

func (e *events) count(prefix string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, l := range e.log {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (e *events) has(prefix string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.log {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func (e *events) Connected(s Session, first bool) {
	if first {
		e.add("connected " + s.Ref())
	} else {
		e.add("reconnected " + s.Ref())
	}
}
func (e *events) Synced(sum *filesync.Summary) { e.add(fmt.Sprintf("synced %d files", sum.Files)) }
func (e *events) ActionDone(a syncproto.Action, _ time.Duration, _ string, err error) {
	e.add("action " + a.Kind)
}
func (e *events) Watching()               { e.add("watching") }
func (e *events) Reconnecting(why string) { e.add("reconnecting: " + why) }
func (e *events) Waiting(err error)       { e.add("waiting: " + err.Error()) }
func (e *events) SyncFailed(err error, after bool) {
	e.add("failed: " + err.Error())
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool, obs ...*events) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, o := range obs {
				o.mu.Lock()
				t.Logf("events: %q", o.log)
				o.mu.Unlock()
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func has(name, want string) func() bool {
	return func() bool {
		b, err := os.ReadFile(name)
		return err == nil && string(b) == want
	}
}

func setup(t *testing.T) (local, app string, c *pipeConnector) {
	t.Helper()
	root := t.TempDir()
	app = filepath.Join(root, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	return t.TempDir(), app, &pipeConnector{t: t, root: root, srv: syncserver.New(nil)}
}

// TestFollowsTheWorkload: the engine syncs, watches, and when the session
// is lost or its pod goes away it waits for a new one, syncs what changed
// meanwhile, and watches again; the action runs after each batch.
func TestFollowsTheWorkload(t *testing.T) {
	local, app, conn := setup(t)
	write(t, filepath.Join(local, "a.txt"), "1")
	obs := &events{}
	eng, err := New(Config{LocalDir: local, PollPod: 10 * time.Millisecond, Action: &syncproto.Action{Kind: "restart"}}, conn, obs, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()

	eventually(t, "the initial sync", has(filepath.Join(app, "a.txt"), "1"))
	eventually(t, "the watch", func() bool { return obs.has("watching") })
	write(t, filepath.Join(local, "a.txt"), "2")
	eventually(t, "the first edit", has(filepath.Join(app, "a.txt"), "2"))
	eventually(t, "the first edit's report", func() bool { return obs.count("synced ") >= 2 }, obs)

	// The connection drops while no pod is ready; an edit meanwhile.
	conn.setDown(true)
	conn.session(0).lose()
	eventually(t, "the reconnect attempt", func() bool { return obs.has("waiting: " + errDown.Error()) })
	write(t, filepath.Join(local, "b.txt"), "new")
	write(t, filepath.Join(local, "a.txt"), "3")
	conn.setDown(false)
	eventually(t, "the edits made while disconnected", func() bool {
		return has(filepath.Join(app, "a.txt"), "3")() && has(filepath.Join(app, "b.txt"), "new")()
	})
	// The loss is seen first by SSH (Lost) or by the sync's own channel.
	if !obs.has("reconnecting: ") || !obs.has("reconnected pod/demo-2") {
		t.Errorf("events: %q", obs.log)
	}

	// The pod is deleted: the engine leaves it for the next one.
	conn.session(1).mu.Lock()
	conn.session(1).gone = "pod/demo-2 was deleted"
	conn.session(1).mu.Unlock()
	eventually(t, "the third session", func() bool { return conn.count() == 3 })
	before := conn.actionCount()
	write(t, filepath.Join(local, "a.txt"), "4")
	eventually(t, "an edit after the pod was replaced", has(filepath.Join(app, "a.txt"), "4"))
	if !obs.has("reconnecting: pod/demo-2 was deleted") {
		t.Errorf("events: %q", obs.log)
	}
	// The action runs after a batch that changed something.
	eventually(t, "the action after the last edit", func() bool { return conn.actionCount() > before }, obs)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestOnce: one sync, then Run returns; the first connection's failure is
// returned as is.
func TestOnce(t *testing.T) {
	local, app, conn := setup(t)
	write(t, filepath.Join(local, "dir/f"), "x")
	eng, err := New(Config{LocalDir: local, Once: true}, conn, &events{}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !has(filepath.Join(app, "dir/f"), "x")() {
		t.Fatal("not synced")
	}
	conn.setDown(true)
	eng, err = New(Config{LocalDir: local, Once: true}, conn, &events{}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Run(context.Background()); !errors.Is(err, errDown) {
		t.Fatalf("Run while no pod is ready = %v, want %v", err, errDown)
	}
}

// TestInterruptedWhileWaiting: Ctrl-C while no pod is ready after the
// session was lost ends the run cleanly (kubectl devsync exits 0).
func TestInterruptedWhileWaiting(t *testing.T) {
	local, app, conn := setup(t)
	write(t, filepath.Join(local, "a.txt"), "1")
	obs := &events{}
	eng, err := New(Config{LocalDir: local, PollPod: 10 * time.Millisecond}, conn, obs, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	eventually(t, "the initial sync", has(filepath.Join(app, "a.txt"), "1"))
	eventually(t, "the watch", func() bool { return obs.has("watching") })
	conn.setDown(true)
	conn.session(0).lose()
	eventually(t, "the reconnect attempt", func() bool { return obs.has("waiting: ") })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run interrupted while waiting for a pod = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
