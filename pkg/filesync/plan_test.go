package filesync

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

func f(p string, size, mtime int64) syncproto.Entry {
	return syncproto.Entry{Path: p, Type: syncproto.TypeFile, Mode: 0o644, Size: size, MTime: mtime}
}
func d(p string) syncproto.Entry {
	return syncproto.Entry{Path: p, Type: syncproto.TypeDir, Mode: 0o755}
}
func l(p, target string) syncproto.Entry {
	return syncproto.Entry{Path: p, Type: syncproto.TypeSymlink, Mode: 0o777, Target: target}
}
func withMode(e syncproto.Entry, m uint32) syncproto.Entry { e.Mode = m; return e }

func opsString(ops []syncproto.Op) string {
	var s []string
	for _, op := range ops {
		x := op.Kind.String() + " " + op.Path
		if op.To != "" {
			x += "->" + op.To
		}
		s = append(s, x)
	}
	return strings.Join(s, "; ")
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name          string
		local, remote []syncproto.Entry
		delete        bool
		want          string
		check         string
	}{
		{"empty remote", []syncproto.Entry{d("a"), f("a/x", 1, 1), l("ln", "a/x")}, nil, false, "mkdir a; write a/x; symlink ln", ""},
		{"identical", []syncproto.Entry{d("a"), f("a/x", 1, 1)}, []syncproto.Entry{d("a"), f("a/x", 1, 1)}, false, "", ""},
		{"size differs", []syncproto.Entry{f("x", 2, 1)}, []syncproto.Entry{f("x", 1, 1)}, false, "write x", ""},
		{"mtime differs: hash", []syncproto.Entry{f("x", 1, 2)}, []syncproto.Entry{f("x", 1, 1)}, false, "", "x"},
		{"mode differs", []syncproto.Entry{withMode(f("x", 1, 1), 0o755)}, []syncproto.Entry{f("x", 1, 1)}, false, "chmod x", ""},
		{"symlink target", []syncproto.Entry{l("ln", "b")}, []syncproto.Entry{l("ln", "a")}, false, "symlink ln", ""},
		{"dir replaced by file", []syncproto.Entry{f("a", 1, 1)}, []syncproto.Entry{d("a"), f("a/x", 1, 1)}, false, "delete a; write a", ""},
		{"file replaced by dir", []syncproto.Entry{d("a"), f("a/x", 1, 1)}, []syncproto.Entry{f("a", 1, 1)}, false, "delete a; mkdir a; write a/x", ""},
		{"file replaced by symlink", []syncproto.Entry{l("a", "t")}, []syncproto.Entry{f("a", 1, 1)}, false, "symlink a", ""},
		{"remote-only kept", []syncproto.Entry{f("x", 1, 1)}, []syncproto.Entry{f("x", 1, 1), d("old"), f("old/y", 1, 1)}, false, "", ""},
		{"remote-only deleted once", []syncproto.Entry{f("x", 1, 1)}, []syncproto.Entry{f("x", 1, 1), d("old"), f("old/y", 1, 1), f("z", 1, 1)}, true, "delete old; delete z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Diff(tt.local, tt.remote, PlanOptions{Delete: tt.delete})
			got := opsString(p.Ops)
			if got != tt.want {
				t.Errorf("ops %q, want %q", got, tt.want)
			}
			var check []string
			for _, e := range p.Check {
				check = append(check, e.Path)
			}
			if strings.Join(check, ",") != tt.check {
				t.Errorf("check %q, want %q", check, tt.check)
			}
		})
	}
}

func TestResolveHashes(t *testing.T) {
	p := Diff([]syncproto.Entry{f("same", 1, 2), f("other", 1, 2)}, []syncproto.Entry{f("same", 1, 1), f("other", 1, 1)}, PlanOptions{})
	p.ResolveHashes(map[string][32]byte{"same": {1}, "other": {2}}, map[string][32]byte{"same": {1}, "other": {3}})
	if got := opsString(p.Ops); got != "write other; chtimes same" {
		t.Errorf("ops %q", got)
	}
}

