//go:build linux

package syncserver_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncserver"
)

// BenchmarkInitialSync10k syncs 10,000 files of 5 KB over a pipe: the
// engine's own cost, without the network and the agent's CPU limit, with
// one and with several writers on the agent's side. Run it with TMPDIR on
// the filesystem to measure (the kernel's file creation dominates).
func BenchmarkInitialSync10k(b *testing.B) {
	local := b.TempDir()
	raw := make([]byte, 3750)
	for i := range 10000 {
		dir := filepath.Join(local, fmt.Sprintf("pkg%03d", i/100))
		_ = os.MkdirAll(dir, 0o755)
		_, _ = rand.Read(raw)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("m%03d.py", i%100)), []byte(base64.StdEncoding.EncodeToString(raw)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, w := range []int{1, 2, syncserver.DefaultWriters} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			testWriters = w
			defer func() { testWriters = 0 }()
			benchInitialSync(b, local)
		})
	}
}

func benchInitialSync(b *testing.B, local string) {
	for range b.N {
		b.StopTimer()
		app := b.TempDir()
		_ = os.MkdirAll(filepath.Join(app, "app"), 0o755)
		c := testSession(&testing.T{}, app, filesync.ClientOptions{})
		s, err := filesync.NewSyncer(c, filesync.Options{LocalDir: local})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		sum, err := s.InitialSync(context.Background())
		if err != nil || sum.Files != 10000 {
			b.Fatalf("%v %+v", err, sum)
		}
	}
}
