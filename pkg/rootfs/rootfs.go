//go:build linux

package rootfs

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resolveFlags confine every lookup to the root descriptor: ".." is clamped
// at the root, absolute symlinks resolve inside it, magic links are refused.
// RESOLVE_NO_XDEV is deliberately absent: app trees cross volume mounts.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// TempPrefix starts the name of every temporary file that WriteFile, Create
// and Symlink place next to their target before renaming it into place.
// Listings may skip names with this prefix: they are leftovers of a write
// that was interrupted.
const TempPrefix = ".devsync-tmp-"

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

// Lstat describes name without following a final symlink.
func (r *Root) Lstat(name string) (fs.FileInfo, error) {
	var st unix.Stat_t
	c := Clean(name)
	if c == "." {
		if err := unix.Fstat(r.fd, &st); err != nil {
			return nil, pathErr("lstat", name, err)
		}
		return newInfo(".", &st), nil
	}
	pfd, base, err := r.parent("lstat", name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return newInfo(base, &st), nil
}

// Readlink returns the target of the symlink name.
func (r *Root) Readlink(name string) (string, error) {
	pfd, base, err := r.parent("readlink", name)
	if err != nil {
		return "", err
	}
	defer unix.Close(pfd)
	return readlinkat(pfd, base, name)
}

func readlinkat(dirfd int, base, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dirfd, base, buf)
		if err != nil {
			return "", pathErr("readlink", name, err)
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		if len(buf) >= unix.PathMax*2 {
			return "", pathErr("readlink", name, unix.ENAMETOOLONG)
		}
		buf = make([]byte, len(buf)*4)
	}
}

