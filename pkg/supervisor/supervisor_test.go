//go:build linux

package supervisor

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentlog"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func lines(path string) []string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

type run struct {
	s    *Supervisor
	sigs chan os.Signal
	done chan int
	err  error
	log  *syncBuffer // the supervisor's records
}

// syncBuffer is a bytes.Buffer for a logger used from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs a supervisor over `sh -c script` in a temp dir ($PWD).
func start(t *testing.T, script string, mod func(*Options)) (*run, string) {
	t.Helper()
	dir := t.TempDir()
	r := &run{sigs: make(chan os.Signal, 4), done: make(chan int, 1), log: &syncBuffer{}}
	opts := Options{Argv: []string{"sh", "-c", script}, Dir: dir, Grace: 5 * time.Second, Signals: r.sigs, Logger: agentlog.New(r.log, slog.LevelDebug)}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.s = s
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		code, err := s.Run(ctx)
		r.err = err
		r.done <- code
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Error("the supervisor did not stop")
		}
		if t.Failed() {
			t.Logf("the supervisor's log:\n%s", r.log.String())
		}
	})
	return r, dir
}

func (r *run) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		r.done <- code // for the cleanup
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not exit")
		return 0
	}
}

func TestExitCodePropagates(t *testing.T) {
	tests := []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -9 $$", 128 + 9},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			r, _ := start(t, tt.script, nil)
			if got := r.wait(t); got != tt.want {
				t.Errorf("exit code %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRestartKeepsSupervisor(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		{"polite child", "echo $$ >> pids; exec sleep 1000"},
		// Ignores SIGTERM: killed after the grace period.
		{"stubborn child", "trap '' TERM; echo $$ >> pids; exec sleep 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := start(t, tt.script, func(o *Options) { o.Grace = 200 * time.Millisecond })
			pids := filepath.Join(dir, "pids")
			waitFor(t, "the first child", func() bool { return len(lines(pids)) == 1 })
			st, err := r.s.Restart(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Restarts != 1 || st.PID == 0 {
				t.Errorf("status %+v", st)
			}
			waitFor(t, "the second child", func() bool { return len(lines(pids)) == 2 })
			p := lines(pids)
			if p[0] == p[1] {
				t.Error("same PID after a restart")
			}
			// SIGUSR1 restarts too.
			r.sigs <- syscall.SIGUSR1
			waitFor(t, "the third child", func() bool { return len(lines(pids)) == 3 })
			waitFor(t, "the SIGUSR1 restart in the log", func() bool {
				return strings.Contains(r.log.String(), `level=INFO msg="restarting the app" on=SIGUSR1`)
			})
			if tt.name == "stubborn child" && !strings.Contains(r.log.String(), `level=WARN msg="the app did not stop within the grace period: killing it" grace=200ms`) {
				t.Errorf("no kill in the log:\n%s", r.log.String())
			}
			select {
			case code := <-r.done:
				t.Fatalf("the supervisor exited (%d) during restarts", code)
			default:
			}
		})
	}
}

func TestSignalsForwarded(t *testing.T) {
	script := `trap 'echo hup >> log' HUP; trap 'echo term >> log; exit 7' TERM; echo ready >> log; while :; do sleep 0.02; done`
	r, dir := start(t, script, nil)
	log := filepath.Join(dir, "log")
	waitFor(t, "the child", func() bool { return len(lines(log)) == 1 })
	r.sigs <- syscall.SIGHUP
	waitFor(t, "SIGHUP in the child", func() bool { return strings.Contains(strings.Join(lines(log), ","), "hup") })
	if err := r.s.Signal(context.Background(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second SIGHUP", func() bool { return strings.Count(strings.Join(lines(log), ","), "hup") == 2 })
	r.sigs <- syscall.SIGTERM
	if code := r.wait(t); code != 7 {
		t.Errorf("exit code %d, want the child's 7", code)
	}
}

func TestKeepRunningAndSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "supervisor.sock")
	r, dir := start(t, "echo run >> runs; exit 1", func(o *Options) { o.KeepRunning = true; o.Socket = sock })
	runs := filepath.Join(dir, "runs")
	waitFor(t, "the first run", func() bool { return len(lines(runs)) == 1 })
	waitFor(t, "the exit to be recorded", func() bool { return r.s.Status().LastExit == 1 })
	waitFor(t, "the exit in the log", func() bool {
		return strings.Contains(r.log.String(), `level=WARN msg="the app exited; waiting for a restart request" exit_code=1`)
	})
	ctx := context.Background()
	out, err := Request(ctx, sock, "status")
	if err != nil || !strings.HasPrefix(out, "ok pid=0 restarts=0 last-exit=1") {
		t.Fatalf("status: %q %v", out, err)
	}
	if out, err := Request(ctx, sock, "restart"); err != nil || !strings.Contains(out, "restarts=1") {
		t.Fatalf("restart: %q %v", out, err)
	}
	waitFor(t, "the second run", func() bool { return len(lines(runs)) == 2 })
	if !strings.Contains(r.log.String(), `level=DEBUG msg="control socket request" command=restart`) ||
		!strings.Contains(r.log.String(), `level=INFO msg="started the app" command=sh pid=`) {
		t.Errorf("the log:\n%s", r.log.String())
	}
	if _, err := Request(ctx, sock, "signal NOPE"); err == nil || !strings.Contains(err.Error(), "unknown signal") {
		t.Errorf("bad signal: %v", err)
	}
	if _, err := Request(ctx, sock, "rm -rf /"); err == nil {
		t.Error("an unknown command was accepted")
	}
	select {
	case code := <-r.done:
		t.Fatalf("exited with %d despite KeepRunning", code)
	default:
	}
}

func TestNoCommand(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("no error without a command")
	}
	if _, err := New(Options{Argv: []string{"/does/not/exist"}}); err == nil {
		t.Error("no error for a missing command")
	}
}
