package filesync

import (
	"path/filepath"
	"testing"
)

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
