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

	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"
)

// Identity is who a helper becomes.
type Identity struct {
	UID, GID int
	Groups   []int
}

// HelperArgs are the arguments of the sftp helper for p.
func HelperArgs(p *Proc) []string {
	return append([]string{HelperSFTP}, appArgs(p)...)
}

// appArgs are the flags that tell a helper which app to enter, as whom.
func appArgs(p *Proc) []string {
	groups := make([]string, 0, len(p.Groups))
	for _, g := range p.Groups {
		groups = append(groups, strconv.Itoa(g))
	}
	return []string{"--pid", strconv.Itoa(p.PID), "--uid", strconv.Itoa(p.UID), "--gid", strconv.Itoa(p.GID),
		"--groups", strings.Join(groups, ","), "--cwd", p.Cwd}
}

// appTarget is what appArgs tells a helper.
type appTarget struct {
	pid int
	cwd string
	id  Identity
}

// appFlags declares appArgs's flags on fs; the returned function reads them
// after fs.Parse and checks that pid, uid and gid were given.
func appFlags(fs *flag.FlagSet) func() (appTarget, error) {
	pid := fs.Int("pid", 0, "the app's pid")
	uid := fs.Int("uid", -1, "the app's uid")
	gid := fs.Int("gid", -1, "the app's gid")
	groups := fs.String("groups", "", "the app's supplementary groups, comma-separated")
	cwd := fs.String("cwd", "/", "the working directory inside the app's root")
	return func() (appTarget, error) {
		if *pid <= 0 || *uid < 0 || *gid < 0 {
			return appTarget{}, fmt.Errorf("--pid, --uid and --gid are required")
		}
		t := appTarget{pid: *pid, cwd: *cwd, id: Identity{UID: *uid, GID: *gid}}
		for _, g := range strings.Split(*groups, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(g)); err == nil {
				t.id.Groups = append(t.id.Groups, n)
			}
		}
		return t, nil
	}
}

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
	if err := srv.Serve(); err != nil && err != io.EOF {
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
