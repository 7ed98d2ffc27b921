//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

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

// Unlink removes the file or symlink name; a directory is left alone
// (EISDIR).
func (r *Root) Unlink(name string) error {
	return r.atParent("remove", name, func(pfd int, base string) error {
		return unix.Unlinkat(pfd, base, 0)
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
