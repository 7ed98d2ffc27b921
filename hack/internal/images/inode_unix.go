//go:build unix

package images

import (
	"io/fs"
	"syscall"
)

// inodeOf returns the device and inode of a file with more than one link,
// so that its hard links are packed as links.
func inodeOf(fi fs.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink <= 1 {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true // the types differ by GOOS
}
