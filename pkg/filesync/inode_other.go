//go:build !unix

package filesync

import "io/fs"

// inode is not known on this platform: renames are synced as a delete and a
// write.
func inode(fs.FileInfo) (dev, ino uint64, ok bool) { return 0, 0, false }
