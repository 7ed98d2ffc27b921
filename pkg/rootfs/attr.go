//go:build linux

package rootfs

import (
	"errors"
	"io/fs"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
