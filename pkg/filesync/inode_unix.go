//go:build unix

package filesync

import (
	"io/fs"
	"syscall"
)

// inode returns the device and inode of a local file, which lets the syncer
// recognise a rename (the same inode under a new name) and not resend it.
func inode(info fs.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true
}
