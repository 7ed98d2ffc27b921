//go:build linux

package buildkit

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// TestDaemonRebuildIsCached runs the real thing where it can: root, the
// binaries built (buildkit.Ensure, `kdev build`) and the local registry up.
// A one-file change on a warm daemon rebuilds only that step, and the cache
// outlives the daemon: a new daemon on the same state directory builds the
// same image again from its cache, with the same digest.
func TestDaemonRebuildIsCached(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, b := range binaries() {
		if !built(b.name, b.version) {
			t.Skipf("%s is not built: run bin/kdev build (or buildkit.Ensure) once", b.name)
		}
	}
	if _, err := lookupUser(); err != nil {
		t.Skip(err)
	}
	c, err := net.DialTimeout("tcp", testbed.RegistryAddr(), time.Second)
	if err != nil {
		t.Skipf("no registry at %s: make cluster-up", testbed.RegistryAddr())
	}
	c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A state directory of the test's own, where kdev-build can reach it.
	state, err := os.MkdirTemp(Dir(), "test-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state); os.Remove(state + ".lock"); os.Remove(state + ".log") })
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", "FROM scratch\nCOPY a /a\nCOPY b /b\n")
	write("a", "a")
	write("b", time.Now().String())
	ref := testbed.Image("buildkit-unit-test", "x")

	var log bytes.Buffer
	d, err := Start(ctx, DaemonOptions{StateDir: state, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	build := func(d *Daemon) (string, string) {
		t.Helper()
		var progress bytes.Buffer
		start := time.Now()
		digest, err := d.Build(ctx, BuildOptions{Dir: dir, Image: ref, Output: &progress})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, progress.String())
		}
		t.Logf("built and pushed %s in %s", digest, time.Since(start).Round(time.Millisecond))
		return digest, progress.String()
	}
	first, _ := build(d)
	write("b", "changed "+time.Now().String())
	second, progress := build(d)
	if second == first {
		t.Fatal("a changed file, the same digest")
	}
	if !cachedStep(progress, "COPY a /a") || cachedStep(progress, "COPY b /b") {
		t.Fatalf("want COPY a cached and COPY b run:\n%s", progress)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(strings.TrimPrefix(d.Addr, "unix://")); err == nil {
		t.Fatal("the daemon's socket is still there after Stop")
	}

	d2, err := Start(ctx, DaemonOptions{StateDir: state, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Stop()
	third, progress := build(d2)
	if third != second || !cachedStep(progress, "COPY b /b") {
		t.Fatalf("a new daemon on the same state: digest %s (want %s), COPY b not cached:\n%s", third, second, progress)
	}
}

// cachedStep reports whether BuildKit's plain progress says the step was
// taken from the cache ("#5 [2/2] COPY b /b" then "#5 CACHED").
func cachedStep(progress, step string) bool {
	id := ""
	for _, l := range strings.Split(progress, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		if strings.HasSuffix(l, "] "+step) {
			id = f[0]
		} else if id != "" && f[0] == id && f[1] == "CACHED" {
			return true
		}
	}
	return false
}
