// Package teardown checks that `kdev cluster down` leaves nothing of the
// local cluster behind. It runs last in `make test` and only when
// KDEV_E2E_TEARDOWN=1, because it stops the cluster.
package teardown

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

func TestClusterDownLeavesNothing(t *testing.T) {
	if os.Getenv("KDEV_E2E_TEARDOWN") != "1" {
		t.Skip("set KDEV_E2E_TEARDOWN=1 to stop the local cluster and check what is left")
	}
	kdev := filepath.Join("..", "..", "..", "bin", "kdev")
	if _, err := os.Stat(kdev); err != nil {
		t.Fatalf("%s is not built: run make build", kdev)
	}
	// The cluster must be up before, or the test proves nothing.
	if out, err := exec.Command(kdev, "cluster", "status").CombinedOutput(); err != nil {
		t.Fatalf("the local cluster is not healthy before the teardown (kdev cluster status: %v):\n%s", err, out)
	}
	if len(leftovers(t)) == 0 {
		t.Fatal("found no process, mount or network namespace of a running cluster: the leftover checks cannot see one")
	}
	for i := 1; i <= 2; i++ { // down must be idempotent
		if out, err := exec.Command(kdev, "cluster", "down").CombinedOutput(); err != nil {
			t.Fatalf("kdev cluster down (run %d): %v\n%s", i, err, out)
		}
		if left := leftovers(t); len(left) > 0 {
			t.Fatalf("after kdev cluster down (run %d), left behind:\n%s", i, strings.Join(left, "\n"))
		}
	}
}

// leftovers lists processes, mounts, network namespaces and links of the
// local cluster that exist now.
func leftovers(t *testing.T) []string {
	t.Helper()
	var left []string
	ours := []string{testbed.StateDir(), testbed.RunDir(), testbed.BinDir()}
	mentionsOurs := func(s string) bool {
		for _, p := range ours {
			if strings.Contains(s, p) {
				return true
			}
		}
		return false
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	self := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		pid := filepath.Base(p)
		if pid == self {
			continue
		}
		if zombie(p) {
			// Exited and holding nothing but its pid: where init does not
			// reap (as on this kind of machine), orphaned container processes
			// stay zombies after their shim is gone.
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue // exited meanwhile
		}
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		exe, _ := os.Readlink(filepath.Join(p, "exe"))
		cgroup, _ := os.ReadFile(filepath.Join(p, "cgroup"))
		if mentionsOurs(args) || mentionsOurs(exe) || strings.Contains(string(cgroup), "/kubepods") {
			left = append(left, "process "+pid+": "+args)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if mentionsOurs(line) || strings.Contains(line, "/run/netns/cni-") {
			left = append(left, "mount: "+line)
		}
	}
	netns, _ := filepath.Glob("/var/run/netns/cni-*")
	for _, n := range netns {
		left = append(left, "network namespace "+n)
	}
	if _, err := os.Stat("/sys/class/net/kdev0"); err == nil {
		left = append(left, "network link kdev0")
	}
	// A loop device still attached to the node disk's image (deleted or not).
	backing, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, b := range backing {
		if f, err := os.ReadFile(b); err == nil && mentionsOurs(string(f)) {
			left = append(left, "loop device "+strings.Split(b, "/")[3]+": "+strings.TrimSpace(string(f)))
		}
	}
	return left
}

// zombie reports whether the process at /proc/<pid> has exited and waits to
// be reaped (state Z in /proc/<pid>/stat).
func zombie(proc string) bool {
	stat, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself hold spaces or parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
