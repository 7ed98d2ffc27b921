//go:build linux

package rootfs

import (
	"io/fs"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Info describes a file as lstat(2) saw it. It implements fs.FileInfo;
// Sys returns the *unix.Stat_t.
type Info struct {
	name string
	st   unix.Stat_t
}

func newInfo(name string, st *unix.Stat_t) *Info { return &Info{name: name, st: *st} }

func (i *Info) Name() string       { return i.name }
func (i *Info) Size() int64        { return i.st.Size }
func (i *Info) Mode() fs.FileMode  { return FileMode(i.st.Mode) }
func (i *Info) ModTime() time.Time { return time.Unix(i.st.Mtim.Unix()) }
func (i *Info) IsDir() bool        { return i.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (i *Info) Sys() any           { return &i.st }

// UID and GID are the file's owner.
func (i *Info) UID() int { return int(i.st.Uid) }
func (i *Info) GID() int { return int(i.st.Gid) }

// Uid and Gid are the owner as pkg/sftp's FileInfoUidGid reads it (Sys is
// a *unix.Stat_t, which it does not know).
func (i *Info) Uid() uint32 { return i.st.Uid }
func (i *Info) Gid() uint32 { return i.st.Gid }

// FileMode converts a mode_t to an fs.FileMode.
func FileMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		fm |= fs.ModeDir
	case unix.S_IFLNK:
		fm |= fs.ModeSymlink
	case unix.S_IFIFO:
		fm |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		fm |= fs.ModeSocket
	case unix.S_IFCHR:
		fm |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		fm |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		fm |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

func sortStrings(s []string) { sort.Strings(s) }
