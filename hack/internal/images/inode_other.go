//go:build !unix

package images

import "io/fs"

// inodeOf: no hard links are detected where there is no syscall.Stat_t.
func inodeOf(fi fs.FileInfo) (dev, ino uint64, ok bool) { return 0, 0, false }
