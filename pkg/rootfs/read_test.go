//go:build linux

package rootfs

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWalkAndReadDir(t *testing.T) {
	dir, r := hostileRoot(t)
	must(t, os.MkdirAll(filepath.Join(dir, "app", "a b", "ü"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "app", "a b", "ü", "f"), []byte("123"), 0o644))
	must(t, unix.Mkfifo(filepath.Join(dir, "app", "fifo"), 0o644))
	var got []string
	must(t, r.Walk("app", func(rel string, info fs.FileInfo, target string, err error) error {
		must(t, err)
		got = append(got, rel+":"+info.Mode().Type().String()+":"+target)
		return nil
	}))
	want := []string{"a b:d---------:", "a b/ü:d---------:", "a b/ü/f:----------:", "fifo:p---------:", "rellink:L---------:../.."}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("walk:\n got %q\nwant %q", got, want)
	}
	// Walking a symlink to a directory follows it inside the root only.
	must(t, os.WriteFile(filepath.Join(dir, "etc", "inside"), nil, 0o644))
	var seen []string
	must(t, r.Walk("link", func(rel string, _ fs.FileInfo, _ string, err error) error {
		seen = append(seen, rel)
		return err
	}))
	if strings.Join(seen, ",") != "inside" {
		t.Errorf("walk of link -> /etc saw %q, want only the root's etc/inside", seen)
	}
	infos, err := r.ReadDir(".")
	must(t, err)
	if len(infos) != 4 {
		t.Errorf("readdir: %d entries", len(infos))
	}
	// Opening a FIFO is refused without blocking.
	if _, err := r.Open("app/fifo"); err == nil {
		t.Error("opened a FIFO")
	}
	f, err := r.Open("app/a b/ü/f")
	must(t, err)
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "123" {
		t.Errorf("read %q", b)
	}
}
