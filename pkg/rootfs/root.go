//go:build linux

package rootfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// resolveFlags confine every lookup to the root descriptor: ".." is clamped
// at the root, absolute symlinks resolve inside it, magic links are refused.
// RESOLVE_NO_XDEV is deliberately absent: app trees cross volume mounts.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// maxRetries bounds the retries of a lookup that failed with EAGAIN (a
// concurrent rename or mount raced with a ".." step in the kernel).
const maxRetries = 32

// ErrNoOpenat2 is returned when the kernel (older than Linux 5.6) or a seccomp
// profile does not provide openat2(2). Paths cannot then be confined to the
// app's root safely, and nothing is written.
var ErrNoOpenat2 = errors.New("openat2(2) is not available: Linux 5.6 or later and a seccomp profile that allows openat2 are required to confine paths to the app's root")

// Owner is a user and group ID pair. -1 means "leave unchanged".
type Owner struct {
	UID, GID int
}

// Root is a directory descriptor of a root filesystem (the app's
// /proc/<pid>/root, or any directory in tests) under which every path is
// resolved. It is safe for concurrent use; Close it when done.
type Root struct {
	file   *os.File // owns the O_PATH descriptor of the root
	fd     int
	proc   *os.File // /proc/<pid> directory, nil for OpenDir
	name   string   // for messages, e.g. "/proc/42/root"
	pid    int
	owner  Owner
	hasAt2 bool
	// noTmpfile is set once O_TMPFILE failed as unsupported here.
	noTmpfile atomic.Bool
}

// OpenDir opens dir as a root. It is meant for tests and for tools that run
// inside the app's own filesystem; the owner reported is dir's owner.
func OpenDir(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", dir, err)
	}
	r := &Root{file: os.NewFile(uintptr(fd), dir), fd: fd, name: dir, owner: Owner{-1, -1}}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil {
		r.owner = Owner{int(st.Uid), int(st.Gid)}
	}
	if err := r.probe(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// OpenProcess opens the root filesystem of process pid through a /proc/<pid>
// directory descriptor, so that the handle cannot silently move to another
// process if the PID is reused. When containerID is not empty, the process's
// cgroup (read through the same descriptor) must mention it. The owner is the
// process's effective uid and gid.
func OpenProcess(pid int, containerID string) (*Root, error) {
	procPath := "/proc/" + strconv.Itoa(pid)
	pfd, err := unix.Open(procPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is the pod's process namespace shared with the agent?)", procPath, err)
	}
	proc := os.NewFile(uintptr(pfd), procPath)
	fail := func(err error) (*Root, error) { proc.Close(); return nil, err }
	if containerID != "" {
		cg, err := readAt(pfd, "cgroup")
		if err != nil {
			return fail(fmt.Errorf("read %s/cgroup: %w", procPath, err))
		}
		if !bytes.Contains(cg, []byte(containerID)) {
			return fail(fmt.Errorf("process %d does not belong to container %s (it exited, or the container restarted): look the process up again", pid, shortID(containerID)))
		}
	}
	status, err := readAt(pfd, "status")
	if err != nil {
		return fail(fmt.Errorf("read %s/status: %w", procPath, err))
	}
	owner, err := parseOwner(status)
	if err != nil {
		return fail(fmt.Errorf("%s/status: %w", procPath, err))
	}
	rfd, err := unix.Openat(pfd, "root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return fail(fmt.Errorf("open %s/root: %w: the agent needs the app's uid or CAP_SYS_PTRACE to enter the app's filesystem", procPath, err))
		}
		return fail(fmt.Errorf("open %s/root: %w", procPath, err))
	}
	r := &Root{file: os.NewFile(uintptr(rfd), procPath+"/root"), fd: rfd, proc: proc, name: procPath + "/root", pid: pid, owner: owner}
	if err := r.probe(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func readAt(dirfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

func parseOwner(status []byte) (Owner, error) {
	o := Owner{-1, -1}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		var dst *int
		switch {
		case strings.HasPrefix(line, "Uid:"):
			dst = &o.UID
		case strings.HasPrefix(line, "Gid:"):
			dst = &o.GID
		default:
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return o, fmt.Errorf("malformed line %q", line)
		}
		v, err := strconv.Atoi(f[2]) // effective ID
		if err != nil {
			return o, fmt.Errorf("malformed line %q", line)
		}
		*dst = v
	}
	if o.UID < 0 || o.GID < 0 {
		return o, errors.New("no Uid/Gid lines")
	}
	return o, nil
}

// probe checks that openat2 works on this kernel and seccomp profile.
func (r *Root) probe() error {
	fd, err := r.openat2(".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%s: %w", r.name, ErrNoOpenat2)
		}
		return fmt.Errorf("open %s: %w", r.name, err)
	}
	unix.Close(fd)
	r.hasAt2 = true
	return nil
}