// Open opens the regular file name for reading. A final symlink is not
// followed, and special files (FIFOs, devices) are refused without blocking.
func (r *Root) Open(name string) (*os.File, error) {
	fd, err := r.openat2(Clean(name), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, pathErr("open", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, pathErr("open", name, errors.New("not a regular file"))
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, pathErr("open", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// ReadDir lists the directory name (a final symlink is followed inside the root),
// sorted by name, with each entry described as Lstat would.
func (r *Root) ReadDir(name string) ([]fs.FileInfo, error) {
	d, err := r.openDir(name)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return readDirFd(d, name)
}

// openDir opens the directory name for reading. A symlink as the final
// component is followed (inside the root, like every other component): the
// start of a walk may be a link such as /app -> /srv/app.
func (r *Root) openDir(name string) (*os.File, error) {
	fd, err := r.openat2(Clean(name), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

func readDirFd(d *os.File, name string) ([]fs.FileInfo, error) {
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	sortStrings(names)
	infos := make([]fs.FileInfo, 0, len(names))
	dfd := int(d.Fd())
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed meanwhile
			}
			return nil, pathErr("lstat", path.Join(name, n), err)
		}
		infos = append(infos, newInfo(n, &st))
	}
	return infos, nil
}

// WalkFunc is called by Walk for every entry, directories before their
// contents, in lexical order. rel is relative to the walked directory, target
// is the link target for symlinks. When a directory cannot be read, fn is
// called a second time for it with err set. Returning fs.SkipDir for a
// directory skips its contents; any other error stops the walk.
type WalkFunc func(rel string, info fs.FileInfo, target string, err error) error

// Walk walks the tree at dir without following any symlink below it:
// subdirectories are opened relative to their parent's descriptor with
// O_NOFOLLOW. dir itself may be a symlink; it resolves inside the root.
func (r *Root) Walk(dir string, fn WalkFunc) error {
	d, err := r.openDir(dir)
	if err != nil {
		return err
	}
	err = walkFd(d, dir, "", fn)
	if err == fs.SkipDir {
		err = nil
	}
	return err
}

func walkFd(d *os.File, absName, rel string, fn WalkFunc) error {
	defer d.Close()
	infos, err := readDirFd(d, absName)
	if err != nil {
		if rel == "" {
			return err
		}
		return fn(rel, nil, "", err)
	}
	dfd := int(d.Fd())
	for _, info := range infos {
		childRel := info.Name()
		if rel != "" {
			childRel = rel + "/" + info.Name()
		}
		var target string
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err = readlinkat(dfd, info.Name(), childRel)
			if err != nil {
				if err := fn(childRel, info, "", err); err != nil {
					return err
				}
				continue
			}
		}
		err := fn(childRel, info, target, nil)
		if err == fs.SkipDir {
			if info.IsDir() {
				continue
			}
			return err // skip the rest of this directory
		}
		if err != nil {
			return err
		}
		if !info.IsDir() {
			continue
		}
		cfd, err := unix.Openat(dfd, info.Name(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if err := fn(childRel, info, "", pathErr("open", childRel, err)); err != nil && err != fs.SkipDir {
				return err
			}
			continue
		}
		if err := walkFd(os.NewFile(uintptr(cfd), childRel), path.Join(absName, info.Name()), childRel, fn); err != nil {
			if err == fs.SkipDir {
				continue
			}
			return err
		}
	}
	return nil
}

// MkdirAll creates name and its missing parents with mode perm, owned by
// owner (-1 keeps the agent's IDs). Symlinks met on the way resolve inside
// the root; a dangling symlink in the way is an error.
func (r *Root) MkdirAll(name string, perm fs.FileMode, owner Owner) error {
	c := Clean(name)
	if c == "." {
		return nil
	}
	if fd, err := r.openat2(c, unix.O_PATH|unix.O_DIRECTORY); err == nil {
		unix.Close(fd)
		return nil
	} else if !errors.Is(err, unix.ENOENT) {
		return pathErr("mkdir", name, err)
	}
	return r.mkdirParents(c, perm, owner)
}

// mkdirParents creates c, which does not exist, and its missing parents:
// it looks at the parent first and goes up only while that is missing
// (usually it is there: one resolution, not one per component).
func (r *Root) mkdirParents(c string, perm fs.FileMode, owner Owner) error {
	dir, base := path.Split(c)
	dir = path.Clean(dir)
	if dir != "." {
		fd, err := r.openat2(dir, unix.O_PATH|unix.O_DIRECTORY)
		if err == nil {
			unix.Close(fd)
		} else if !errors.Is(err, unix.ENOENT) {
			return pathErr("mkdir", dir, err)
		} else if err := r.mkdirParents(dir, perm, owner); err != nil {
			return err
		}
	}
	return r.mkdirOne(dir, base, c, perm, owner, false)
}

// EnsureDir makes name a directory with mode perm: MkdirAll, then, for a
// directory that was there already, a chmod where its bits differ. A
// symlink to a directory is left alone (as MkdirAll and Chmod do).
func (r *Root) EnsureDir(name string, perm fs.FileMode, owner Owner) error {
	c := Clean(name)
	if c == "." {
		return nil
	}
	fd, err := r.openat2(c, unix.O_PATH|unix.O_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return r.mkdirParents(c, perm, owner)
	}
	if err != nil {
		return pathErr("mkdir", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return pathErr("mkdir", name, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if st.Mode&0o7777 != unixMode(perm) {
			if err := chmodFd(fd, perm); err != nil {
				return pathErr("chmod", name, err)
			}
		}
		return nil
	case unix.S_IFLNK:
		if dfd, err := r.openat2(c, unix.O_PATH|unix.O_DIRECTORY); err == nil {
			unix.Close(dfd)
			return nil
		}
	}
	return pathErr("mkdir", name, errors.New("exists and is not a directory (or a dangling symlink)"))
}

// Mkdir creates the single directory name (its parent must exist). Like
// mkdir(2), an existing name is an error (fs.ErrExist).
func (r *Root) Mkdir(name string, perm fs.FileMode, owner Owner) error {
	c := Clean(name)
	if c == "." {
		return pathErr("mkdir", name, unix.EEXIST)
	}
	dir, base := path.Split(c)
	if dir == "" {
		dir = "."
	}
	return r.mkdirOne(path.Clean(dir), base, c, perm, owner, true)
}

// mkdirOne creates base in parent. An existing directory is an error when
// excl is set (Mkdir, as mkdir(2)), success otherwise (MkdirAll).
func (r *Root) mkdirOne(parent, base, full string, perm fs.FileMode, owner Owner, excl bool) error {
	pfd, err := r.openat2(parent, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return pathErr("mkdir", full, err)
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, base, unixMode(perm)); err != nil {
		if errors.Is(err, unix.EEXIST) && !excl {
			// Created concurrently, or a dangling symlink / non-directory is in the way.
			fd, err2 := r.openat2(full, unix.O_PATH|unix.O_DIRECTORY)
			if err2 == nil {
				unix.Close(fd)
				return nil
			}
			return pathErr("mkdir", full, fmt.Errorf("exists and is not a directory (or a dangling symlink): %w", err2))
		}
		return pathErr("mkdir", full, err)
	}
	// Owner and the exact bits (mkdirat applied the umask) are set on the
	// new directory through a descriptor of it (never by name, which could
	// be swapped), each only where it differs: usually the agent's IDs are
	// the owner's and the umask took nothing from perm.
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathErr("mkdir", full, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return pathErr("mkdir", full, err)
	}
	chowned := false
	if (owner.UID >= 0 && uint32(owner.UID) != st.Uid) || (owner.GID >= 0 && uint32(owner.GID) != st.Gid) {
		if err := fchownat(pfd, base, owner); err != nil {
			return pathErr("chown", full, err)
		}
		chowned = true
	}
	if chowned || st.Mode&0o7777 != unixMode(perm) {
		if err := chmodFd(fd, perm); err != nil {
			return pathErr("chmod", full, err)
		}
	}
	return nil
}

func fchownat(dirfd int, base string, o Owner) error {
	if o.UID < 0 && o.GID < 0 {
		return nil
	}
	return unix.Fchownat(dirfd, base, o.UID, o.GID, unix.AT_SYMLINK_NOFOLLOW)
}

// chmodFd changes the mode of the inode behind an O_PATH descriptor.
func chmodFd(fd int, perm fs.FileMode) error {
	err := unix.Fchmodat(fd, "", unixMode(perm), unix.AT_EMPTY_PATH) // fchmodat2, Linux 6.6+
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	// Older kernels: the descriptor's own magic link in our /proc names exactly
	// this inode (it was opened O_NOFOLLOW and checked not to be a symlink).
	return unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unixMode(perm), 0)
}

// WriteOptions control how a file is written.
type WriteOptions struct {
	// Mode holds the permission bits (0 means 0644).
	Mode fs.FileMode
	// Owner of the file; -1 keeps the agent's IDs.
	Owner Owner
	// ModTime, when not zero, becomes the file's modification time.
	ModTime time.Time
	// Sync calls fsync before the rename.
	Sync bool
	// Parents creates missing parent directories (0755, same owner).
	Parents bool
	// Direct creates the file under its own name at once (it must not
	// exist), with no temporary name and no link: for a file in a
	// directory the app cannot see yet (a staging directory that Publish
	// puts in place later). Abort removes it.
	Direct bool
}

// PendingFile is a file being written that appears at its name only when
// complete: Commit links it into place atomically, Abort discards it.
//
// Where the filesystem supports it, the content goes to an unnamed file
// (O_TMPFILE) in the target's directory, which Commit links to the target's
// name; a directory entry is made once, and no temporary name is ever
// visible. When the name is taken (the file is replaced) or O_TMPFILE is not
// supported, the file gets a temporary name (TempPrefix) that Commit renames
// over the target.
type PendingFile struct {
	name   string
	dirfd  int
	ownDir bool   // dirfd is the file's to close (not a Dir's)
	tmp    string // the temporary name; empty while the file is unnamed
	base   string
	direct bool // created under base (WriteOptions.Direct)
	fd     int  // the file, written with plain write(2): no os.File
	opts   WriteOptions
	n      int64
	done   bool
}

// Create starts writing name atomically (see PendingFile). The file is
// created O_EXCL|O_NOFOLLOW (a temporary name) or unnamed (O_TMPFILE) in the
// target's directory, which is resolved inside the root.
func (r *Root) Create(name string, opts WriteOptions) (*PendingFile, error) {
	if opts.Parents {
		dir := path.Dir(Clean(name))
		if err := r.MkdirAll(dir, 0o755, opts.Owner); err != nil {
			return nil, err
		}
	}
	pfd, base, err := r.parent("create", name)
	if err != nil {
		return nil, err
	}
	p, err := r.create(pfd, name, base, opts)
	if err != nil {
		unix.Close(pfd)
		return nil, err
	}
	p.ownDir = true
	return p, nil
}

// create starts the file base in the directory pfd (see Create).
func (r *Root) create(pfd int, name, base string, opts WriteOptions) (*PendingFile, error) {
	// Created with the permission bits it will have (minus the umask), so
	// that Commit rarely needs a chmod; set-id bits come only after the
	// chown, in Commit.
	perm := createPerm(opts.Mode)
	if opts.Direct {
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		if err != nil {
			return nil, pathErr("create", name, err)
		}
		return &PendingFile{name: name, dirfd: pfd, base: base, direct: true, fd: fd, opts: opts}, nil
	}
	if !r.noTmpfile.Load() {
		// "." relative to the O_PATH descriptor: the directory itself.
		fd, err := unix.Openat(pfd, ".", unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, perm)
		if err == nil {
			return &PendingFile{name: name, dirfd: pfd, base: base, fd: fd, opts: opts}, nil
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			r.noTmpfile.Store(true) // this filesystem (or kernel) has no O_TMPFILE
		}
	}
	fd, tmp, err := createTemp(pfd, base, perm)
	if err != nil {
		return nil, pathErr("create", name, err)
	}
	return &PendingFile{name: name, dirfd: pfd, tmp: tmp, base: base, fd: fd, opts: opts}, nil
}

// Dir is a directory of the root held open, to create several files in it
// without resolving its path again for each (Root.HoldDir). The directory
// stays the one it was when held: if it is renamed meanwhile, files go
// where it went (still inside the root's filesystem, whose mounts it
// cannot leave). Close it once no file it created is pending.
type Dir struct {
	r    *Root
	name string
	fd   int // O_PATH
}

// HoldDir opens the directory name, resolved inside the root.
func (r *Root) HoldDir(name string) (*Dir, error) {
	c := Clean(name)
	if strings.IndexByte(c, 0) >= 0 {
		return nil, pathErr("open", name, errors.New("path contains a NUL byte"))
	}
	fd, err := r.openat2(c, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return &Dir{r: r, name: c, fd: fd}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// Create is Root.Create for the file base directly in d (Parents does not
// apply). base is one path element.
func (d *Dir) Create(base string, opts WriteOptions) (*PendingFile, error) {
	name := path.Join(d.name, base)
	if base == "" || base == "." || base == ".." || strings.ContainsAny(base, "/\x00") {
		return nil, pathErr("create", name, errors.New("not a single path element"))
	}
	return d.r.create(d.fd, name, base, opts)
}

// createPerm is the mode a file to be written with mode m is created with:
// its permission bits, never set-id or sticky bits (those are set after the
// chown), and 0644 for 0.
func createPerm(m fs.FileMode) uint32 {
	if m == 0 {
		m = 0o644
	}
	return uint32(m.Perm())
}

// createTemp creates a new file with a temporary name for base in dirfd.
func createTemp(dirfd int, base string, perm uint32) (int, string, error) {
	for i := 0; ; i++ {
		tmp := tempName(base)
		fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		if err == unix.EEXIST && i < 8 {
			continue
		}
		return fd, tmp, err
	}
}

func tempName(base string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	if len(base) > 200 {
		base = base[:200]
	}
	return TempPrefix + hex.EncodeToString(b[:]) + "-" + base
}

// Write appends to the temporary file.
func (p *PendingFile) Write(b []byte) (int, error) {
	n, err := p.writeAt(b, p.n)
	p.n += int64(n)
	return n, err
}

// WriteAt writes b at offset off of the file (content that arrives out of
// order); Size becomes the end of the furthest write.
func (p *PendingFile) WriteAt(b []byte, off int64) (int, error) {
	n, err := p.writeAt(b, off)
	p.n = max(p.n, off+int64(n))
	return n, err
}

// writeAt is pwrite(2) until b is written, retried on EINTR.
func (p *PendingFile) writeAt(b []byte, off int64) (int, error) {
	if p.done {
		return 0, pathErr("write", p.name, os.ErrClosed)
	}
	n := 0
	for n < len(b) {
		m, err := unix.Pwrite(p.fd, b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, pathErr("write", p.name, err)
		}
		if m == 0 {
			return n, pathErr("write", p.name, io.ErrShortWrite)
		}
		n += m
	}
	return n, nil
}

// Size is the number of bytes written so far.
func (p *PendingFile) Size() int64 { return p.n }

// Commit sets owner, mode and mtime, optionally fsyncs, and puts the file at
// its name atomically, replacing a file or a symlink of that name, never
// following it.
func (p *PendingFile) Commit() error {
	if p.done {
		return pathErr("commit", p.name, os.ErrClosed)
	}
	p.done = true
	if p.ownDir {
		defer unix.Close(p.dirfd)
	}
	fd := p.fd
	err := p.finish(fd)
	if p.direct {
		if e := unix.Close(fd); e != nil && err == nil {
			err = pathErr("close", p.name, e)
		}
		if err != nil {
			unix.Unlinkat(p.dirfd, p.base, 0)
		}
		return err
	}
	if err == nil && p.tmp == "" {
		// Link the unnamed file through its descriptor's magic link in our
		// own /proc (linkat AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), p.dirfd, p.base, unix.AT_SYMLINK_FOLLOW)
		if errors.Is(err, unix.EEXIST) {
			// The name is taken: link under a temporary name, rename below.
			err = nil
			for i := 0; ; i++ {
				p.tmp = tempName(p.base)
				e := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), p.dirfd, p.tmp, unix.AT_SYMLINK_FOLLOW)
				if e == unix.EEXIST && i < 8 {
					continue
				}
				if e != nil {
					err, p.tmp = pathErr("link", p.name, e), ""
				}
				break
			}
			if err == nil {
				err = p.rename()
			}
		} else if err != nil {
			err = pathErr("link", p.name, err)
		}
	} else if err == nil {
		err = p.rename()
	}
	if e := unix.Close(fd); e != nil && err == nil {
		err = pathErr("close", p.name, e)
	}
	if err != nil && p.tmp != "" {
		unix.Unlinkat(p.dirfd, p.tmp, 0)
	}
	return err
}

// finish sets owner, mode and mtime through the descriptor, and fsyncs.
// Owner and mode are changed only where they differ: a new file usually
// has them already (the agent's IDs are often the app's, and Create used
// the wanted permission bits), and each change is a journaled inode update.
func (p *PendingFile) finish(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return pathErr("stat", p.name, err)
	}
	uid, gid := p.opts.Owner.UID, p.opts.Owner.GID
	if (uid >= 0 && uint32(uid) != st.Uid) || (gid >= 0 && uint32(gid) != st.Gid) {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return pathErr("chown", p.name, err)
		}
	}
	mode := p.opts.Mode
	if mode == 0 {
		mode = 0o644
	}
	// Create never sets set-id bits (createPerm), so a chown cannot have
	// cleared any: the mode read before it still tells.
	if want := unixMode(mode); st.Mode&0o7777 != want {
		if err := unix.Fchmod(fd, want); err != nil { // after chown, which clears set-id bits
			return pathErr("chmod", p.name, err)
		}
	}
	if p.opts.Sync {
		if err := unix.Fsync(fd); err != nil {
			return pathErr("fsync", p.name, err)
		}
	}
	if !p.opts.ModTime.IsZero() {
		if err := futimes(fd, p.opts.ModTime); err != nil {
			return pathErr("chtimes", p.name, err)
		}
	}
	return nil
}

func (p *PendingFile) rename() error {
	if err := unix.Renameat(p.dirfd, p.tmp, p.dirfd, p.base); err != nil {
		return pathErr("rename", p.name, err)
	}
	p.tmp = ""
	return nil
}

// Abort discards the file. It is a no-op after Commit.
func (p *PendingFile) Abort() error {
	if p.done {
		return nil
	}
	p.done = true
	unix.Close(p.fd)
	if p.ownDir {
		defer unix.Close(p.dirfd)
	}
	if p.direct {
		if err := unix.Unlinkat(p.dirfd, p.base, 0); err != nil {
			return pathErr("remove", p.name, err)
		}
		return nil
	}
	if p.tmp == "" {
		return nil // unnamed: closing freed it
	}
	if err := unix.Unlinkat(p.dirfd, p.tmp, 0); err != nil {
		return pathErr("remove", p.tmp, err)
	}
	return nil
}

// WriteFile streams src into name atomically (see Create) and returns the
// number of bytes written. src is read in chunks; it is never held whole.
func (r *Root) WriteFile(name string, src io.Reader, opts WriteOptions) (int64, error) {
	p, err := r.Create(name, opts)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 128<<10)
	n, err := io.CopyBuffer(onlyWriter{p}, src, buf)
	if err != nil {
		p.Abort()
		return n, err
	}
	return n, p.Commit()
}

type onlyWriter struct{ io.Writer }

// Symlink creates (or atomically replaces) name as a symlink to target. The
// target is stored as is: it is resolved by the app, inside its own root.
func (r *Root) Symlink(target, name string, owner Owner) error {
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return pathErr("symlink", name, errors.New("empty target or NUL byte in the target"))
	}
	pfd, base, err := r.parent("symlink", name)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	tmp := tempName(base)
	if err := unix.Symlinkat(target, pfd, tmp); err != nil {
		return pathErr("symlink", name, err)
	}
	if err := fchownat(pfd, tmp, owner); err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return pathErr("chown", name, err)
	}
	if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return pathErr("symlink", name, err)
	}
	return nil
}

