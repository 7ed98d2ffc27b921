//go:build linux

package buildkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// Build builds o.Dir's Dockerfile with buildctl on the daemon and pushes the
// image to o.Image; it returns the pushed manifest digest ("sha256:...").
// When the build fails, the error carries BuildKit's own error lines.
func (d *Daemon) Build(ctx context.Context, o BuildOptions) (string, error) {
	if strings.HasPrefix(o.Image, testbed.RegistryAddr()+"/") || strings.HasPrefix(o.Image, testbed.RegistryLinkAddr()+"/") {
		o.Insecure = true
	}
	meta, err := os.CreateTemp("", "kdev-buildctl-metadata-")
	if err != nil {
		return "", err
	}
	meta.Close()
	defer os.Remove(meta.Name())
	args, err := buildctlArgs(o, meta.Name())
	if err != nil {
		return "", err
	}
	if err := checkFiles(o); err != nil {
		return "", err
	}
	// buildctl runs as the caller: it reads the context and sends it to the
	// daemon, which runs as the unprivileged user.
	cmd := exec.CommandContext(ctx, Bin("buildctl"), append([]string{"--addr", d.Addr}, args...)...)
	var progress lockedBuffer
	var w io.Writer = &progress
	if o.Output != nil {
		w = io.MultiWriter(&progress, o.Output)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("buildctl build %s: %w\n%s", o.Image, err, errorLines(progress.String()))
	}
	b, err := os.ReadFile(meta.Name())
	if err != nil {
		return "", err
	}
	return pushedDigest(b)
}

// checkFiles fails when the context or the Dockerfile is missing, before a
// daemon starts for nothing.
func checkFiles(o BuildOptions) error {
	if fi, err := os.Stat(o.Dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("build context %s: not a directory", o.Dir)
	}
	if fi, err := os.Stat(dockerfileOf(o)); err != nil || fi.IsDir() {
		return fmt.Errorf("no Dockerfile %s: give its path with -f", dockerfileOf(o))
	}
	return nil
}

func dockerfileOf(o BuildOptions) string {
	if o.Dockerfile != "" {
		return o.Dockerfile
	}
	return filepath.Join(o.Dir, "Dockerfile")
}

// Build is daemonless: Start, Build, Stop, with the default state directory
// (its cache stays for the next build). Ensure must have run.
func Build(ctx context.Context, o BuildOptions, log io.Writer) (digest string, err error) {
	if _, err := buildctlArgs(o, "-"); err != nil {
		return "", err
	}
	if err := checkFiles(o); err != nil {
		return "", err
	}
	d, err := Start(ctx, DaemonOptions{Log: log})
	if err != nil {
		return "", err
	}
	defer func() {
		if serr := d.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	return d.Build(ctx, o)
}

// lockedBuffer is a bytes.Buffer that buildctl's stdout and stderr write
// to at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
