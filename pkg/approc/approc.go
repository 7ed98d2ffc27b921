// Package approc finds the app's process from the agent, in a pod with a
// shared process namespace: by the target container's runtime ID matched
// against /proc/<pid>/cgroup, or, when the client did not send one, as the
// one container of the pod besides the agent's own (and the pause
// container). It reads the process's uid, gid, groups, working directory
// and environment where the agent may.
package approc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Proc is the app's top process.
type Proc struct {
	PID         int
	ContainerID string
	UID, GID    int
	Groups      []int
	// Cwd is the working directory inside the app's root ("/" when unreadable).
	Cwd string
	// Environ is the process's environment (nil when unreadable).
	Environ []string
	// Comm is the process's command name.
	Comm string
}

// Root is the app's root file system as the agent sees it.
func (p *Proc) Root() string { return fmt.Sprintf("/proc/%d/root", p.PID) }

// Finder reads a /proc tree (a fixture in tests).
type Finder struct {
	// ProcDir is /proc when empty.
	ProcDir string
	// SelfPID is the agent's pid (os.Getpid() when 0).
	SelfPID int
}

func (f Finder) proc() string {
	if f.ProcDir == "" {
		return "/proc"
	}
	return f.ProcDir
}

func (f Finder) self() int {
	if f.SelfPID == 0 {
		return os.Getpid()
	}
	return f.SelfPID
}

var hex64 = regexp.MustCompile(`[0-9a-f]{64}`)

// ContainerIDFromCgroup returns the container ID in the contents of a
// /proc/<pid>/cgroup file: the last 64-hex-digit word of the first line
// that has one. It understands cgroup v1 (N:controllers:/kubepods/.../<id>)
// and v2 (0::/...), cgroupfs paths (/kubepods/besteffort/pod<uid>/<id>),
// systemd units (cri-containerd-<id>.scope, crio-<id>.scope,
// docker-<id>.scope) and the "../" prefixes of cgroup namespaces.
func ContainerIDFromCgroup(data []byte) string {
	for _, line := range bytes.Split(data, []byte("\n")) {
		parts := bytes.SplitN(line, []byte(":"), 3)
		if len(parts) != 3 {
			continue
		}
		path := string(parts[2])
		// crio-conmon-<id>.scope is the runtime monitor, not the container.
		if strings.Contains(path, "conmon") {
			continue
		}
		ids := hex64.FindAllString(path, -1)
		if len(ids) > 0 {
			return ids[len(ids)-1]
		}
	}
	return ""
}

// NormalizeID accepts "containerd://<id>", "<id>" or a unique prefix of at
// least 12 hex digits and returns the lower-case form without the prefix.
func NormalizeID(id string) string {
	if _, rest, ok := strings.Cut(id, "://"); ok {
		id = rest
	}
	return strings.ToLower(strings.TrimSpace(id))
}

type procInfo struct {
	pid, ppid   int
	startTime   uint64
	containerID string
}

func (f Finder) scan() ([]procInfo, error) {
	entries, err := os.ReadDir(f.proc())
	if err != nil {
		return nil, err
	}
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, err := os.ReadFile(filepath.Join(f.proc(), e.Name(), "cgroup"))
		if err != nil {
			continue // gone
		}
		pi := procInfo{pid: pid, containerID: ContainerIDFromCgroup(cg)}
		if st, err := os.ReadFile(filepath.Join(f.proc(), e.Name(), "stat")); err == nil {
			pi.ppid, pi.startTime = parseStat(st)
		}
		out = append(out, pi)
	}
	return out, nil
}

// parseStat returns ppid (field 4) and starttime (field 22) of /proc/N/stat;
// the command name (field 2) may hold spaces and parentheses.
func parseStat(b []byte) (int, uint64) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	start, _ := strconv.ParseUint(fields[19], 10, 64)
	return ppid, start
}

// ErrNotFound is returned when no process of the container is visible.
var ErrNotFound = errors.New("no process of the app container is visible")

// top picks the container's top process: its parent is not in the
// container (0 when the parent, the runtime's shim, is outside the pod's
// pid namespace), else the earliest started.
func top(cands []procInfo) procInfo {
	in := map[int]bool{}
	for _, c := range cands {
		in[c.pid] = true
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].startTime != cands[j].startTime {
			return cands[i].startTime < cands[j].startTime
		}
		return cands[i].pid < cands[j].pid
	})
	for _, c := range cands {
		if !in[c.ppid] {
			return c
		}
	}
	return cands[0]
}

// FindByID finds the top process of the container with the given ID.
func (f Finder) FindByID(id string) (*Proc, error) {
	id = NormalizeID(id)
	if len(id) < 12 {
		return nil, fmt.Errorf("container ID %q is too short", id)
	}
	procs, err := f.scan()
	if err != nil {
		return nil, err
	}
	var cands []procInfo
	for _, p := range procs {
		if p.containerID != "" && strings.HasPrefix(p.containerID, id) {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w (container %.12s; is the pod's process namespace shared, and is the container running?)", ErrNotFound, id)
	}
	return f.Read(top(cands).pid, cands[0].containerID)
}

// FindOther finds the top process of the one container that is neither the
// agent's nor the pause container (pid 1); with several, it fails and asks
// for the container ID.
func (f Finder) FindOther() (*Proc, error) {
	procs, err := f.scan()
	if err != nil {
		return nil, err
	}
	skip := map[string]bool{}
	for _, p := range procs {
		if p.pid == f.self() || p.pid == 1 {
			skip[p.containerID] = true
		}
	}
	byID := map[string][]procInfo{}
	for _, p := range procs {
		if p.containerID == "" || skip[p.containerID] {
			continue
		}
		byID[p.containerID] = append(byID[p.containerID], p)
	}
	switch len(byID) {
	case 0:
		return nil, fmt.Errorf("%w (is the pod's process namespace shared?)", ErrNotFound)
	case 1:
		for id, cands := range byID {
			return f.Read(top(cands).pid, id)
		}
	}
	return nil, fmt.Errorf("the pod has %d other containers: the client must name the app's container ID (kubectl devssh does; with OpenSSH, use SetEnv DEVSSH_CONTAINER_ID=...)", len(byID))
}

// Read reads what the agent can about process pid.
func (f Finder) Read(pid int, containerID string) (*Proc, error) {
	dir := filepath.Join(f.proc(), strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return nil, fmt.Errorf("reading the app's process %d: %w", pid, err)
	}
	p := &Proc{PID: pid, ContainerID: containerID, Cwd: "/"}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		switch k {
		case "Name":
			p.Comm = strings.TrimSpace(v)
		case "Uid":
			if len(f) >= 2 {
				p.UID, _ = strconv.Atoi(f[1]) // effective
			}
		case "Gid":
			if len(f) >= 2 {
				p.GID, _ = strconv.Atoi(f[1])
			}
		case "Groups":
			for _, g := range f {
				if n, err := strconv.Atoi(g); err == nil {
					p.Groups = append(p.Groups, n)
				}
			}
		}
	}
	if cwd, err := os.Readlink(filepath.Join(dir, "cwd")); err == nil && strings.HasPrefix(cwd, "/") && !strings.HasSuffix(cwd, " (deleted)") {
		p.Cwd = cwd
	}
	if env, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
		for _, kv := range strings.Split(string(env), "\x00") {
			if strings.Contains(kv, "=") {
				p.Environ = append(p.Environ, kv)
			}
		}
	}
	return p, nil
}
