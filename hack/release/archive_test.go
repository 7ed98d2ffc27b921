package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestArchiveContents(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-devpatch.exe")
	payload := []byte("\x7fELF not really")
	if err := os.WriteFile(bin, payload, 0o755); err != nil {
		t.Fatal(err)
	}
	license := []byte("Apache License\n")
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []Platform{{"linux", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}} {
		t.Run(p.String(), func(t *testing.T) {
			b := Binary{Plugin: "devpatch", Platform: p, Path: bin}
			out := t.TempDir()
			a, err := WriteArchive(out, b, testVersion, license, mtime)
			if err != nil {
				t.Fatal(err)
			}
			wantFile := fmt.Sprintf("kubectl-devpatch_%s_%s_%s%s", testVersion, p.OS, p.Arch, p.ArchiveExt())
			if a.File != wantFile || filepath.Base(a.Path) != wantFile {
				t.Fatalf("archive %s, want %s", a.File, wantFile)
			}
			data, err := os.ReadFile(a.Path)
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != a.Sha256 || int64(len(data)) != a.Size {
				t.Fatalf("sha256/size of %s do not match the file", a.File)
			}
			entries, err := ReadArchive(a.Path)
			if err != nil {
				t.Fatal(err)
			}
			exe := "kubectl-devpatch" + p.Exe()
			if len(entries) != 2 {
				t.Fatalf("entries %v, want LICENSE and %s", keys(entries), exe)
			}
			if e := entries[exe]; !bytes.Equal(e.Data, payload) || e.Mode != 0o755 {
				t.Errorf("%s: mode %o, %d bytes", exe, e.Mode, len(e.Data))
			}
			if e := entries["LICENSE"]; !bytes.Equal(e.Data, license) || e.Mode != 0o644 {
				t.Errorf("LICENSE: mode %o, %q", e.Mode, e.Data)
			}
			// The same inputs give the same bytes.
			again, err := WriteArchive(t.TempDir(), b, testVersion, license, mtime)
			if err != nil {
				t.Fatal(err)
			}
			if again.Sha256 != a.Sha256 {
				t.Errorf("the archive is not reproducible: %s then %s", a.Sha256, again.Sha256)
			}
		})
	}
}

func keys(m map[string]archiveEntry) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return s
}

func TestChecksums(t *testing.T) {
	arts := fakeArtifacts()
	path := filepath.Join(t.TempDir(), "checksums.txt")
	if err := WriteChecksums(path, arts); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(Plugins)*len(AllPlatforms) {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines {
		sum, file, ok := strings.Cut(l, "  ")
		if !ok || !sha256RE.MatchString(sum) || sums(arts)[file] != sum {
			t.Errorf("line %q", l)
		}
		if i > 0 && strings.SplitN(lines[i-1], "  ", 2)[1] > file {
			t.Errorf("not sorted at %q", l)
		}
	}
}
