// Package syncengine runs the lifecycle of one kubectl devsync session:
// scan the local tree while connecting, the initial sync, the watch and its
// batches, the action after each batch (restart, signal, exec), following
// the workload to a new pod when the connection drops, the pod goes away
// or the app container restarts, and syncing again there.
//
// It takes a typed Config, a Connector that yields Sessions (one per
// connection to a pod's agent) and an Observer that is told what happens;
// it never prints and never imports cobra or pflag. The command layer
// (pkg/cmd/devsync) builds the Config from flags, connects through
// pkg/agentconn, and prints what the Observer hears.
package syncengine

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// Config is one devsync run.
type Config struct {
	// LocalDir is the tree to mirror.
	LocalDir string
	Ignore   filesync.IgnoreOptions
	// Delete removes remote files that do not exist locally in each
	// initial sync (--delete).
	Delete bool
	// Once syncs once and returns (--once); otherwise the run watches
	// until ctx ends.
	Once bool
	// Poll polls the local tree instead of using the OS's notifications.
	Poll bool
	// Action runs in the app's view after each batch that changed
	// something (nil: none).
	Action *syncproto.Action
	// ConnectTimeout bounds the wait for a pod with a ready agent at the
	// start; reconnects wait as long as ctx allows.
	ConnectTimeout time.Duration
	// ReconnectTimeout bounds one reconnect attempt's wait for a pod.
	ReconnectTimeout time.Duration
	// PollPod is how often the engine asks whether the pod is still the
	// one (deleted, replaced, app container restarted).
	PollPod time.Duration
	// Progress follows each initial sync (nil: none).
	Progress filesync.Progress
}

func (c *Config) defaults() {
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 2 * time.Minute
	}
	if c.ReconnectTimeout <= 0 {
		c.ReconnectTimeout = 30 * time.Second
	}
	if c.PollPod <= 0 {
		c.PollPod = time.Second
	}
}

// Session is one connection to one pod's agent with its devsync channel.
type Session interface {
	// Ref names the pod ("pod/demo-7d9f").
	Ref() string
	// Client is the devsync protocol client of the session.
	Client() *filesync.Client
	// Lost is closed when the connection is lost.
	Lost() <-chan struct{}
	// Gone says why the pod is no longer the one to sync into ("" while
	// it is).
	Gone(ctx context.Context) string
	Close()
}

// Connector opens sessions: it finds a pod with a ready agent (waiting up
// to timeout) and connects to it.
type Connector interface {
	Connect(ctx context.Context, timeout time.Duration) (Session, error)
}

// Observer hears what the engine does; the command layer prints it.
type Observer interface {
	// Connected: a session is open (first false after a reconnect).
	Connected(s Session, first bool)
	// Synced: a batch (or an initial sync) was applied; its summary may
	// hold per-file errors.
	Synced(sum *filesync.Summary)
	// ActionDone: the action ran after a batch; err is its failure.
	ActionDone(a syncproto.Action, took time.Duration, output string, err error)
	// Watching: the initial sync is done and the watch begins.
	Watching()
	// Reconnecting: the session ended for why; the engine follows the
	// workload.
	Reconnecting(why string)
	// Waiting: a reconnect attempt failed with err (told once per
	// distinct error).
	Waiting(err error)
	// SyncFailed: a sync failed as a whole (the watch goes on).
	SyncFailed(err error, afterReconnect bool)
}

// Engine is one run.
type Engine struct {
	cfg  Config
	conn Connector
	obs  Observer

	syncer  *filesync.Syncer
	watcher *filesync.Watcher
}

