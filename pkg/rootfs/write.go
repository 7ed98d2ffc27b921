//go:build linux

package rootfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// TempPrefix starts the name of every temporary file that WriteFile, Create
// and Symlink place next to their target before renaming it into place.
// Listings may skip names with this prefix: they are leftovers of a write
// that was interrupted.
const TempPrefix = ".devsync-tmp-"

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
	// replaced and cur: what lstat saw of the file Commit replaced, and
	// of the file itself (see Replaced).
	replaced, cur *Info
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
			_ = unix.Unlinkat(p.dirfd, p.base, 0)
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
				p.stampReplaced(fd)
				err = p.rename()
			}
		} else if err != nil {
			err = pathErr("link", p.name, err)
		}
	} else if err == nil {
		p.stampReplaced(fd)
		err = p.rename()
	}
	if e := unix.Close(fd); e != nil && err == nil {
		err = pathErr("close", p.name, e)
	}
	if err != nil && p.tmp != "" {
		_ = unix.Unlinkat(p.dirfd, p.tmp, 0)
	}
	if err != nil {
		p.replaced, p.cur = nil, nil // nothing was replaced
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

// stampReplaced records, just before the rename over the target, what the
// target is (nothing when the name is free) and what the new file fd is.
func (p *PendingFile) stampReplaced(fd int) {
	var old, cur unix.Stat_t
	if unix.Fstatat(p.dirfd, p.base, &old, unix.AT_SYMLINK_NOFOLLOW) != nil || unix.Fstat(fd, &cur) != nil {
		return
	}
	p.replaced, p.cur = newInfo(p.base, &old), newInfo(p.base, &cur)
}

// Replaced tells, after a successful Commit, whether the file took the
// place of another (a file, a symlink) and returns what lstat saw of that
// one (old) and of the new file (cur) just before the rename: caches that
// an interpreter derived from the old file are keyed by its stamp.
func (p *PendingFile) Replaced() (old, cur fs.FileInfo, ok bool) {
	if !p.done || p.replaced == nil {
		return nil, nil, false
	}
	return p.replaced, p.cur, true
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
		_ = p.Abort() // the copy's error is the one to report
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
		_ = unix.Unlinkat(pfd, tmp, 0)
		return pathErr("chown", name, err)
	}
	if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
		_ = unix.Unlinkat(pfd, tmp, 0)
		return pathErr("symlink", name, err)
	}
	return nil
}
