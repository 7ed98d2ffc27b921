//go:build linux

package images

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

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
