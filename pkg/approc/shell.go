//go:build linux

package approc

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ShellHelperArgs are the arguments of the shell helper for p, running argv
// (argv[0] names the busybox applet, e.g. "sh" or "-sh").
func ShellHelperArgs(p *Proc, busybox string, argv []string) []string {
	var groups []string
	for _, g := range p.Groups {
		groups = append(groups, strconv.Itoa(g))
	}
	args := []string{HelperShell, "--pid", strconv.Itoa(p.PID), "--uid", strconv.Itoa(p.UID), "--gid", strconv.Itoa(p.GID),
		"--groups", strings.Join(groups, ","), "--cwd", p.Cwd, "--busybox", busybox, "--"}
	return append(args, argv...)
}

// ShellHelperMain runs the shell helper; it returns only on failure.
func ShellHelperMain(args []string, log io.Writer) int {
	fs := flag.NewFlagSet(HelperShell, flag.ContinueOnError)
	fs.SetOutput(log)
	pid := fs.Int("pid", 0, "the app's pid")
	uid := fs.Int("uid", -1, "the app's uid")
	gid := fs.Int("gid", -1, "the app's gid")
	groups := fs.String("groups", "", "the app's supplementary groups, comma-separated")
	cwd := fs.String("cwd", "/", "the working directory inside the app's root")
	busybox := fs.String("busybox", "/bin/busybox", "the agent's static busybox")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	argv := fs.Args()
	if *pid <= 0 || *uid < 0 || *gid < 0 || len(argv) == 0 {
		fmt.Fprintln(log, "shell-in-app: --pid, --uid, --gid and a command are required")
		return 2
	}
	fd, err := unix.Open(*busybox, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintf(log, "shell-in-app: opening %s: %v\n", *busybox, err)
		return 1
	}
	id := Identity{UID: *uid, GID: *gid}
	for _, g := range strings.Split(*groups, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(g)); err == nil {
			id.Groups = append(id.Groups, n)
		}
	}
	if err := EnterApp(*pid, *cwd, id); err != nil {
		fmt.Fprintln(log, "shell-in-app:", err)
		return 1
	}
	err = execveat(fd, argv, os.Environ())
	fmt.Fprintf(log, "shell-in-app: executing busybox: %v\n", err)
	return 1
}

func execveat(fd int, argv, env []string) error {
	empty, err := syscall.BytePtrFromString("")
	if err != nil {
		return err
	}
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return errno
}