// New prepares a run; warn receives the local side's warnings (special
// files skipped, the watcher falling back to polling).
func New(cfg Config, conn Connector, obs Observer, warn func(string)) (*Engine, error) {
	cfg.defaults()
	syncer, err := filesync.NewSyncer(nil, filesync.Options{
		LocalDir: cfg.LocalDir,
		Ignore:   cfg.Ignore,
		Delete:   cfg.Delete,
		Progress: cfg.Progress,
		Warn:     warn,
	})
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, conn: conn, obs: obs, syncer: syncer}
	// The watch starts before the local tree is scanned, so that an edit
	// made during the initial sync is the watch's first batch instead of
	// being missed; the scan runs while the connection is being opened.
	if !cfg.Once {
		if e.watcher, err = filesync.NewWatcher(cfg.LocalDir, syncer.Ignorer(), filesync.WatchOptions{Poll: cfg.Poll, Warn: warn}); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// OnceError is a --once run whose sync went through with per-file errors.
type OnceError struct{ Err error }

func (e *OnceError) Error() string { return e.Err.Error() }
func (e *OnceError) Unwrap() error { return e.Err }

// Run syncs, then (without Once) watches until ctx ends, reconnecting as
// needed. It returns nil when ctx ends; a first connection that fails is
// returned as is; with Once, per-file failures are an *OnceError.
func (e *Engine) Run(ctx context.Context) error {
	if e.watcher != nil {
		defer e.watcher.Close()
	}
	e.syncer.Prescan()
	s, err := e.conn.Connect(ctx, e.cfg.ConnectTimeout)
	if err != nil {
		return err
	}
	defer func() {
		if s != nil { // nil after a reconnect that ctx interrupted
			s.Close()
		}
	}()
	e.obs.Connected(s, true)
	e.syncer.SetClient(s.Client())
	sum, err := e.syncer.InitialSync(ctx)
	if err != nil {
		if e.cfg.Once {
			return err
		}
		e.obs.SyncFailed(err, false)
	} else {
		e.synced(ctx, s, sum)
	}
	if e.cfg.Once {
		if err := sum.Err(); err != nil {
			return &OnceError{Err: err}
		}
		return nil
	}
	// The initial sync's scan, listing and plan are garbage now: give the
	// memory back before a watch that may last all day (with 100,000 files
	// the resident size while watching is otherwise the sync's peak).
	debug.FreeOSMemory()
	e.obs.Watching()
	for {
		why := e.watch(ctx, s)
		if ctx.Err() != nil {
			return nil
		}
		s.Close()
		e.obs.Reconnecting(why)
		if s = e.reconnect(ctx); s == nil {
			return nil
		}
		e.obs.Connected(s, false)
		e.syncer.SetClient(s.Client())
		sum, err := e.syncer.InitialSync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.obs.SyncFailed(err, true)
			continue
		}
		e.synced(ctx, s, sum)
	}
}

// watch syncs the watcher's batches over s until the session fails, the
// pod goes away, the app container restarts or ctx ends; it says why it
// stopped.
func (e *Engine) watch(ctx context.Context, s Session) string {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	why := make(chan string, 2)
	go func() {
		select {
		case <-s.Lost():
			why <- "the connection to " + s.Ref() + " was lost"
			cancel()
		case <-wctx.Done():
		}
	}()
	go func() {
		t := time.NewTicker(e.cfg.PollPod)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if msg := s.Gone(wctx); msg != "" {
				why <- msg
				cancel()
				return
			}
		}
	}()
	// Watch returns only with an error: the session's, or ctx's.
	err := e.syncer.Watch(wctx, e.watcher, func(sum *filesync.Summary) { e.synced(wctx, s, sum) })
	select {
	case msg := <-why:
		return msg
	default:
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return "the sync failed: " + err.Error()
}

// reconnect follows the workload to a pod with a ready agent, retrying with
// back-off until it works or ctx ends (nil then).
func (e *Engine) reconnect(ctx context.Context) Session {
	backoff := 250 * time.Millisecond
	last := ""
	for {
		s, err := e.conn.Connect(ctx, e.cfg.ReconnectTimeout)
		if err == nil {
			return s
		}
		if ctx.Err() != nil {
			return nil
		}
		if msg := err.Error(); msg != last {
			e.obs.Waiting(err)
			last = msg
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// synced reports a batch, then runs the action when something changed.
func (e *Engine) synced(ctx context.Context, s Session, sum *filesync.Summary) {
	if sum == nil {
		return
	}
	e.obs.Synced(sum)
	a := e.cfg.Action
	if a == nil || len(sum.Items) == len(sum.Errors) {
		return
	}
	start := time.Now()
	out, err := s.Client().Action(ctx, *a)
	if err != nil && ctx.Err() != nil {
		return // interrupted: nothing to say
	}
	e.obs.ActionDone(*a, time.Since(start), out, err)
}
