//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
)

// editAndWait writes content to name in the local tree and polls the
// agent's hash of it every poll until it matches: the time from the write
// until the new content is readable in the app container.
func editAndWait(ctx context.Context, probe *filesync.Client, local, name string, content []byte, within, poll time.Duration) (time.Duration, error) {
	want := sha256.Sum256(content)
	start := time.Now()
	if err := os.WriteFile(filepath.Join(local, name), content, 0o644); err != nil {
		return 0, err
	}
	for {
		hs, err := probe.Hash(ctx, []string{name})
		if err != nil {
			return 0, err
		}
		if hs[name] == want {
			return time.Since(start), nil
		}
		if time.Since(start) > within {
			return 0, fmt.Errorf("the edit of %s is not visible in the pod after %s", name, within)
		}
		time.Sleep(poll)
	}
}

func (b *bench) latency(ctx context.Context, res *results) error {
	local, err := os.MkdirTemp("", "bench-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(local)
	if err := os.MkdirAll(filepath.Join(local, "src"), 0o755); err != nil {
		return err
	}
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(local, fmt.Sprintf("src/f%02d.py", i)), []byte("x = 1\n"), 0o644); err != nil {
			return err
		}
	}
	stop, err := b.startDevsync(ctx, local, "deploy/demo", "--dest", "/srv/latency")
	if err != nil {
		return err
	}
	defer stop()
	probe, closeProbe, err := b.probe(ctx, "/srv/latency")
	if err != nil {
		return err
	}
	defer closeProbe()
	var lat []time.Duration
	for i := range *edits {
		content := []byte(fmt.Sprintf("x = %d  # edit %d\n", i, i))
		name := fmt.Sprintf("src/f%02d.py", i%20)
		d, err := editAndWait(ctx, probe, local, name, content, 30*time.Second, time.Millisecond)
		if err != nil {
			return fmt.Errorf("edit %d: %w", i, err)
		}
		lat = append(lat, d)
		time.Sleep(50 * time.Millisecond) // separate edits, as a person's saves are
	}
	res.latency = lat
	b.logf("latency: p50 %s p95 %s over %d edits", pct(lat, 50), pct(lat, 95), len(lat))
	return nil
}
