//go:build linux

// Package buildkit runs BuildKit in the test bed, rootless and daemonless:
// buildkitd and buildctl (testbed.BuildKitVersion) and rootlesskit
// (testbed.RootlessKitVersion) are built once per machine into the cache,
// like Kubernetes; each build starts buildkitd under RootlessKit as the test
// bed's unprivileged user (User) on a private socket, builds a Dockerfile
// with buildctl, pushes the image to the registry and stops the daemon, as
// BuildKit's buildctl-daemonless.sh does. The build cache lives in a state
// directory that outlives the daemons, so a rebuild after a small change is
// cached.
package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-dev/kubectl-dev/hack/internal/gomod"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// User is the unprivileged user buildkitd runs as (KDEV_BUILDKIT_USER).
func User() string { return testbed.Getenv("KDEV_BUILDKIT_USER", "kdev-build") }

// Dir holds what this package keeps per machine: bin/ (the binaries, with a
// stamp of the version each was built at), state/ (buildkitd's root: its
// build cache) and buildkitd.log.
func Dir() string { return filepath.Join(testbed.CacheDir(), "buildkit") }

// BinDir holds buildkitd, buildctl and rootlesskit.
func BinDir() string { return filepath.Join(Dir(), "bin") }

// Bin is the path of one of the binaries.
func Bin(name string) string { return filepath.Join(BinDir(), name) }

// DefaultStateDir is buildkitd's root (its cache) when DaemonOptions.StateDir is empty.
func DefaultStateDir() string { return filepath.Join(Dir(), "state") }

// runDir holds one private directory per running daemon (its XDG_RUNTIME_DIR).
func runDir() string { return filepath.Join(testbed.RunDir(), "buildkit") }

// recipe changes when the way the binaries are built changes, so that a
// cache built the old way is rebuilt.
const recipe = "1"

// systemPath is the PATH the daemon runs with: Debian's runc is in /usr/sbin.
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type binary struct{ name, version string }

func binaries() []binary {
	return []binary{
		{"buildkitd", testbed.BuildKitVersion},
		{"buildctl", testbed.BuildKitVersion},
		{"rootlesskit", testbed.RootlessKitVersion},
	}
}

func stamp(version string) string  { return version + " recipe " + recipe + "\n" }
func stampFile(name string) string { return filepath.Join(BinDir(), "."+name+".stamp") }
func built(name, version string) bool {
	if _, err := os.Stat(Bin(name)); err != nil {
		return false
	}
	b, err := os.ReadFile(stampFile(name))
	return err == nil && string(b) == stamp(version)
}

// Ensure builds buildkitd, buildctl and rootlesskit into the cache unless
// they are there at the pinned versions, installs Debian's uidmap (and runc)
// when missing, and creates the unprivileged user with its subordinate ID
// ranges when missing. It is idempotent and quick when all is in place; it
// needs root. Progress goes to log.
func Ensure(ctx context.Context, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("setting up rootless BuildKit needs root (to install uidmap and add the user %s): run as root", User())
	}
	if err := os.MkdirAll(BinDir(), 0o755); err != nil {
		return err
	}
	// One installer per machine: a second one waits, then finds all done.
	unlock, err := lockFile(ctx, filepath.Join(Dir(), ".ensure.lock"), nil, "")
	if err != nil {
		return err
	}
	defer unlock()
	if err := ensurePackages(ctx, log); err != nil {
		return err
	}
	if _, err := ensureUser(ctx, log); err != nil {
		return err
	}
	return ensureBinaries(ctx, log)
}

// ensurePackages installs what rootless buildkitd needs from Debian:
// newuidmap/newgidmap (uidmap) and runc, each only when missing.
func ensurePackages(ctx context.Context, log io.Writer) error {
	var missing []string
	for _, p := range []struct{ bin, pkg string }{{"newuidmap", "uidmap"}, {"newgidmap", "uidmap"}, {"runc", "runc"}} {
		if _, err := lookPath(p.bin); err != nil && !contains(missing, p.pkg) {
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(log, "apt-get install %s (for rootless BuildKit) ...\n", strings.Join(missing, " "))
	install := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, missing...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	out, err := install()
	if err != nil {
		// The package lists may be missing or old on a fresh machine.
		if upd, uerr := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); uerr != nil {
			return fmt.Errorf("apt-get update: %w\n%s", uerr, tail(string(upd), 20))
		}
		out, err = install()
	}
	if err != nil {
		return fmt.Errorf("apt-get install %s: %w\n%s", strings.Join(missing, " "), err, tail(string(out), 20))
	}
	return nil
}

// lookPath finds a program on PATH or in the system directories (root's PATH
// may lack /usr/sbin).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range filepath.SplitList(systemPath) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// account is the unprivileged user.
type account struct {
	name     string
	uid, gid int
	home     string
}

// lookupUser returns the unprivileged user, or an error naming the remedy.
func lookupUser() (account, error) {
	u, err := user.Lookup(User())
	if err != nil {
		return account{}, fmt.Errorf("user %s: %w (run `kdev build` or buildkit.Ensure as root first, which adds it)", User(), err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return account{}, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return account{}, err
	}
	return account{name: u.Username, uid: uid, gid: gid, home: u.HomeDir}, nil
}

// ensureUser adds the unprivileged user when missing, and gives it
// subordinate user and group ID ranges when it has none.
func ensureUser(ctx context.Context, log io.Writer) (account, error) {
	if _, err := user.Lookup(User()); err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return account{}, fmt.Errorf("looking up user %s: %w", User(), err)
		}
		fmt.Fprintf(log, "adding the unprivileged user %s (rootless BuildKit runs as it)\n", User())
		out, err := exec.CommandContext(ctx, "useradd", "--create-home", "--shell", "/usr/sbin/nologin",
			"--comment", "kubectl-dev test bed, rootless BuildKit", User()).CombinedOutput()
		if err != nil {
			return account{}, fmt.Errorf("useradd %s: %w\n%s", User(), err, out)
		}
	}
	a, err := lookupUser()
	if err != nil {
		return account{}, err
	}
	for _, f := range []struct{ path, flag string }{{"/etc/subuid", "--add-subuids"}, {"/etc/subgid", "--add-subgids"}} {
		b, err := os.ReadFile(f.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return account{}, err
		}
		if hasRange(string(b), a.name, a.uid) {
			continue
		}
		start := freeRange(string(b), subIDCount)
		r := fmt.Sprintf("%d-%d", start, start+subIDCount-1)
		fmt.Fprintf(log, "giving %s the subordinate IDs %s in %s\n", a.name, r, f.path)
		if out, err := exec.CommandContext(ctx, "usermod", f.flag, r, a.name).CombinedOutput(); err != nil {
			return account{}, fmt.Errorf("usermod %s %s %s: %w\n%s", f.flag, r, a.name, err, out)
		}
	}
	return a, nil
}

