package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Artifact is one archive of a release.
type Artifact struct {
	Plugin   string
	Platform Platform
	// File is the archive's file name: kubectl-devpatch_v0.1.0_linux_amd64.tar.gz.
	File       string
	Path       string
	Sha256     string
	Size       int64
	BinarySize int64
}

// ArchiveName is the file name of a plugin's archive for a platform; the
// krew manifest templates spell the same name.
func ArchiveName(plugin, version string, p Platform) string {
	return fmt.Sprintf("kubectl-%s_%s_%s_%s%s", plugin, version, p.OS, p.Arch, p.ArchiveExt())
}

// archiveEntry is one file of an archive.
type archiveEntry struct {
	Name string
	Mode int64
	Data []byte
}

// WriteArchive packs the binary and LICENSE into dir, as a tar.gz (zip on
// windows) whose bytes depend only on its inputs: entries sorted, one fixed
// time (the commit's), no owner names, no gzip name or time.
func WriteArchive(dir string, bin Binary, version string, license []byte, mtime time.Time) (Artifact, error) {
	data, err := os.ReadFile(bin.Path)
	if err != nil {
		return Artifact{}, err
	}
	entries := []archiveEntry{
		{Name: "LICENSE", Mode: 0o644, Data: license},
		{Name: bin.Name(), Mode: 0o755, Data: data},
	}
	var buf bytes.Buffer
	if bin.Platform.OS == "windows" {
		err = writeZip(&buf, entries, mtime)
	} else {
		err = writeTarGz(&buf, entries, mtime)
	}
	if err != nil {
		return Artifact{}, err
	}
	a := Artifact{
		Plugin: bin.Plugin, Platform: bin.Platform,
		File: ArchiveName(bin.Plugin, version, bin.Platform),
		Size: int64(buf.Len()), BinarySize: int64(len(data)),
	}
	sum := sha256.Sum256(buf.Bytes())
	a.Sha256 = hex.EncodeToString(sum[:])
	a.Path = filepath.Join(dir, a.File)
	if err := os.WriteFile(a.Path, buf.Bytes(), 0o644); err != nil {
		return Artifact{}, err
	}
	return a, nil
}

func sortEntries(entries []archiveEntry) []archiveEntry {
	entries = append([]archiveEntry(nil), entries...)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	return entries
}

func writeTarGz(w io.Writer, entries []archiveEntry, mtime time.Time) error {
	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, e := range sortEntries(entries) {
		h := &tar.Header{
			Typeflag: tar.TypeReg, Name: e.Name, Mode: e.Mode, Size: int64(len(e.Data)),
			ModTime: mtime.UTC().Truncate(time.Second), Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(e.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func writeZip(w io.Writer, entries []archiveEntry, mtime time.Time) error {
	zw := zip.NewWriter(w)
	for _, e := range sortEntries(entries) {
		h := &zip.FileHeader{Name: e.Name, Method: zip.Deflate, Modified: mtime.UTC().Truncate(time.Second)}
		h.SetMode(os.FileMode(e.Mode))
		f, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := f.Write(e.Data); err != nil {
			return err
		}
	}
	return zw.Close()
}

// ReadArchive lists an archive's files with their modes and contents (for
// tests and checks).
func ReadArchive(path string) (map[string]archiveEntry, error) {
	out := map[string]archiveEntry{}
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return nil, err
			}
			out[f.Name] = archiveEntry{Name: f.Name, Mode: int64(f.Mode().Perm()), Data: b}
		}
		return out, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out[h.Name] = archiveEntry{Name: h.Name, Mode: h.Mode, Data: b}
	}
}

// WriteChecksums writes sha256sum's format ("<sha256>  <file>"), sorted by
// file name, so that `sha256sum -c checksums.txt` checks a download.
func WriteChecksums(path string, arts []Artifact) error {
	lines := make([]string, 0, len(arts))
	for _, a := range arts {
		lines = append(lines, a.Sha256+"  "+a.File)
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}
