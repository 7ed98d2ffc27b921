//go:build linux

package approc

import (
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ShellHelperArgs are the arguments of the shell helper for p, running argv
// (argv[0] names the busybox applet, e.g. "sh" or "-sh").
func ShellHelperArgs(p *Proc, busybox string, argv []string) []string {
	args := append([]string{HelperShell}, appArgs(p)...)
	args = append(args, "--busybox", busybox, "--")
	return append(args, argv...)
}

// ShellHelperMain runs the shell helper; it returns only on failure.
func ShellHelperMain(args []string, log io.Writer) int {
	fs := flag.NewFlagSet(HelperShell, flag.ContinueOnError)
	fs.SetOutput(log)
	target := appFlags(fs)
	busybox := fs.String("busybox", "/bin/busybox", "the agent's static busybox")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	argv := fs.Args()
	t, err := target()
	if err == nil && len(argv) == 0 {
		err = fmt.Errorf("a command is required")
	}
	if err != nil {
		fmt.Fprintln(log, "shell-in-app:", err)
		return 2
	}
	fd, err := unix.Open(*busybox, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintf(log, "shell-in-app: opening %s: %v\n", *busybox, err)
		return 1
	}
	if err := EnterApp(t.pid, t.cwd, t.id); err != nil {
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