// ensureBinaries builds what is missing or stale.
func ensureBinaries(ctx context.Context, log io.Writer) error {
	if !built("buildkitd", testbed.BuildKitVersion) || !built("buildctl", testbed.BuildKitVersion) {
		if err := buildBuildKit(ctx, log); err != nil {
			return err
		}
	}
	if !built("rootlesskit", testbed.RootlessKitVersion) {
		if err := buildRootlessKit(ctx, log); err != nil {
			return err
		}
	}
	return nil
}

func goEnv(extra ...string) []string {
	return append(append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOOS=", "GOARCH="), extra...)
}

// buildBuildKit builds buildkitd and buildctl inside a writable copy of the
// github.com/moby/buildkit module: `go install ...@version` refuses the
// module's go.mod, which has exclude directives.
func buildBuildKit(ctx context.Context, log io.Writer) error {
	v := testbed.BuildKitVersion
	fmt.Fprintf(log, "building buildkitd and buildctl %s (once per machine: seconds with Go's build cache warm, minutes without) ...\n", v)
	start := time.Now()
	dir, err := gomod.Download(ctx, "github.com/moby/buildkit@"+v, goEnv("GOFLAGS=-mod=mod"))
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(Dir(), ".src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "buildkit")
	if out, err := exec.CommandContext(ctx, "cp", "-r", dir, src).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %w: %s", dir, err, out)
	}
	if out, err := exec.CommandContext(ctx, "chmod", "-R", "u+w", src).CombinedOutput(); err != nil {
		return fmt.Errorf("chmod: %w: %s", err, out)
	}
	out := filepath.Join(work, "out")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/moby/buildkit/version.Version="+v,
		"-o", out+"/", "./cmd/buildkitd", "./cmd/buildctl")
	cmd.Dir = src
	cmd.Env = goEnv("GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build buildkitd buildctl %s: %w\n%s", v, err, tail(string(b), 30))
	}
	for _, b := range []string{"buildkitd", "buildctl"} {
		if err := install(filepath.Join(out, b), b, v); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "  built buildkitd and buildctl in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// buildRootlessKit builds rootlesskit with go install.
func buildRootlessKit(ctx context.Context, log io.Writer) error {
	v := testbed.RootlessKitVersion
	fmt.Fprintf(log, "building rootlesskit %s (once per machine) ...\n", v)
	start := time.Now()
	work, err := os.MkdirTemp(Dir(), ".gobin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cmd := exec.CommandContext(ctx, "go", "install", "-trimpath", "-ldflags", "-s -w",
		"github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit@"+v)
	cmd.Env = goEnv("GOBIN="+work, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go install rootlesskit %s: %w\n%s", v, err, tail(string(b), 30))
	}
	if err := install(filepath.Join(work, "rootlesskit"), "rootlesskit", v); err != nil {
		return err
	}
	fmt.Fprintf(log, "  built rootlesskit in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// install moves a built binary into BinDir and stamps its version.
func install(path, name, version string) error {
	if err := os.Chmod(path, 0o755); err != nil {
		return err
	}
	if err := os.Rename(path, Bin(name)); err != nil {
		return err
	}
	return os.WriteFile(stampFile(name), []byte(stamp(version)), 0o644)
}

// lockFile takes an exclusive flock on path, waiting for it; when another
// holder makes it wait, it says so once on log. It returns the unlock.
func lockFile(ctx context.Context, path string, log io.Writer, what string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !said && log != nil && what != "" {
			fmt.Fprintf(log, "waiting for %s (lock %s)\n", what, path)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
