//go:build linux

package main

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A registry restarted on the same directory still serves the manifests and
// tags pushed to the one before.
func TestManifestJournalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	logger := log.New(io.Discard, "", 0)
	start := func() *httptest.Server {
		reg := registry.New(registry.Logger(logger), registry.WithBlobHandler(registry.NewDiskBlobHandler(filepath.Join(dir, "blobs"))))
		h, err := newManifestJournal(reg, filepath.Join(dir, "manifests"), logger)
		if err != nil {
			t.Fatal(err)
		}
		return httptest.NewServer(h)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()

	srv := start()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, err := name.ParseReference(host+"/kubectl-dev/demo:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	srv.Close()

	srv = start()
	defer srv.Close()
	ref, _ = name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/kubectl-dev/demo:latest", name.Insecure)
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if d, _ := got.Digest(); d != want {
		t.Fatalf("after restart: digest %s, want %s", d, want)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("blob after restart: %v", err)
		}
		rc.Close()
	}
}

func TestManifestPath(t *testing.T) {
	for p, want := range map[string]string{
		"/v2/kubectl-dev/demo/manifests/latest":             "kubectl-dev/demo latest",
		"/v2/a/manifests/sha256:" + strings.Repeat("0", 64): "a sha256:" + strings.Repeat("0", 64),
		"/v2/a/manifests/..":                                "",
		"/v2/a/blobs/sha256:00":                             "",
	} {
		repo, target, ok := manifestPath(p)
		got := ""
		if ok {
			got = repo + " " + target
		}
		if got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
}
