package approc

// HelperSFTP is the agent's subcommand that serves sftp on stdin and stdout
// chrooted into an app's root as the app's user:
//
//	devagent sftp-in-app --pid N --uid U --gid G [--groups G1,G2] [--cwd DIR]
//
// The kernel then enforces containment: absolute symlinks resolve against
// the app's root, and after dropping to the app's uid, /proc/<pid>/root of
// the agent's processes is out of reach (ptrace access check).
const HelperSFTP = "sftp-in-app"

// HelperShell is the agent's subcommand that runs the agent's own static
// busybox inside the app's root, for apps whose image has no shell
// (distroless):
//
//	devagent shell-in-app --pid N --uid U --gid G [--groups ...] [--cwd DIR] [--busybox PATH] -- ARGV...
//
// It opens the busybox binary, chroots into /proc/<pid>/root, takes the
// app's identity and executes the opened binary with execveat(2). Busybox
// then runs its applets itself (standalone shell), so "ls" or "cat" work
// although the app's image has none; every path is the app's, enforced by
// the kernel.
const HelperShell = "shell-in-app"