// Remove removes the file, symlink or empty directory name.
func (r *Root) Remove(name string) error {
	return r.atParent("remove", name, func(pfd int, base string) error {
		err := unix.Unlinkat(pfd, base, 0)
		if errors.Is(err, unix.EISDIR) {
			err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
		}
		return err
	})
}

// atParent calls fn with the parent directory and final component of name.
func (r *Root) atParent(op, name string, fn func(pfd int, base string) error) error {
	pfd, base, err := r.parent(op, name)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := fn(pfd, base); err != nil {
		return pathErr(op, name, err)
	}
	return nil
}

// RemoveAll removes name and, for a directory, everything below it. Symlinks
// are removed as links; nothing outside name is touched. A missing name is
// not an error.
func (r *Root) RemoveAll(name string) error {
	pfd, base, err := r.parent("remove", name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	defer unix.Close(pfd)
	if err := removeAllAt(pfd, base, name); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

func removeAllAt(dirfd int, base, name string) error {
	err := unix.Unlinkat(dirfd, base, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return pathErr("remove", name, err)
	}
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathErr("open", name, err)
	}
	d := os.NewFile(uintptr(fd), name)
	for {
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			if err := removeAllAt(fd, n, name+"/"+n); err != nil {
				d.Close()
				return err
			}
		}
		if err == io.EOF || len(names) == 0 {
			break
		}
		if err != nil {
			d.Close()
			return pathErr("readdir", name, err)
		}
	}
	d.Close()
	if err := unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return pathErr("remove", name, err)
	}
	return nil
}

