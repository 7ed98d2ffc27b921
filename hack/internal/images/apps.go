package images

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// Busybox is the static busybox put into the devagent image (KDEV_BUSYBOX).
func Busybox() string { return testbed.Getenv("KDEV_BUSYBOX", "/bin/busybox") }

// busyboxLayer holds /bin/busybox, a symbolic link /bin/<applet> -> busybox
// for each of its applets, and /tmp.
func busyboxLayer(ctx context.Context) (v1.Layer, error) {
	bb := Busybox()
	if err := checkStatic(bb); err != nil {
		return nil, fmt.Errorf("%w (Debian: apt-get install busybox-static)", err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return nil, err
	}
	list, err := exec.CommandContext(ctx, bb, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", bb, err)
	}
	return busyboxLayerOf(data, list)
}

// busyboxLayerOf is busyboxLayer for a given binary and its applet list
// (the output of `busybox --list`).
func busyboxLayerOf(data, list []byte) (v1.Layer, error) {
	entries := []entry{
		dir("bin", 0o755), dir("usr", 0o755), dir("usr/bin", 0o755), dir("tmp", 0o1777),
		file("bin/busybox", 0o755, data),
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		entries = append(entries, symlink("bin/"+applet, "busybox"))
	}
	return memLayer(entries)
}

// checkStatic fails unless path is an ELF executable without an interpreter.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("busybox %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("busybox %s is dynamically linked", path)
		}
	}
	return nil
}
