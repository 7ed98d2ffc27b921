//go:build linux

package rootfs

import (
	"errors"
	"io/fs"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

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
	if errors.Is(err, fs.SkipDir) {
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
		if errors.Is(err, fs.SkipDir) {
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
			if err := fn(childRel, info, "", pathErr("open", childRel, err)); err != nil && !errors.Is(err, fs.SkipDir) {
				return err
			}
			continue
		}
		if err := walkFd(os.NewFile(uintptr(cfd), childRel), path.Join(absName, info.Name()), childRel, fn); err != nil {
			if errors.Is(err, fs.SkipDir) {
				continue
			}
			return err
		}
	}
	return nil
}

// OpenDirPath opens the directory name (resolved inside the root, like
// every lookup) and returns it; /proc/self/fd/<fd>/<base> then reaches an
// entry of it (e.g. a unix socket) without leaving the root.
func (r *Root) OpenDirPath(name string) (*os.File, error) { return r.openDir(name) }
