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
// Root is opened PID-reuse-proof with OpenProcess: /proc/<pid> is opened as a
// directory descriptor first, identity checks (cgroup, status) are read through
// it, and "root" is opened relative to it.
package rootfs
