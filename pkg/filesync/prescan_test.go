//go:build linux

package filesync

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPrescan: InitialSync takes the scan Prescan started (a file added
// after it is the watcher's, not this sync's), unless that scan is older
// than PrescanMaxAge (the connection waited for a pod): then it scans
// again and the added file is synced too.
func TestPrescan(t *testing.T) {
	for _, stale := range []bool{false, true} {
		appRoot := t.TempDir()
		app := filepath.Join(appRoot, "app")
		os.MkdirAll(app, 0o755)
		local := t.TempDir()
		write(t, filepath.Join(local, "before"), "b", 0o644)
		s, err := NewSyncer(nil, Options{LocalDir: local})
		if err != nil {
			t.Fatal(err)
		}
		s.Prescan()
		<-s.prescan.done
		if stale {
			s.prescan.start = time.Now().Add(-PrescanMaxAge - time.Second)
		}
		write(t, filepath.Join(local, "after"), "a", 0o644)
		s.SetClient(testSession(t, appRoot, ClientOptions{}))
		sum, err := s.InitialSync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := "before=b\n"
		if stale {
			want = "after=a\nbefore=b\n"
		}
		if got := contents(t, app); got != want {
			t.Errorf("stale=%v: tree %q, want %q (summary %+v)", stale, got, want, sum)
		}
		if s.prescan != nil {
			t.Errorf("stale=%v: the prescan was not consumed", stale)
		}
	}
}
