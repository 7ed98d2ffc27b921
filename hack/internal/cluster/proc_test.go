package cluster

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exitLeaderEnv makes the test binary, re-executed by
// TestExitedWaitsForEveryThread, listen on a port and end only its main
// thread: the thread group's leader becomes a zombie while the runtime's
// other threads live on and keep the listening socket open.
const exitLeaderEnv = "KDEV_TEST_EXIT_LEADER"

func init() {
	if os.Getenv(exitLeaderEnv) != "1" {
		return
	}
	// Package initialisation runs on the main thread (the leader).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0) // this thread only
}

// TestExitedWaitsForEveryThread: a process whose leader is a zombie while
// other threads still run is not Alive, and not Exited either: it still
// listens on its port. Once its last thread is gone, Exited turns true and
// the port is free.
func TestExitedWaitsForEveryThread(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), exitLeaderEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the helper's port: %v", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper: %q", line)
	}
	_, start, err := procStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	info := PidInfo{Pid: cmd.Process.Pid, StartTime: start}
	deadline := time.Now().Add(10 * time.Second)
	for info.Alive() {
		if time.Now().After(deadline) {
			t.Fatal("the helper's leader thread did not exit")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if info.Exited() {
		t.Fatal("Exited is true while the helper's other threads run")
	}
	if portHolder(port) == "" {
		t.Fatalf("port %d is not listened on: the helper's socket closed with its leader", port)
	}

	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitExited(info, 10*time.Second) {
		t.Fatal("Exited is still false 10s after SIGKILL")
	}
	if h := portHolder(port); h != "" {
		t.Fatalf("port %d is still held by %s after Exited", port, h)
	}
}
