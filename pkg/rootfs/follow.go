//go:build linux

package rootfs

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The operations in this file follow a final symlink, as their POSIX
// namesakes do and as an sftp client expects; the link is resolved inside
// the root like every other component, so it cannot lead out of it.

// OpenFile opens name with the os.OpenFile flags (O_RDWR, O_CREATE, O_TRUNC,
// O_APPEND, O_EXCL ...), following a final symlink inside the root. perm is
// used, minus the umask, when the file is created. Unlike Open, any file
// type is accepted and the file is opened in place, not atomically replaced.
func (r *Root) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	how := &unix.OpenHow{Flags: uint64(flag | unix.O_CLOEXEC), Resolve: resolveFlags}
	if flag&(unix.O_CREAT|unix.O_TMPFILE) != 0 {
		how.Mode = uint64(unixMode(perm))
	}
	fd, err := r.openHow(Clean(name), how)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return os.NewFile(uintptr(fd), path.Clean("/"+name)), nil
}

// Stat describes name, following a final symlink inside the root.
func (r *Root) Stat(name string) (fs.FileInfo, error) {
	var st unix.Stat_t
	err := r.withFd("stat", name, unix.O_PATH, func(fd int) error { return unix.Fstat(fd, &st) })
	if err != nil {
		return nil, err
	}
	return newInfo(path.Base("/"+Clean(name)), &st), nil
}

// withFd opens name with flags, following a final symlink inside the root,
// and calls fn with the descriptor.
func (r *Root) withFd(op, name string, flags int, fn func(fd int) error) error {
	fd, err := r.openat2(Clean(name), flags)
	if err != nil {
		return pathErr(op, name, err)
	}
	defer unix.Close(fd)
	if err := fn(fd); err != nil {
		return pathErr(op, name, err)
	}
	return nil
}

// ChmodFollow changes the permission and set-id bits of the file name
// resolves to (a final symlink is followed inside the root; see Chmod).
func (r *Root) ChmodFollow(name string, perm fs.FileMode) error {
	return r.withFd("chmod", name, unix.O_PATH, func(fd int) error { return chmodFd(fd, perm) })
}

// Chown changes the owner of the file name resolves to (a final symlink is
// followed inside the root; see Lchown). -1 leaves an ID unchanged.
func (r *Root) Chown(name string, owner Owner) error {
	return r.withFd("chown", name, unix.O_PATH, func(fd int) error {
		return unix.Fchownat(fd, "", owner.UID, owner.GID, unix.AT_EMPTY_PATH)
	})
}

// Truncate sets the size of the file name resolves to.
func (r *Root) Truncate(name string, size int64) error {
	return r.withFd("truncate", name, unix.O_WRONLY|unix.O_NONBLOCK, func(fd int) error {
		return unix.Ftruncate(fd, size)
	})
}

// ChtimesFollow sets the access and modification times of the file name
// resolves to (a final symlink is followed inside the root; see Chtimes).
func (r *Root) ChtimesFollow(name string, atime, mtime time.Time) error {
	return r.withFd("chtimes", name, unix.O_PATH, func(fd int) error {
		ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
		// utimensat does not take O_PATH descriptors; the descriptor's magic
		// link in our /proc is the file itself, already resolved in the root.
		return unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), ts, 0)
	})
}

// Link creates newname as a hard link to oldname (a final symlink in
// oldname is linked itself, not followed, as link(2) does on Linux).
func (r *Root) Link(oldname, newname string) error {
	return r.atParents("link", oldname, newname, func(ofd int, obase string, nfd int, nbase string) error {
		return unix.Linkat(ofd, obase, nfd, nbase, 0)
	})
}

// SymlinkExcl creates name as a symlink to target, failing with
// fs.ErrExist when name exists, as symlink(2) does (Symlink replaces it).
func (r *Root) SymlinkExcl(target, name string, owner Owner) error {
	pfd, base, err := r.parent("symlink", name)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Symlinkat(target, pfd, base); err != nil {
		return &os.LinkError{Op: "symlink", Old: target, New: name, Err: err}
	}
	if err := fchownat(pfd, base, owner); err != nil {
		return pathErr("chown", name, err)
	}
	return nil
}

// RemoveDir removes the empty directory name; anything else is an error
// (ENOTDIR), as rmdir(2).
func (r *Root) RemoveDir(name string) error {
	return r.atParent("rmdir", name, func(pfd int, base string) error {
		return unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
	})
}

// maxSymlinkHops bounds the symlinks RealPath follows (Linux's limit).
const maxSymlinkHops = 40

// RealPath returns the canonical absolute path of name as seen from the
// root ("/..."), with symlinks resolved inside the root. A missing
// component ends the resolution: the rest is appended as given, so that a
// path about to be created has a real path too.
func (r *Root) RealPath(name string) (string, error) {
	cur := "/"
	rest := splitPath(Clean(name))
	for hops := 0; len(rest) > 0; {
		next := path.Join(cur, rest[0])
		rest = rest[1:]
		fi, err := r.Lstat(next)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return path.Join(append([]string{next}, rest...)...), nil
			}
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return "", pathErr("realpath", name, unix.ELOOP)
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

// splitPath returns the non-empty, non-"." components of p.
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}
