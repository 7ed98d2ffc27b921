// Package rootfs performs file operations confined to another process's root
// filesystem, as seen by the devagent sidecar through /proc/<pid>/root.
//
// A plain string join under /proc/<pid>/root is unsafe: the kernel jumps into
// the app's root at the "root" magic link, but absolute symlinks met after the
// jump resolve against the caller's (the sidecar's) root, and magic links such
// as /proc/self/root inside the app's tree jump anywhere. Every lookup here is
// therefore done with openat2(2) relative to an O_PATH descriptor of the app's
// root, with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS: ".." is clamped at the root,
// absolute symlinks resolve inside it, magic links are refused (ELOOP).
//
// The final component of a path is never followed by operations that change
// it (write, symlink, remove, rename, chmod, chtimes): they act on the parent
// directory's descriptor with *at(2) calls, so a symlink named like the target
// is replaced or removed as a link, never written through. The exceptions,
// in follow.go (OpenFile, Stat, Chown, ChmodFollow, ChtimesFollow, Truncate),
// follow it as their POSIX namesakes do, for the sftp server; the link is
// still resolved inside the root.
//
// Why not Go's os.Root (os.OpenRoot, Go 1.24): it confines paths too, but by
// refusing what would leave the root instead of resolving it inside the root.
// An absolute symlink is an error there, and so is a relative one that climbs
// above the root. Inside a container, /etc/alternatives/python -> /usr/bin/...
// or a /app/current -> /srv/releases/42 link is absolute and means the
// container's own root, and a program running there follows it so; the agent
// must resolve it the same way, which is what openat2(2) with RESOLVE_IN_ROOT
// does ("/" and ".." are the root, as after chroot). os.Root also has no
// O_TMPFILE, no *at(2) on a held parent directory and no owner or mode
// control at creation, which the writers here need.
//
// Files by concern: root.go opens a Root and resolves paths in it, read.go
// reads (Lstat, Readlink, Open, ReadDir, Walk), write.go creates and writes
// files (Create, PendingFile, HoldDir, WriteFile, Symlink), tree.go changes
// the tree (Mkdir*, EnsureDir, Remove*, Rename, Publish), attr.go sets
// attributes (Chmod, Lchown, Chtimes), follow.go holds the operations that
// follow a final symlink, info.go the fs.FileInfo.
//
// Root is opened PID-reuse-proof with OpenProcess: /proc/<pid> is opened as a
// directory descriptor first, identity checks (cgroup, status) are read through
// it, and "root" is opened relative to it.
package rootfs
