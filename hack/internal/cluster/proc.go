//go:build linux

package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PidInfo is what a pid file holds: enough to tell our process from another
// one that got the same pid later.
type PidInfo struct {
	Pid       int      `json:"pid"`
	StartTime uint64   `json:"startTime"` // /proc/<pid>/stat field 22, clock ticks since boot
	Args      []string `json:"args"`
}

// procStat returns the state letter and start time of pid.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStat(string(b))
}

// parseStat parses /proc/<pid>/stat; comm may contain spaces and parentheses.
func parseStat(s string) (state byte, start uint64, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, 0, fmt.Errorf("bad stat %q", s)
	}
	f := strings.Fields(s[i+2:]) // f[0] is field 3 (state)
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("bad stat %q", s)
	}
	start, err = strconv.ParseUint(f[19], 10, 64) // field 22
	return f[0][0], start, err
}

func procCmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// Alive reports whether the process recorded in info still runs (not a
// zombie, same start time).
func (p PidInfo) Alive() bool {
	if p.Pid <= 0 {
		return false
	}
	state, start, err := procStat(p.Pid)
	return err == nil && state != 'Z' && state != 'X' && start == p.StartTime
}

// Exited reports whether no thread of the process in info runs any more.
// Alive turns false as soon as the thread group's leader is a zombie, but
// the other threads of a multi-threaded process (any Go program) may still
// be exiting then, and they hold the process's files: its listening
// sockets close only when the last of them is gone. A zombie leader stays
// listed in its own /proc/<pid>/task until it is reaped; the others leave
// that list after they have released their files.
func (p PidInfo) Exited() bool {
	if p.Alive() {
		return false
	}
	_, start, err := procStat(p.Pid)
	if err != nil || start != p.StartTime {
		return true // reaped, or the pid is another process's now
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.Pid))
	return err != nil || len(tasks) <= 1
}

func readPidFile(file string) (PidInfo, error) {
	var p PidInfo
	b, err := os.ReadFile(file)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

// startDetached starts args in its own session with output appended to
// logFile and records it in pidFile. The returned channel is closed when the
// process exits while this program still runs.
func startDetached(args []string, logFile, pidFile string, env []string) (PidInfo, <-chan struct{}, error) {
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return PidInfo{}, nil, err
	}
	if err := os.MkdirAll(filepath.Dir(pidFile), 0o755); err != nil {
		return PidInfo{}, nil, err
	}
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return PidInfo{}, nil, err
	}
	defer log.Close()
	fmt.Fprintf(log, "\n==== %s kdev starting: %s\n", time.Now().Format(time.RFC3339), shellQuote(args))
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return PidInfo{}, nil, err
	}
	defer devnull.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, log, log
	cmd.Dir = "/"
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return PidInfo{}, nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	_, start, err := procStat(cmd.Process.Pid)
	if err != nil {
		return PidInfo{}, nil, fmt.Errorf("started %s but cannot read its stat: %w", args[0], err)
	}
	info := PidInfo{Pid: cmd.Process.Pid, StartTime: start, Args: args}
	b, _ := json.Marshal(info)
	if err := writeFileAtomic(pidFile, append(b, '\n'), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return PidInfo{}, nil, err
	}
	return info, exited, nil
}

// stopPid stops the process recorded in info: SIGTERM, wait, SIGKILL. A pid
// whose start time differs (reused) is never signalled.
func stopPid(info PidInfo, grace time.Duration) error {
	if info.Exited() {
		return nil
	}
	if err := syscall.Kill(info.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	if waitExited(info, grace) {
		return nil
	}
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	if waitExited(info, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("pid %d did not exit after SIGKILL", info.Pid)
}

// waitExited waits up to timeout for info.Exited and says whether it came.
func waitExited(info PidInfo, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if info.Exited() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listPids returns the pids of all processes.
func listPids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// listenInodes parses /proc/net/tcp{,6} text and returns the socket inodes
// listening on port.
func listenInodes(r io.Reader, port int) []string {
	var inodes []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" { // 0A = TCP_LISTEN
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(f[1][i+1:], 16, 32)
		if err == nil && int(p) == port {
			inodes = append(inodes, f[9])
		}
	}
	return inodes
}

// portHolder describes who listens on TCP port, or "" when nobody does.
func portHolder(port int) string {
	var inodes []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if b, err := os.ReadFile(f); err == nil {
			inodes = append(inodes, listenInodes(bytes.NewReader(b), port)...)
		}
	}
	if len(inodes) == 0 {
		return ""
	}
	want := map[string]bool{}
	for _, in := range inodes {
		want["socket:["+in+"]"] = true
	}
	for _, pid := range listPids() {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && want[l] {
				return fmt.Sprintf("pid %d (%s)", pid, shellQuote(procCmdline(pid)))
			}
		}
	}
	return "an unknown process (socket inode " + strings.Join(inodes, ",") + ")"
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tailFile returns the last n lines of a file (reading at most its last 256 KiB).
func tailFile(file string, n int) string {
	f, err := os.Open(file)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 256<<10 {
		_, _ = f.Seek(st.Size()-256<<10, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return tail(string(b), n)
}

// Lock takes an exclusive lock (in the cache dir, which outlives the state)
// so that two `kdev cluster up/down` runs do not interleave.
func (c Config) Lock() (unlock func(), err error) {
	if err := os.MkdirAll(c.CacheDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(c.CacheDir, ".cluster.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(c.Out, "waiting for another kdev cluster command to finish ...\n")
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, err
		}
	}
	return func() { f.Close() }, nil
}

// StartDaemon starts args as a background process of the test bed (its own
// session, output appended to logFile, recorded in pidFile), for the
// helpers kdev runs beside the cluster (the link emulator).
func StartDaemon(args []string, logFile, pidFile string) (PidInfo, error) {
	info, _, err := startDetached(args, logFile, pidFile, os.Environ())
	return info, err
}

// DaemonRunning returns the process recorded in pidFile and whether it runs.
func DaemonRunning(pidFile string) (PidInfo, bool) {
	info, err := readPidFile(pidFile)
	if err != nil {
		return info, false
	}
	return info, info.Alive()
}

// StopDaemon stops the process recorded in pidFile (SIGTERM, then SIGKILL)
// and removes the file; no file is not an error.
func StopDaemon(pidFile string) error {
	info, err := readPidFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := stopPid(info, 5*time.Second); err != nil {
		return err
	}
	return os.Remove(pidFile)
}
