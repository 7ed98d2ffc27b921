//go:build unix

package images

import (
	"archive/tar"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func digestOf(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestMemLayerDeterministic(t *testing.T) {
	t.Setenv("KDEV_CACHE_DIR", t.TempDir())
	a := []entry{dir("app", 0o755), file("app/demo", 0o755, []byte("binary")), symlink("app/link", "demo")}
	b := []entry{a[2], a[1], a[0]} // order must not matter
	la, err := memLayer(a)
	if err != nil {
		t.Fatal(err)
	}
	// A second build must come from the cache and have the same digests.
	lb, err := memLayer(b)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, la) != digestOf(t, lb) {
		t.Fatalf("digests differ: %s %s", digestOf(t, la), digestOf(t, lb))
	}
	// Without the cache, compressing again gives the same digest too.
	t.Setenv("KDEV_CACHE_DIR", t.TempDir())
	lc, err := memLayer(a)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, la) != digestOf(t, lc) {
		t.Fatalf("digest after a cold rebuild differs: %s %s", digestOf(t, la), digestOf(t, lc))
	}
	// The stored digests are those of the bytes.
	rc, _ := lc.Compressed()
	h, n, err := v1.SHA256(rc)
	rc.Close()
	if err != nil || h != digestOf(t, lc) {
		t.Fatalf("compressed digest %s, layer says %s (%v)", h, digestOf(t, lc), err)
	}
	if size, _ := lc.Size(); size != n {
		t.Fatalf("size %d, layer says %d", n, size)
	}
	rc, _ = lc.Uncompressed()
	diff, _, err := v1.SHA256(rc)
	rc.Close()
	if want, _ := lc.DiffID(); err != nil || diff != want {
		t.Fatalf("diffID %s, layer says %s (%v)", diff, want, err)
	}
	// A changed input changes the digest.
	ld, err := memLayer([]entry{dir("app", 0o755), file("app/demo", 0o755, []byte("binary2"))})
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, ld) == digestOf(t, la) {
		t.Fatal("different contents, same digest")
	}
}

func readTar(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	got := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
}

func TestTarDir(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc/file"), []byte("hello"), 0o640))
	must(os.Symlink("file", filepath.Join(root, "etc/link")))
	must(os.Link(filepath.Join(root, "etc/file"), filepath.Join(root, "etc/hard")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	ln, err := net.Listen("unix", filepath.Join(root, "sock"))
	must(err)
	defer ln.Close()
	device := syscall.Mknod(filepath.Join(root, "dev/null"), syscall.S_IFCHR|0o666, int(1<<8|3)) == nil

	build := func(opts dirOptions) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		must(tarDir(tw, root, opts))
		must(tw.Close())
		return buf.Bytes()
	}
	b1 := build(dirOptions{})
	got := readTar(t, b1)
	if h := got["etc/link"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "file" {
		t.Errorf("symlink: %+v", h)
	}
	if h := got["etc/file"]; h == nil || h.Typeflag != tar.TypeReg || h.Size != 5 || h.Mode&0o777 != 0o640 {
		t.Errorf("file: %+v", h)
	}
	// etc/file sorts before etc/hard, so the second name is the hard link.
	if h := got["etc/hard"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "etc/file" {
		t.Errorf("hard link: %+v", h)
	}
	if h := got["fifo"]; h == nil || h.Typeflag != tar.TypeFifo {
		t.Errorf("fifo: %+v", h)
	}
	if _, ok := got["sock"]; ok {
		t.Errorf("socket was archived")
	}
	if h := got["etc/"]; h == nil || h.Typeflag != tar.TypeDir || !h.ModTime.Equal(epoch) {
		t.Errorf("dir: %+v", h)
	}
	if device {
		if h := got["dev/null"]; h == nil || h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 {
			t.Errorf("device: %+v", h)
		}
	} else {
		t.Log("mknod not permitted (not root): device node not tested")
	}

	// Same tree, same bytes, even after the files' times change.
	must(os.Chtimes(filepath.Join(root, "etc/file"), epoch.AddDate(1, 0, 0), epoch.AddDate(1, 0, 0)))
	if !bytes.Equal(b1, build(dirOptions{})) {
		t.Error("tar of an unchanged tree differs")
	}

	// The root filesystem options: a prefix, an owner, and /dev emptied.
	got = readTar(t, build(dirOptions{Prefix: "app/", Owner: &[2]int{1000, 1000}, Skip: skipVirtual, NormalizeModes: true}))
	if h := got["app/"]; h == nil || h.Uid != 1000 || h.Gid != 1000 || h.Mode != 0o755 {
		t.Errorf("prefix dir: %+v", h)
	}
	if h := got["app/etc/file"]; h == nil || h.Uid != 1000 || h.Mode != 0o644 {
		t.Errorf("owned file: %+v", h)
	}
	if _, ok := got["app/dev/"]; !ok {
		t.Error("/dev itself left out")
	}
	if _, ok := got["app/dev/null"]; ok {
		t.Error("device node under /dev kept by skipVirtual")
	}
}