func TestIgnore(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, ".gitignore"), "*.log\n/build/\nnode_modules\n!keep.log\ndocs/**/*.tmp\n\\#hash\n", 0o644)
	write(t, filepath.Join(root, "sub/.gitignore"), "local-only\n!*.log\n", 0o644)
	write(t, filepath.Join(root, ".dockerignore"), "secrets\n*.pem\n", 0o644)
	tests := []struct {
		path    string
		dir     bool
		ignored bool
	}{
		{".git", true, true},
		{".git/config", false, true},
		{"sub/.git/HEAD", false, true},
		{"a.log", false, true},
		{"deep/er/a.log", false, true},
		{"keep.log", false, false},
		{"build", true, true},
		{"build/x", false, true},
		{"src/build", true, false}, // anchored
		{"node_modules/x/y.js", false, true},
		{"src/node_modules", true, true},
		{"docs/a/b/c.tmp", false, true},
		{"docs/c.tmp", false, true},
		{"other/c.tmp", false, false},
		{"#hash", false, true},
		{"sub/local-only", false, true},
		{"local-only", false, false},
		{"sub/re.log", false, false}, // re-included by the nested file
		{"secrets", false, true},     // .dockerignore, anchored
		{"sub/secrets", false, false},
		{"key.pem", false, true},
		{"sub/key.pem", false, false},
		{"excluded.tmp", false, true}, // --exclude
		{"main.go", false, false},
	}
	ig, err := NewIgnorer(root, IgnoreOptions{Excludes: []string{"excluded.*"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if got := ig.Match(tt.path, tt.dir); got != tt.ignored {
			t.Errorf("Match(%q, dir=%v) = %v, want %v", tt.path, tt.dir, got, tt.ignored)
		}
	}
	// The nested file cannot re-include below an ignored directory.
	write(t, filepath.Join(root, "build/.gitignore"), "!*\n", 0o644)
	if !ig.Match("build/x", false) {
		t.Error("a file below an ignored directory was re-included")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// collect gathers batches from a watcher.
type collector struct {
	mu      sync.Mutex
	seen    map[string]bool
	batches int
}

func collect(ctx context.Context, w *Watcher) *collector {
	c := &collector{seen: map[string]bool{}}
	go func() {
		for {
			paths, err := w.Next(ctx)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.batches++
			for _, p := range paths {
				c.seen[p] = true
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) has(p string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[p] || c.seen["."]
}

func TestWatcherDebounceAndNewDirs(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, ".gitignore"), "ignored/\n", 0o644)
	os.MkdirAll(filepath.Join(root, "ignored"), 0o755)
	ig, _ := NewIgnorer(root, IgnoreOptions{})
	w, err := NewWatcher(root, ig, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Polling() {
		t.Fatal("polling without a reason")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := collect(ctx, w)
	for i := range 100 {
		write(t, filepath.Join(root, "burst", "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), "x", 0o644)
	}
	waitFor(t, "the burst", func() bool { return c.has("burst/fa") && c.has("burst/zc") || c.has("burst") })
	c.mu.Lock()
	if c.batches > 20 {
		t.Errorf("100 writes in %d batches: no debouncing", c.batches)
	}
	c.mu.Unlock()
	// A file in a directory created after the start is seen: the new
	// directory got its watch before its creation was reported.
	write(t, filepath.Join(root, "burst", "later.txt"), "x", 0o644)
	waitFor(t, "a write in a new directory", func() bool { return c.has("burst/later.txt") })
	write(t, filepath.Join(root, "ignored", "x"), "x", 0o644)
	os.Chmod(filepath.Join(root, "burst", "later.txt"), 0o600)
	waitFor(t, "a mode change", func() bool { return c.has("burst/later.txt") })
	if c.has("ignored/x") && !c.has(".") {
		t.Error("an ignored path was reported")
	}
}

func TestWatcherLimitFallsBackToPolling(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a", "b", "c"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	var warnings []string
	var mu sync.Mutex
	n := 0
	w, err := NewWatcher(root, nil, WatchOptions{
		PollInterval: 20 * time.Millisecond,
		Warn:         func(s string) { mu.Lock(); warnings = append(warnings, s); mu.Unlock() },
		addWatch: func(fw *fsnotify.Watcher, dir string) error {
			if n++; n > 2 {
				return syscall.ENOSPC
			}
			return fw.Add(dir)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.Polling() {
		t.Fatal("not polling after the watch limit")
	}
	mu.Lock()
	msg := strings.Join(warnings, "\n")
	mu.Unlock()
	if !strings.Contains(msg, "fs.inotify.max_user_watches") || !strings.Contains(msg, "sysctl") {
		t.Errorf("warning %q does not name the sysctl", msg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := collect(ctx, w)
	write(t, filepath.Join(root, "c", "new.txt"), "x", 0o644)
	waitFor(t, "polling to see a change", func() bool { return c.has("c/new.txt") })
}

func TestWatchEndToEnd(t *testing.T) {
	local := t.TempDir()
	write(t, filepath.Join(local, "app.py"), "def add(a, b): return a + b\n", 0o644)
	appRoot := t.TempDir()
	os.MkdirAll(filepath.Join(appRoot, "app"), 0o755)
	c := testSession(t, appRoot, ClientOptions{})
	s, err := NewSyncer(c, Options{LocalDir: local})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := s.InitialSync(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(local, s.Ignorer(), WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, w, func(sum *Summary) { mu.Lock(); lines = append(lines, sum.String()); mu.Unlock() })
	}()
	defer func() {
		cancel()
		<-done
		w.Close()
	}()
	write(t, filepath.Join(local, "app.py"), "def add(a, b): return a * b\n", 0o644)
	remote := filepath.Join(appRoot, "app", "app.py")
	waitFor(t, "the edit in the app", func() bool {
		b, _ := os.ReadFile(remote)
		return strings.Contains(string(b), "a * b")
	})
	os.Rename(filepath.Join(local, "app.py"), filepath.Join(local, "main.py"))
	waitFor(t, "the rename in the app", func() bool {
		_, err1 := os.Stat(remote)
		_, err2 := os.Stat(filepath.Join(appRoot, "app", "main.py"))
		return os.IsNotExist(err1) && err2 == nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "synced 1 file, ") {
		t.Errorf("summaries %q", lines)
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 12 * 1024: "12 KiB", 1536 * 1024: "1.5 MiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	s := Summary{Files: 3, Bytes: 12 * 1024, Duration: 18 * time.Millisecond}
	if got := s.String(); got != "synced 3 files, 12 KiB, in 18 ms" {
		t.Errorf("summary %q", got)
	}
}
