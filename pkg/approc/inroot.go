//go:build linux

package approc

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"time"

	"golang.org/x/sys/unix"
)

// Root is a directory treated as "/" for every path operation: paths are
// resolved by openat2 with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS, so that
// "..", absolute symlinks and symlinks in the app's tree (e.g. one to /etc)
// stay inside it, and magic links (/proc/self/root) fail. Opening
// /proc/<pid>/root with it confines the agent to the app's files even though
// the agent's own root is different (see docs/devssh.md).
type Root struct {
	fd   int
	Path string
}

// OpenRoot opens dir as a root.
func OpenRoot(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return &Root{fd: fd, Path: dir}, nil
}

// Close releases the root.
func (r *Root) Close() error { return unix.Close(r.fd) }

const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// clean turns name into a path relative to the root ("." for the root).
func clean(name string) string {
	p := path.Clean("/" + name)
	if p == "/" {
		return "."
	}
	return p[1:]
}

func (r *Root) openat2(dirfd int, name string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveFlags}
	if flags&(unix.O_CREAT|unix.O_TMPFILE) == 0 {
		how.Mode = 0
	}
	var err error
	for i := 0; i < 128; i++ {
		var fd int
		fd, err = unix.Openat2(dirfd, name, &how)
		if err == nil {
			return fd, nil
		}
		if err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	return -1, err
}

// OpenFile opens name inside the root.
func (r *Root) OpenFile(name string, flags int, mode os.FileMode) (*os.File, error) {
	fd, err := r.openat2(r.fd, clean(name), flags, uint32(mode.Perm()))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), path.Clean("/"+name)), nil
}

// parent opens the directory holding name (resolved in the root) and
// returns it with name's last element. The last element itself is not
// followed, as lstat, unlink, rename, mkdir and symlink require.
func (r *Root) parent(name string) (int, string, error) {
	c := clean(name)
	if c == "." {
		return -1, "", &fs.PathError{Op: "resolve", Path: name, Err: unix.EINVAL}
	}
	dir, base := path.Split(c)
	if dir == "" {
		dir = "."
	}
	fd, err := r.openat2(r.fd, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", &fs.PathError{Op: "open", Path: path.Dir("/" + c), Err: err}
	}
	return fd, base, nil
}

