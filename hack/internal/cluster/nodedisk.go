//go:build linux

package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The node's disk. containerd's root (image layers and every container's
// writable layer) and the kubelet's root (emptyDir volumes) live on a
// journaled ext4 filesystem in a sparse image file, loop-mounted at NodeDir,
// as they would on a real node's disk.
//
// Why not the host's filesystem: this machine's disk is ext4 without a
// journal, and there ext4 skips every inode deleted in the last minutes
// when it allocates a new one (find_inode_bit -> recently_deleted, checked
// only without a journal). After a test deletes a pod with 10,000 synced
// files, creating 10,000 files takes 5-7 s instead of 0.3 s for several
// minutes, for every tool alike; benchmarks then measure that rather than
// the tools. Measured with 10,000 creates right after deleting 100,000 files:
// 7.0 s on the host's disk, 0.30 s on a journaled ext4 image (docs/testing.md).
//
// KDEV_NODE_DISK=host keeps both roots on the host's filesystem; a failure
// to make or mount the image does the same, with a warning.

// NodeDir is the mount point of the node's disk.
func (c Config) NodeDir() string { return filepath.Join(c.StateDir, "node") }

// NodeDiskImage is the sparse image file behind the node's disk.
func (c Config) NodeDiskImage() string { return filepath.Join(c.StateDir, "node-disk.img") }

// nodeDiskSize is the image's apparent size; it takes only what is written.
const nodeDiskSize = 32 << 30

func (c Config) ensureNodeDisk() error {
	dir := c.NodeDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if isMountPoint(dir) || os.Getenv("KDEV_NODE_DISK") == "host" {
		return nil
	}
	if err := c.mountNodeDisk(); err != nil {
		fmt.Fprintf(c.Out, "warning: node disk: %v; containerd and the kubelet use the host's filesystem (%s)\n", err, dir)
	}
	return nil
}

func (c Config) mountNodeDisk() error {
	img, dir := c.NodeDiskImage(), c.NodeDir()
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		// Left from a cluster that ran on the host's filesystem: its
		// containers are gone (nothing runs yet), start afresh.
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("clear %s before mounting: %w", dir, err)
			}
		}
	}
	if _, err := os.Stat(img); os.IsNotExist(err) {
		f, err := os.Create(img)
		if err != nil {
			return err
		}
		err = f.Truncate(nodeDiskSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = run("mkfs.ext4", "-q", "-F", "-L", "kdev-node", "-E", "nodiscard", img)
		}
		if err != nil {
			os.Remove(img)
			return err
		}
		fmt.Fprintf(c.Out, "made the node disk %s (journaled ext4, sparse, %d GiB)\n", img, nodeDiskSize>>30)
	}
	if err := run("mount", "-o", "loop", img, dir); err != nil {
		return err
	}
	return nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// isMountPoint reports whether dir is a mount point.
func isMountPoint(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	for _, mp := range mountsUnder(f, dir) {
		if mp == filepath.Clean(dir) {
			return true
		}
	}
	return false
}
