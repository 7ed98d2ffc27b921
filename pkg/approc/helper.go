//go:build linux

package approc

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"
)

// HelperMain runs the sftp helper; args follow the subcommand's name.
func HelperMain(args []string, stdin io.Reader, stdout io.WriteCloser, log io.Writer) int {
	fs := flag.NewFlagSet(HelperSFTP, flag.ContinueOnError)
	fs.SetOutput(log)
	target := appFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	t, err := target()
	if err != nil {
		fmt.Fprintln(log, "sftp-in-app:", err)
		return 2
	}
	if err := EnterApp(t.pid, t.cwd, t.id); err != nil {
		fmt.Fprintln(log, "sftp-in-app:", err)
		return 1
	}
	srv, err := sftp.NewServer(struct {
		io.Reader
		io.WriteCloser
	}{stdin, stdout}, sftp.WithServerWorkingDirectory(currentDir()))
	if err != nil {
		fmt.Fprintln(log, "sftp-in-app:", err)
		return 1
	}
	if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(log, "sftp-in-app:", err)
		return 1
	}
	return 0
}

func currentDir() string {
	d, err := os.Getwd()
	if err != nil {
		return "/"
	}
	return d
}

// EnterApp chroots the calling process into the app's root, changes to
// cwd there (or /), and takes the app's identity. It needs CAP_SYS_CHROOT,
// CAP_SETUID and CAP_SETGID; Go applies the uid and gid to every thread.
func EnterApp(pid int, cwd string, id Identity) error {
	root := fmt.Sprintf("/proc/%d/root", pid)
	if err := syscall.Chroot(root); err != nil {
		return fmt.Errorf("chroot %s: %w", root, err)
	}
	if err := syscall.Chdir(cwd); err != nil {
		if err := syscall.Chdir("/"); err != nil {
			return err
		}
	}
	if err := syscall.Setgroups(id.Groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(id.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", id.GID, err)
	}
	if err := syscall.Setuid(id.UID); err != nil {
		return fmt.Errorf("setuid %d: %w", id.UID, err)
	}
	return nil
}

// CanChroot reports whether this process may chroot and change identity:
// uid 0 with CAP_SYS_CHROOT, CAP_SETUID and CAP_SETGID effective.
func CanChroot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false
			}
			need := uint64(1)<<unix.CAP_SYS_CHROOT | uint64(1)<<unix.CAP_SETUID | uint64(1)<<unix.CAP_SETGID
			return caps&need == need
		}
	}
	return false
}