// Lstat is lstat inside the root.
func (r *Root) Lstat(name string) (fs.FileInfo, error) {
	if clean(name) == "." {
		return r.Stat(name)
	}
	dfd, base, err := r.parent(name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	return fileInfo(base, &st), nil
}

// Stat is stat inside the root (symlinks followed, inside the root).
func (r *Root) Stat(name string) (fs.FileInfo, error) {
	fd, err := r.openat2(r.fd, clean(name), unix.O_PATH, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fileInfo(path.Base("/"+clean(name)), &st), nil
}

// ReadDir lists a directory inside the root (entries are lstat'ed).
func (r *Root) ReadDir(name string) ([]fs.FileInfo, error) {
	f, err := r.OpenFile(name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := make([]fs.FileInfo, 0, len(names))
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(int(f.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed meanwhile
		}
		out = append(out, fileInfo(n, &st))
	}
	return out, nil
}

// Mkdir creates a directory inside the root.
func (r *Root) Mkdir(name string, mode os.FileMode) error {
	dfd, base, err := r.parent(name)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := unix.Mkdirat(dfd, base, uint32(mode.Perm())); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return nil
}

// Remove removes a file, or an empty directory when dir is true.
func (r *Root) Remove(name string, dir bool) error {
	dfd, base, err := r.parent(name)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(dfd, base, flags); err != nil {
		if !dir && err == unix.EISDIR {
			err = unix.Unlinkat(dfd, base, unix.AT_REMOVEDIR)
		}
		if err != nil {
			return &fs.PathError{Op: "remove", Path: name, Err: err}
		}
	}
	return nil
}

// Rename renames inside the root (replacing newname, as POSIX rename).
func (r *Root) Rename(oldname, newname string) error {
	ofd, obase, err := r.parent(oldname)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	nfd, nbase, err := r.parent(newname)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	if err := unix.Renameat(ofd, obase, nfd, nbase); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// Symlink creates name pointing to target (the target is stored as given;
// it is resolved in the root whenever it is followed through Root).
func (r *Root) Symlink(target, name string) error {
	dfd, base, err := r.parent(name)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := unix.Symlinkat(target, dfd, base); err != nil {
		return &os.LinkError{Op: "symlink", Old: target, New: name, Err: err}
	}
	return nil
}

// Link creates a hard link inside the root.
func (r *Root) Link(oldname, newname string) error {
	ofd, obase, err := r.parent(oldname)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	nfd, nbase, err := r.parent(newname)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	if err := unix.Linkat(ofd, obase, nfd, nbase, 0); err != nil {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// Readlink reads a symlink inside the root.
func (r *Root) Readlink(name string) (string, error) {
	dfd, base, err := r.parent(name)
	if err != nil {
		return "", err
	}
	defer unix.Close(dfd)
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dfd, base, buf)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(buf[:n]), nil
}

// Chmod, Chown, Truncate and Chtimes change the file name resolves to.
func (r *Root) Chmod(name string, mode os.FileMode) error {
	return r.withFD(name, unix.O_PATH, func(fd int) error {
		// fchmod does not take O_PATH descriptors; its /proc/self/fd magic
		// link is the file itself, already resolved inside the root.
		return unix.Fchmodat(unix.AT_FDCWD, procFD(fd), uint32(mode&fs.ModePerm|mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)), 0)
	})
}

// Chown changes the owner of the file name resolves to.
func (r *Root) Chown(name string, uid, gid int) error {
	return r.withFD(name, unix.O_PATH, func(fd int) error {
		return unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH)
	})
}

// Truncate sets the size of the file name resolves to.
func (r *Root) Truncate(name string, size int64) error {
	return r.withFD(name, unix.O_WRONLY, func(fd int) error { return unix.Ftruncate(fd, size) })
}

// Chtimes sets the access and modification times.
func (r *Root) Chtimes(name string, atime, mtime time.Time) error {
	return r.withFD(name, unix.O_PATH, func(fd int) error {
		ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, procFD(fd), ts, 0)
	})
}

func (r *Root) withFD(name string, flags int, f func(fd int) error) error {
	fd, err := r.openat2(r.fd, clean(name), flags, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	if err := f(fd); err != nil {
		return &fs.PathError{Op: "setstat", Path: name, Err: err}
	}
	return nil
}

func procFD(fd int) string { return "/proc/self/fd/" + itoa(fd) }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// RealPath resolves name inside the root to its canonical path as seen
// from the root ("/" + ...), following symlinks inside the root.
func (r *Root) RealPath(name string) (string, error) {
	c := clean(name)
	cur := "/"
	rest := []string{}
	if c != "." {
		rest = splitPath(c)
	}
	for hops := 0; len(rest) > 0; {
		el := rest[0]
		rest = rest[1:]
		next := path.Join(cur, el)
		fi, err := r.Lstat(next)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// A path to create: keep the rest as given.
				return path.Join(append([]string{next}, rest...)...), nil
			}
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", &fs.PathError{Op: "realpath", Path: name, Err: unix.ELOOP}
		}
		target, err := r.Readlink(next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(splitPath(path.Clean(target)), rest...)
	}
	return cur, nil
}

func splitPath(p string) []string {
	var out []string
	for _, s := range splitSlash(p) {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

func splitSlash(p string) []string {
	var out []string
	start := 0
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return append(out, p[start:])
}

type statInfo struct {
	name string
	st   unix.Stat_t
}

func fileInfo(name string, st *unix.Stat_t) fs.FileInfo { return &statInfo{name: name, st: *st} }

func (s *statInfo) Name() string { return s.name }
func (s *statInfo) Size() int64  { return s.st.Size }
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	if s.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Sec, s.st.Mtim.Nsec) }
func (s *statInfo) IsDir() bool        { return s.st.Mode&unix.S_IFMT == unix.S_IFDIR }

// Sys returns the *unix.Stat_t; UID and GID are what pkg/sftp reads
// through its FileInfoUidGid interface.
func (s *statInfo) Sys() any    { return &s.st }
func (s *statInfo) Uid() uint32 { return s.st.Uid }
func (s *statInfo) Gid() uint32 { return s.st.Gid }
