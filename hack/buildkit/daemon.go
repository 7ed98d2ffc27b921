//go:build linux

package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// DaemonOptions configure Start.
type DaemonOptions struct {
	// Log receives what Start and Stop do (one line each), and the tail of
	// buildkitd's log when it fails. Nil: discarded.
	Log io.Writer
	// StateDir is buildkitd's root: its build cache, kept between daemons.
	// Empty: DefaultStateDir(). One daemon at a time uses a state
	// directory: Start waits for the one before to stop.
	StateDir string
	// ReadyTimeout bounds the wait for the daemon to answer. Zero: one minute.
	ReadyTimeout time.Duration
}

// Daemon is a buildkitd running under rootlesskit as User().
type Daemon struct {
	// Addr is the daemon's private socket, as buildctl --addr takes it.
	Addr string
	// StateDir is its root (the build cache).
	StateDir string
	// LogFile holds buildkitd's and rootlesskit's own output.
	LogFile string

	run     string // its XDG_RUNTIME_DIR, removed by Stop
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	unlock  func()
	stopped bool
}

// Start runs buildkitd under rootlesskit as the test bed's unprivileged user
// on a private socket and waits until it answers (buildctl debug workers).
// Ensure must have run (it is not called here: it needs root and may take a
// minute the first time).
func Start(ctx context.Context, opts DaemonOptions) (*Daemon, error) {
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	for _, b := range binaries() {
		if !built(b.name, b.version) {
			return nil, fmt.Errorf("%s %s is not built in %s: run buildkit.Ensure (`kdev build` does) first", b.name, b.version, BinDir())
		}
	}
	acct, err := lookupUser()
	if err != nil {
		return nil, err
	}
	state := opts.StateDir
	if state == "" {
		state = DefaultStateDir()
	}
	if state, err = filepath.Abs(state); err != nil {
		return nil, err
	}
	if err := ownedDir(state, acct, 0o700); err != nil {
		return nil, err
	}
	// buildkitd locks its root and fails when another holds it; waiting
	// here instead lets two builds of one machine take turns.
	unlock, err := lockFile(ctx, state+".lock", log, "another buildkitd on "+state)
	if err != nil {
		return nil, err
	}
	d := &Daemon{StateDir: state, LogFile: state + ".log", unlock: unlock, exited: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			d.cleanup()
		}
	}()
	if err := os.MkdirAll(runDir(), 0o755); err != nil {
		return nil, err
	}
	if d.run, err = os.MkdirTemp(runDir(), "d-"); err != nil {
		return nil, err
	}
	if err := ownedDir(d.run, acct, 0o700); err != nil {
		return nil, err
	}
	sock := filepath.Join(d.run, "buildkitd.sock")
	d.Addr = "unix://" + sock
	cfg := filepath.Join(d.run, "buildkitd.toml")
	if err := os.WriteFile(cfg, []byte(daemonConfig(testbed.RegistryAddr(), testbed.RegistryLinkAddr())), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(d.LogFile)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	args := daemonArgs(Bin("buildkitd"), d.Addr, state, cfg, filepath.Join(d.run, "rootlesskit"))
	d.cmd = exec.Command(Bin("rootlesskit"), args...)
	d.cmd.Dir = d.run
	d.cmd.Env = userEnv(acct, d.run)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(acct.uid), Gid: uint32(acct.gid), Groups: []uint32{}},
		Setpgid:    true,
		// If kdev dies, the daemon goes too.
		Pdeathsig: syscall.SIGTERM,
	}
	start := time.Now()
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting rootlesskit buildkitd: %w", err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()

	timeout := opts.ReadyTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	if err := d.waitReady(ctx, timeout); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "buildkitd %s (rootless, as %s) ready in %s on %s\n", testbed.BuildKitVersion, acct.name,
		time.Since(start).Round(10*time.Millisecond), sock)
	ok = true
	return d, nil
}

// waitReady polls `buildctl debug workers` until the daemon answers, it
// exits, or the time is up.
func (d *Daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("buildkitd exited (%v) before answering; its log %s ends:\n%s", d.waitErr, d.LogFile, d.logTail(20))
		default:
		}
		if _, err := os.Stat(strings.TrimPrefix(d.Addr, "unix://")); err == nil {
			out, err := exec.CommandContext(ctx, Bin("buildctl"), "--addr", d.Addr, "debug", "workers").CombinedOutput()
			if err == nil {
				return nil
			}
			last = strings.TrimSpace(string(out))
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("buildkitd did not answer within %s (last: %s); its log %s ends:\n%s", timeout, last, d.LogFile, d.logTail(20))
			}
			return ctx.Err()
		case <-d.exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *Daemon) logTail(n int) string {
	b, _ := os.ReadFile(d.LogFile)
	return tail(string(b), n)
}

// Stop stops the daemon (SIGTERM to rootlesskit, which passes it on to
// buildkitd; SIGKILL to its process group after 10 s) and removes its
// private directory. The state directory stays.
func (d *Daemon) Stop() error {
	if d.stopped {
		return nil
	}
	d.stopped = true
	err := d.terminate()
	d.cleanup()
	return err
}

func (d *Daemon) terminate() error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	select {
	case <-d.exited:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
	return fmt.Errorf("buildkitd did not stop within 10 s of SIGTERM: killed (see %s)", d.LogFile)
}

func (d *Daemon) cleanup() {
	if d.cmd != nil && d.cmd.Process != nil {
		select {
		case <-d.exited:
		default:
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.exited
		}
	}
	if d.run != "" {
		_ = os.RemoveAll(d.run)
	}
	if d.unlock != nil {
		d.unlock()
		d.unlock = nil
	}
}

// ownedDir creates dir (and its parents, as root's) and makes it the user's
// with mode perm. An existing directory of another user is refused.
func ownedDir(dir string, a account, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("stat %s: no owner", dir)
	}
	switch int(st.Uid) {
	case a.uid:
	case 0:
		if err := os.Chown(dir, a.uid, a.gid); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s belongs to uid %d, not to %s (uid %d): remove it or give another state directory", dir, st.Uid, a.name, a.uid)
	}
	return os.Chmod(dir, perm)
}

// userEnv is the daemon's environment: the user's, with its own runtime directory.
func userEnv(a account, run string) []string {
	return []string{
		"HOME=" + a.home,
		"USER=" + a.name,
		"LOGNAME=" + a.name,
		"PATH=" + systemPath,
		"XDG_RUNTIME_DIR=" + run,
	}
}
