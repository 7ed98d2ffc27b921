//go:build linux

package cluster

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
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

func TestListenInodes(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1923 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1923 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
`
	if got := listenInodes(strings.NewReader(tcp), 0x1923); !slices.Equal(got, []string{"4242"}) {
		t.Fatalf("6435: %v", got)
	}
	if got := listenInodes(strings.NewReader(tcp), 5000); !slices.Equal(got, []string{"4444"}) {
		t.Fatalf("5000: %v", got)
	}
	if got := listenInodes(strings.NewReader(tcp), 80); len(got) != 0 {
		t.Fatalf("80: %v", got)
	}
}

func TestParseStat(t *testing.T) {
	st, start, err := parseStat("1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 98765 1000 100 0\n")
	if err != nil || st != 'S' || start != 98765 {
		t.Fatalf("%c %d %v", st, start, err)
	}
}

func TestPidInfoAlive(t *testing.T) {
	_, start, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !(PidInfo{Pid: os.Getpid(), StartTime: start}).Alive() {
		t.Fatal("self not alive")
	}
	if (PidInfo{Pid: os.Getpid(), StartTime: start + 1}).Alive() {
		t.Fatal("reused pid counted as alive")
	}
}
