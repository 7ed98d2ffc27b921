package images

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// The Debian root filesystem of the demo-python image, made with debootstrap
// and cached as an image layer. (Nothing to do with pkg/rootfs, which is the
// agent's file access inside a container's root.)
const (
	debianSuite = "bookworm"
	// debianRecipe changes when the way the root filesystem is made or
	// trimmed changes, so that the cached layer is made again.
	debianRecipe = "debootstrap-minbase-trim-v1"
)

// debianPackages are added to the minbase variant.
// rsync is there for `rsync -e ssh` through kubectl devssh, as in an app image
// a developer would rsync to.
var debianPackages = []string{"python3-pyramid", "python3-waitress", "python3-watchdog", "rsync"}

// DebianMirror is where debootstrap fetches packages (KDEV_DEBIAN_MIRROR).
func DebianMirror() string {
	return testbed.Getenv("KDEV_DEBIAN_MIRROR", "http://deb.debian.org/debian")
}

// debianLayerKey names the cached root filesystem layer after everything it is made from.
func debianLayerKey() string {
	pkgs := append([]string(nil), debianPackages...)
	sort.Strings(pkgs)
	sum := sha256.Sum256([]byte(strings.Join([]string{debianRecipe, debianSuite, DebianMirror(), strings.Join(pkgs, ",")}, "\n")))
	// The "rootfs-" prefix names layers already cached on machines: kept.
	return "rootfs-" + debianSuite + "-" + hex.EncodeToString(sum[:8])
}

// debianLayer returns the layer of a Debian root filesystem with Python, Pyramid,
// Waitress and Watchdog. It is made once per machine with debootstrap (a few
// minutes, as root) and then taken from the cache.
func debianLayer(ctx context.Context, out io.Writer) (v1.Layer, error) {
	key := debianLayerKey()
	if l := cachedLayer(key); l != nil {
		return l, nil
	}
	if err := os.MkdirAll(layersDir(), 0o755); err != nil {
		return nil, err
	}
	// One builder per machine: a second `images build` waits for the first.
	lock, err := os.OpenFile(filepath.Join(layersDir(), key+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	if l := cachedLayer(key); l != nil {
		return l, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the demo-python root filesystem is made with debootstrap, which needs root (cache %s is empty)", layersDir())
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return nil, fmt.Errorf("debootstrap not found: apt-get install debootstrap")
	}

	work, err := os.MkdirTemp(cacheDir(), "debootstrap-")
	if err != nil {
		return nil, err
	}
	defer removeTree(work)
	root := filepath.Join(work, "root")
	logPath := filepath.Join(cacheDir(), key+".debootstrap.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	start := time.Now()
	fmt.Fprintf(out, "making Debian %s root filesystem with debootstrap (a few minutes, once per machine), log %s\n", debianSuite, logPath)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--include="+strings.Join(debianPackages, ","), debianSuite, root, DebianMirror())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	// On cancel, stop debootstrap and the dpkg it runs in the chroot.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("debootstrap: %w (see %s)", err, logPath)
	}
	if err := unmountUnder(root); err != nil {
		return nil, err
	}
	if err := trimDebian(root); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "debootstrap done in %s, packing the layer\n", time.Since(start).Round(time.Second))

	l, err := writeLayer(key, gzip.DefaultCompression, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		tw := tar.NewWriter(bw)
		if err := tarDir(tw, root, dirOptions{Skip: skipVirtual}); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "root filesystem layer %s (%s) ready after %s\n", l.meta.Digest, mb(l.meta.Size), time.Since(start).Round(time.Second))
	return l, nil
}

// skipVirtual leaves out what the container runtime provides: device nodes and
// anything under /dev, /proc and /sys (the directories themselves stay).
func skipVirtual(rel string, d fs.DirEntry) bool {
	for _, p := range []string{"dev/", "proc/", "sys/"} {
		if strings.HasPrefix(rel, p) {
			return true
		}
	}
	return d.Type()&(fs.ModeDevice|fs.ModeCharDevice) != 0
}

// trimDebian removes apt's caches and lists, documentation, logs and other
// files an image does not need.
func trimDebian(root string) error {
	for _, pattern := range []string{
		"var/cache/apt/*", "var/cache/debconf/*-old", "var/lib/apt/lists/*",
		"usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/lintian/*",
		"usr/share/locale/*", "var/log/*", "tmp/*", "var/tmp/*", "root/.*_history",
		"etc/hostname", "etc/machine-id", "var/lib/dbus/machine-id",
	} {
		matches, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	// Keep apt usable inside the image, but without its caches.
	return os.MkdirAll(filepath.Join(root, "var/lib/apt/lists/partial"), 0o755)
}

// mountsUnder lists the mount points at or under dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			found = append(found, mp)
		}
	}
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	return found, nil
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// unmountUnder detaches whatever debootstrap may have left mounted (proc, sys,
// dev when it was interrupted) and fails if something stays.
func unmountUnder(dir string) error {
	mps, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
	}
	if mps, _ = mountsUnder(dir); len(mps) > 0 {
		return fmt.Errorf("still mounted under %s: %v", dir, mps)
	}
	return nil
}

// removeTree removes a build directory, but never through a mount point (a
// leftover /proc or /dev bind mount inside a chroot).
func removeTree(dir string) {
	if err := unmountUnder(dir); err != nil {
		fmt.Fprintf(os.Stderr, "images: leaving %s in place: %v\n", dir, err)
		return
	}
	os.RemoveAll(dir)
}
