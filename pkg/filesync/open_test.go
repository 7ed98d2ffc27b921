//go:build unix

package filesync

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// TestOpenLocal: the whole content, then io.EOF; a symlink is refused.
func TestOpenLocal(t *testing.T) {
	dir := t.TempDir()
	want := make([]byte, 3*syncproto.ChunkSize+17)
	rand.Read(want)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := openLocal(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(want))
	}
	if n, err := f.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("read at the end: %d, %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	if err := os.Symlink(p, filepath.Join(dir, "ln")); err != nil {
		t.Fatal(err)
	}
	if _, err := openLocal(filepath.Join(dir, "ln")); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("opening a symlink: %v, want ELOOP", err)
	}
	if _, err := openLocal(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("opening a missing file: %v", err)
	}
}
