//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// watchMem watches a tree of --watch-files small files with kubectl
// devsync and reads the client's memory (VmHWM, the peak, initial sync
// included, and VmRSS) once it watches and again after one edit has
// arrived in the app container.
func (b *bench) watchMem(ctx context.Context, pod *corev1.Pod, res *results) error {
	local, err := os.MkdirTemp("", "bench-watch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(local)
	start := time.Now()
	dirs, err := writeSmallTree(local, *watchN)
	if err != nil {
		return err
	}
	res.watchFiles, res.watchDirs = *watchN, dirs
	b.logf("watch tree: %d files in %d directories, written in %s", *watchN, dirs, time.Since(start).Round(time.Millisecond))
	const dest = "/srv/watchmem"
	defer func() {
		_, _ = b.kubectl(context.Background(), nil, "exec", "-n", b.ns, pod.Name, "-c", "app", "--", "rm", "-rf", dest)
	}()
	start = time.Now()
	p, err := b.startWatch(ctx, 10*time.Minute, local, "deploy/demo", "--dest", dest)
	if err != nil {
		return err
	}
	defer p.stop()
	res.watchSync = time.Since(start)
	pid, err := pluginPid(p.cmd.Process.Pid, "kubectl-devsync")
	if err != nil {
		return err
	}
	first, err := procStatus(pid)
	if err != nil {
		return err
	}
	res.watchRSSStart = first["VmRSS"]
	b.logf("watch: initial sync and watch set up in %s; kubectl-devsync (pid %d) VmHWM %d MiB, VmRSS %d MiB",
		res.watchSync.Round(time.Millisecond), pid, first["VmHWM"]>>20, first["VmRSS"]>>20)

	probe, closeProbe, err := b.probe(ctx, dest)
	if err != nil {
		return err
	}
	defer closeProbe()
	name := fmt.Sprintf("d%04d/f%03d.txt", dirs/2, 50)
	content := []byte("edited while watching\n")
	if res.watchEdit, err = editAndWait(ctx, probe, local, name, content, time.Minute, 5*time.Millisecond); err != nil {
		return fmt.Errorf("%w: %s", err, p.stderr.String())
	}
	after, err := procStatus(pid)
	if err != nil {
		return err
	}
	res.watchHWM, res.watchRSSAfter = after["VmHWM"], after["VmRSS"]

	// inotify or polling: what devsync said, and the watches it holds.
	res.watchMode = "inotify"
	if strings.Contains(p.stderr.String(), "falling back to polling") {
		res.watchMode = "polling (inotify limit reached)"
	}
	watches, err := inotifyWatches(pid)
	if err != nil {
		return err
	}
	limit, _ := os.ReadFile("/proc/sys/fs/inotify/max_user_watches")
	res.watchMode += fmt.Sprintf(", %d inotify watches held (fs.inotify.max_user_watches %s)", watches, strings.TrimSpace(string(limit)))
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.HasPrefix(l, "Warning: ") {
			res.watchWarnings = append(res.watchWarnings, strings.TrimPrefix(l, "Warning: "))
		}
	}
	b.logf("watch: edit visible in %s; kubectl-devsync VmHWM %d MiB, VmRSS %d MiB; %s; devsync said: %s",
		res.watchEdit.Round(time.Millisecond), res.watchHWM>>20, res.watchRSSAfter>>20, res.watchMode, strings.ReplaceAll(strings.TrimSpace(p.stderr.String()), "\n", " / "))
	return nil
}

// writeSmallTree writes n files of 100 bytes, 100 to a directory, and
// returns the number of directories.
func writeSmallTree(root string, n int) (int, error) {
	dirs := 0
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%04d", i/100))
		if i%100 == 0 {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return 0, err
			}
			dirs++
		}
		line := fmt.Sprintf("file %d of the watched tree ", i)
		data := []byte(line + strings.Repeat("x", 99-len(line)) + "\n")
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.txt", i%100)), data, 0o644); err != nil {
			return 0, err
		}
	}
	return dirs, nil
}

// pluginPid is the pid of the plugin binary name started as pid: kubectl
// execs a plugin in its own process, but a kubectl that forked it would
// leave the plugin as its child.
func pluginPid(pid int, name string) (int, error) {
	comm := func(p string) string {
		b, _ := os.ReadFile("/proc/" + p + "/comm")
		return strings.TrimSpace(string(b))
	}
	if comm(fmt.Sprint(pid)) == name {
		return pid, nil
	}
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, c := range strings.Fields(string(children)) {
		if comm(c) == name {
			var p int
			_, err := fmt.Sscan(c, &p)
			return p, err
		}
	}
	return 0, fmt.Errorf("pid %d is %q and has no child %s", pid, comm(fmt.Sprint(pid)), name)
}

// procStatus reads the kB figures of /proc/PID/status, in bytes.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			var n int64
			if _, err := fmt.Sscan(f[0], &n); err == nil {
				m[k] = n << 10
			}
		}
	}
	if _, ok := m["VmHWM"]; !ok {
		return nil, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return m, nil
}

// inotifyWatches counts the inotify watches pid holds (the "inotify wd:"
// lines of its inotify descriptors' fdinfo).
func inotifyWatches(pid int) (int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, fd := range fds {
		if t, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); t != "anon_inode:inotify" {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			return 0, err
		}
		n += strings.Count(string(info), "inotify wd:")
	}
	return n, nil
}