// Close releases the descriptors.
func (r *Root) Close() error {
	err := r.file.Close()
	if r.proc != nil {
		r.proc.Close()
	}
	return err
}

// Name describes the root for messages, e.g. "/proc/42/root".
func (r *Root) Name() string { return r.name }

// PID is the process whose root this is, 0 for OpenDir.
func (r *Root) PID() int { return r.pid }

// Owner is the app process's effective uid and gid (the owner of the
// directory for OpenDir).
func (r *Root) Owner() Owner { return r.owner }

// Alive reports an error when the process of an OpenProcess root has exited:
// the root descriptor then still works but points at a dead filesystem.
func (r *Root) Alive() error {
	if r.proc == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(int(r.proc.Fd()), "stat", &st, 0); err != nil {
		return fmt.Errorf("process %d: %w: the app exited or restarted, open its new process", r.pid, err)
	}
	return nil
}

// Workdir is the process's working directory as the app sees it ("/" for
// OpenDir). It is the default destination of a sync.
func (r *Root) Workdir() (string, error) {
	if r.proc == nil {
		return "/", nil
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(r.proc.Fd()), "cwd", buf)
	if err != nil {
		return "", fmt.Errorf("read the working directory of process %d: %w", r.pid, err)
	}
	wd := string(buf[:n])
	if !strings.HasPrefix(wd, "/") {
		return "", fmt.Errorf("working directory of process %d is not reachable (%q): pass an explicit destination", r.pid, wd)
	}
	return wd, nil
}

// Clean turns name into the relative, clean form used for lookups: leading
// slashes are dropped and ".." cannot climb above the root ("../../x" is
// "x"). The root itself is ".".
func Clean(name string) string {
	c := path.Clean("/" + name)
	if c == "/" {
		return "."
	}
	return c[1:]
}

// openat2 resolves name (relative to the root) with RESOLVE_IN_ROOT.
func (r *Root) openat2(name string, flags int) (int, error) {
	return r.openHow(name, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveFlags})
}

// openHow is openat2 relative to the root, retried on EINTR and EAGAIN.
func (r *Root) openHow(name string, how *unix.OpenHow) (int, error) {
	for i := 0; ; i++ {
		fd, err := unix.Openat2(r.fd, name, how)
		if err == unix.EINTR || (err == unix.EAGAIN && i < maxRetries) {
			continue
		}
		return fd, err
	}
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// parent opens the parent directory of name (O_PATH) and returns its
// descriptor and the final component. The final component is never ".".
func (r *Root) parent(op, name string) (int, string, error) {
	c := Clean(name)
	if c == "." {
		return -1, "", pathErr(op, name, errors.New("operation not allowed on the root itself"))
	}
	if strings.IndexByte(c, 0) >= 0 {
		return -1, "", pathErr(op, name, errors.New("path contains a NUL byte"))
	}
	dir, base := path.Split(c)
	if dir == "" {
		dir = "."
	}
	fd, err := r.openat2(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, "", pathErr(op, name, err)
	}
	return fd, base, nil
}
