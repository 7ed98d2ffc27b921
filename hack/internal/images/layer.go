package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the modification time of every entry of every layer, so that the
// same inputs always give the same layer digest.
var epoch = time.Unix(0, 0).UTC()

// entry is one file, directory or symbolic link of a layer built in memory.
type entry struct {
	Path     string // inside the image, without the leading slash: "app/demo"
	Type     byte   // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	Mode     int64
	Uid, Gid int
	Link     string // symlink target
	Data     []byte
}

func dir(path string, mode int64) entry { return entry{Path: path, Type: tar.TypeDir, Mode: mode} }
func file(path string, mode int64, data []byte) entry {
	return entry{Path: path, Type: tar.TypeReg, Mode: mode, Data: data}
}
func symlink(path, target string) entry {
	return entry{Path: path, Type: tar.TypeSymlink, Mode: 0o777, Link: target}
}

// normalize clears what must not leak into a layer: times, user and group
// names, and the format chosen by FileInfoHeader.
func normalize(h *tar.Header) {
	h.ModTime, h.AccessTime, h.ChangeTime = epoch, time.Time{}, time.Time{}
	h.Uname, h.Gname = "", ""
	h.PAXRecords = nil
	h.Format = tar.FormatPAX
}

// tarEntries writes entries sorted by path; a sorted, time-free tar is a
// function of its entries only.
func tarEntries(w io.Writer, entries []entry) error {
	entries = append([]entry(nil), entries...)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Typeflag: e.Type, Name: e.Path, Mode: e.Mode, Uid: e.Uid, Gid: e.Gid, Linkname: e.Link}
		switch e.Type {
		case tar.TypeDir:
			h.Name = strings.TrimSuffix(e.Path, "/") + "/"
		case tar.TypeReg:
			h.Size = int64(len(e.Data))
		}
		normalize(h)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.Type == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// dirOptions says how tarDir copies a directory tree.
type dirOptions struct {
	// Prefix is prepended to every name ("app/"); the root itself becomes
	// the Prefix directory entry (or is left out when Prefix is empty).
	Prefix string
	// Skip, given a path relative to the root ("dev/null"), leaves it out
	// (and everything under it for a directory).
	Skip func(rel string, d fs.DirEntry) bool
	// Owner, when set, overrides the uid and gid of every entry.
	Owner *[2]int
	// NormalizeModes makes files 0644 or 0755 and directories 0755, so that a
	// checkout's umask does not change the layer.
	NormalizeModes bool
}

// tarDir writes the tree under root into tw, in lexical order, with fixed
// times. It keeps symbolic links as links, hard links as hard links, device
// nodes and FIFOs as such (with their major and minor numbers), and leaves out
// sockets, which tar cannot represent.
func tarDir(tw *tar.Writer, root string, opts dirOptions) error {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			if opts.Prefix == "" {
				return nil
			}
			rel = ""
		} else if opts.Skip != nil && opts.Skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSocket != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		h.Name = strings.TrimSuffix(opts.Prefix+rel, "/")
		if fi.IsDir() {
			h.Name += "/"
		}
		if dev, ino, ok := inodeOf(fi); ok && fi.Mode().IsRegular() {
			key := inode{dev, ino}
			if first, ok := seen[key]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				seen[key] = h.Name
			}
		}
		if opts.Owner != nil {
			h.Uid, h.Gid = opts.Owner[0], opts.Owner[1]
		}
		if opts.NormalizeModes {
			switch {
			case fi.IsDir():
				h.Mode = 0o755
			case fi.Mode().IsRegular() && fi.Mode()&0o111 != 0:
				h.Mode = 0o755
			case fi.Mode().IsRegular():
				h.Mode = 0o644
			}
		}
		normalize(h)
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		return nil
	})
}

// layerMeta is what the cache keeps next to a compressed layer, so that a
// warm build never re-reads the layer to hash it.
type layerMeta struct {
	Digest v1.Hash `json:"digest"`
	DiffID v1.Hash `json:"diffID"`
	Size   int64   `json:"size"`
}

// fileLayer is a gzip'ed layer tarball in the cache whose digests are known.
type fileLayer struct {
	path string
	meta layerMeta
}

var _ v1.Layer = (*fileLayer)(nil)

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.meta.Digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.meta.DiffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.meta.Size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

func layersDir() string { return filepath.Join(cacheDir(), "layers") }

// cachedLayer returns the layer stored under key in the cache, or nil.
func cachedLayer(key string) *fileLayer {
	base := filepath.Join(layersDir(), key)
	b, err := os.ReadFile(base + ".json")
	if err != nil {
		return nil
	}
	var m layerMeta
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	fi, err := os.Stat(base + ".tar.gz")
	if err != nil || fi.Size() != m.Size {
		return nil
	}
	return &fileLayer{path: base + ".tar.gz", meta: m}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// writeLayer stores under key the gzip'ed tar that write produces, hashing it
// on the way (compressed and uncompressed), and returns it as a layer. Files
// appear atomically, so concurrent builds at worst do the work twice.
func writeLayer(key string, level int, write func(w io.Writer) error) (*fileLayer, error) {
	if err := os.MkdirAll(layersDir(), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(layersDir(), "tmp-"+key+"-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	digest, diffID, count := sha256.New(), sha256.New(), &countWriter{}
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, digest, count), 1<<20)
	zw, err := gzip.NewWriterLevel(bw, level)
	if err != nil {
		return nil, err
	}
	if err := write(io.MultiWriter(zw, diffID)); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	m := layerMeta{Digest: toHash(digest), DiffID: toHash(diffID), Size: count.n}
	base := filepath.Join(layersDir(), key)
	if err := os.Rename(tmp.Name(), base+".tar.gz"); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(base+".json.tmp", b, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(base+".json.tmp", base+".json"); err != nil {
		return nil, err
	}
	return &fileLayer{path: base + ".tar.gz", meta: m}, nil
}

func toHash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// memLayer turns a small tree described by entries into a layer. The
// uncompressed tar is built in memory; its digest (the DiffID) keys the cache
// of the compressed form, so only changed inputs are compressed again.
func memLayer(entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := tarEntries(&buf, entries); err != nil {
		return nil, err
	}
	return tarLayer(buf.Bytes())
}

// tarLayer caches and returns an uncompressed tar as a layer.
func tarLayer(tarBytes []byte) (v1.Layer, error) {
	sum := sha256.Sum256(tarBytes)
	key := "diff-" + hex.EncodeToString(sum[:])
	if l := cachedLayer(key); l != nil {
		return l, nil
	}
	return writeLayer(key, gzip.BestCompression, func(w io.Writer) error {
		_, err := w.Write(tarBytes)
		return err
	})
}