// Rename renames oldname to newname (both inside the root), replacing
// newname when it is a file, a symlink or an empty directory.
func (r *Root) Rename(oldname, newname string) error {
	return r.atParents("rename", oldname, newname, unix.Renameat)
}

// StagingName is a hidden name, next to the directory name, under which a
// new directory can be built before Publish puts it at name. It starts with
// TempPrefix, so listings skip it.
func StagingName(name string) string {
	dir, base := path.Split(Clean(name))
	return dir + tempName(base)
}

// Publish puts the directory staged (built under StagingName) at name in
// one rename, so that the app sees the whole tree appear at once. When
// name has appeared meanwhile (the app made it), the staged entries are
// moved into it one by one instead, replacing what is in their way, and
// staged is removed.
func (r *Root) Publish(staged, name string) error {
	err := r.atParents("publish", staged, name, func(ofd int, obase string, nfd int, nbase string) error {
		return unix.Renameat2(ofd, obase, nfd, nbase, unix.RENAME_NOREPLACE)
	})
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	src, err := r.openDir(staged)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := r.openDir(name)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := mergeDir(src, int(dst.Fd()), name); err != nil {
		return err
	}
	return r.RemoveAll(staged)
}

// mergeDir moves the entries of directory src into dstfd; an entry in the
// way is replaced, except that directories are merged.
func mergeDir(src *os.File, dstfd int, name string) error {
	infos, err := readDirFd(src, name)
	if err != nil {
		return err
	}
	srcfd := int(src.Fd())
	for _, info := range infos {
		n := info.Name()
		err := unix.Renameat2(srcfd, n, dstfd, n, unix.RENAME_NOREPLACE)
		if !errors.Is(err, unix.EEXIST) {
			if err != nil {
				return pathErr("publish", name+"/"+n, err)
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dstfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return pathErr("publish", name+"/"+n, err)
		}
		if info.IsDir() && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := mergeAt(srcfd, dstfd, n, name+"/"+n); err != nil {
				return err
			}
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR || info.IsDir() {
			// A file over a directory or the other way: make room.
			if err := removeAllAt(dstfd, n, name+"/"+n); err != nil {
				return err
			}
		}
		if err := unix.Renameat(srcfd, n, dstfd, n); err != nil {
			return pathErr("publish", name+"/"+n, err)
		}
	}
	return nil
}

// mergeAt merges the directories called n in srcfd and dstfd.
func mergeAt(srcfd, dstfd int, n, name string) error {
	s, err := unix.Openat(srcfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathErr("publish", name, err)
	}
	src := os.NewFile(uintptr(s), name)
	defer src.Close()
	d, err := unix.Openat(dstfd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathErr("publish", name, err)
	}
	defer unix.Close(d)
	return mergeDir(src, d, name)
}

// atParents calls fn (renameat, linkat) with the parent directories and
// final components of oldname and newname.
func (r *Root) atParents(op, oldname, newname string, fn func(ofd int, obase string, nfd int, nbase string) error) error {
	ofd, obase, err := r.parent(op, oldname)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	nfd, nbase, err := r.parent(op, newname)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	if err := fn(ofd, obase, nfd, nbase); err != nil {
		return &os.LinkError{Op: op, Old: oldname, New: newname, Err: err}
	}
	return nil
}

// Chmod changes the permission bits of name. A final symlink is not
// followed: chmod of a symlink is a no-op (Linux ignores link modes).
func (r *Root) Chmod(name string, perm fs.FileMode) error {
	fd, err := r.openat2(Clean(name), unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return pathErr("chmod", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return pathErr("chmod", name, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	if err := chmodFd(fd, perm); err != nil {
		return pathErr("chmod", name, err)
	}
	return nil
}

// Lchown changes the owner of name, not following a final symlink.
func (r *Root) Lchown(name string, owner Owner) error {
	return r.atParent("chown", name, func(pfd int, base string) error { return fchownat(pfd, base, owner) })
}

// Chtimes sets the modification time of name (not following a final
// symlink); the access time is left alone.
func (r *Root) Chtimes(name string, mtime time.Time) error {
	return r.atParent("chtimes", name, func(pfd int, base string) error { return utimes(pfd, base, mtime) })
}

// futimes sets the modification time of the file open as fd (futimens).
func futimes(fd int, mtime time.Time) error {
	ts := [2]unix.Timespec{{Sec: 0, Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime.UnixNano())}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func utimes(dirfd int, base string, mtime time.Time) error {
	ts := []unix.Timespec{{Sec: 0, Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime.UnixNano())}
	return unix.UtimesNanoAt(dirfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// unixMode converts permission and set-id bits to mode_t bits.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// OpenDirPath opens the directory name (resolved inside the root, like
// every lookup) and returns it; /proc/self/fd/<fd>/<base> then reaches an
// entry of it (e.g. a unix socket) without leaving the root.
func (r *Root) OpenDirPath(name string) (*os.File, error) { return r.openDir(name) }
