//go:build linux

package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// netnsDir is where containerd 1.6's CRI plugin creates pod network
// namespaces (cni-<uuid>); it is not configurable there.
const netnsDir = "/var/run/netns"

// unescapeMountinfo decodes the octal escapes (\040 etc.) of mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsUnder parses mountinfo and returns the mount points equal to or below
// one of roots, deepest first (each listed once).
func mountsUnder(r io.Reader, roots ...string) []string {
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		for _, root := range roots {
			root = filepath.Clean(root)
			if (mp == root || strings.HasPrefix(mp, root+"/")) && !seen[mp] {
				seen[mp] = true
				out = append(out, mp)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		di, dj := strings.Count(out[i], "/"), strings.Count(out[j], "/")
		if di != dj {
			return di > dj
		}
		return out[i] > out[j]
	})
	return out
}

// unmountUnder unmounts everything at or below roots, deepest first, and
// repeats while something is left (stacked mounts); lazily when busy.
func unmountUnder(roots ...string) error {
	var last []string
	for round := 0; round < 10; round++ {
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		mps := mountsUnder(f, roots...)
		f.Close()
		if len(mps) == 0 {
			return nil
		}
		last = mps
		for _, mp := range mps {
			if err := syscall.Unmount(mp, 0); err != nil {
				if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
					continue // not a mount point (any more)
				}
				_ = syscall.Unmount(mp, syscall.MNT_DETACH)
			}
		}
	}
	return fmt.Errorf("mounts left after unmounting: %s", strings.Join(last, ", "))
}

// netnsInodesInUse returns the inodes of network namespaces that processes are in.
func netnsInodesInUse() map[uint64]bool {
	used := map[uint64]bool{}
	for _, pid := range listPids() {
		var st syscall.Stat_t
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err == nil {
			used[st.Ino] = true
		}
	}
	return used
}

// removeStaleCNINetns deletes cni-* network namespaces that no process is in.
// Call it only when our containerd does not run: containerd creates a netns
// before it starts the sandbox's pause process.
func removeStaleCNINetns() (removed []string) {
	ents, _ := os.ReadDir(netnsDir)
	used := netnsInodesInUse()
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "cni-") {
			continue
		}
		p := filepath.Join(netnsDir, e.Name())
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil && used[st.Ino] {
			continue
		}
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
		if err := os.Remove(p); err == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

// deleteBridge removes our CNI bridge if present.
func deleteBridge(name string) error {
	if !linkExists(name) {
		return nil
	}
	if out, err := exec.Command("ip", "link", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link delete %s: %v: %s", name, err, out)
	}
	return nil
}

// ourIptablesRules picks, from `iptables -t T -S` output, the -A rules that
// mention our bridge or pod subnet, returned as argument lists for -D.
func ourIptablesRules(rulesOut string, bridge, podCIDR string) [][]string {
	var del [][]string
	for _, line := range strings.Split(rulesOut, "\n") {
		if !strings.HasPrefix(line, "-A ") {
			continue
		}
		f := splitRule(line)
		mine := false
		for i, a := range f {
			if a == bridge || a == podCIDR {
				mine = true
			}
			if (a == "-i" || a == "-o") && i+1 < len(f) && f[i+1] == bridge {
				mine = true
			}
		}
		if mine {
			f[0] = "-D"
			del = append(del, f)
		}
	}
	return del
}

// splitRule splits an iptables -S line, honouring double quotes.
func splitRule(line string) []string {
	var out []string
	var cur strings.Builder
	inQ, have := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '"':
			inQ = !inQ
			have = true
		case ch == '\\' && inQ && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == ' ' && !inQ:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(ch)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// removeIptablesRules deletes rules that mention our bridge or pod subnet.
func removeIptablesRules(bridge, podCIDR string) (n int) {
	if _, err := exec.LookPath("iptables"); err != nil {
		return 0
	}
	for _, table := range []string{"filter", "nat", "mangle"} {
		out, err := exec.Command("iptables", "-w", "-t", table, "-S").Output()
		if err != nil {
			continue
		}
		for _, r := range ourIptablesRules(string(out), bridge, podCIDR) {
			if exec.Command("iptables", append([]string{"-w", "-t", table}, r...)...).Run() == nil {
				n++
			}
		}
	}
	return n
}

// shimPids finds containerd shims (and other processes) whose command line
// names our containerd socket; they live outside containerd's process.
func shimPids(socket string) []int {
	var pids []int
	self := os.Getpid()
	for _, pid := range listPids() {
		if pid == self {
			continue
		}
		args := procCmdline(pid)
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i, a := range args {
			if (a == "-address" || a == "--address") && i+1 < len(args) && args[i+1] == socket {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// descendants returns the pids of every process below roots (children,
// grandchildren, ...), found through the ppid field of /proc/<pid>/stat.
func descendants(roots []int) []int {
	children := map[int][]int{}
	for _, pid := range listPids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// killAll SIGKILLs pids and waits until they are gone.
func killAll(pids []int) {
	infos := make([]PidInfo, 0, len(pids))
	for _, pid := range pids {
		if _, start, err := procStat(pid); err == nil {
			infos = append(infos, PidInfo{Pid: pid, StartTime: start})
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range infos {
		for !p.Exited() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// removeEmptyCgroups removes empty kubepods cgroups (deepest first) in every
// cgroup v1 hierarchy and in cgroup v2; busy ones stay (rmdir fails).
func removeEmptyCgroups() {
	var dirs []string
	for _, base := range []string{"/sys/fs/cgroup"} {
		ents, _ := os.ReadDir(base)
		cands := []string{filepath.Join(base, "kubepods")}
		for _, e := range ents {
			cands = append(cands, filepath.Join(base, e.Name(), "kubepods"))
		}
		for _, c := range cands {
			_ = filepath.WalkDir(c, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		_ = syscall.Rmdir(d)
	}
}

// removePodLogLinks removes /var/log/containers symlinks that point into our pod logs.
func removePodLogLinks(podLogsDir string) {
	const dir = "/var/log/containers"
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, podLogsDir+"/") {
			_ = os.Remove(p)
		}
	}
}
