//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

func init() {
	register("registry serve", registryServe)
}

// registryServe: kdev registry serve
//
// Runs the local OCI registry in the foreground on testbed.RegistryAddr()
// (loopback only, plain HTTP) until interrupted. Blobs live on disk under
// StateDir/registry/blobs; manifests are kept in memory by the registry
// package and journaled under StateDir/registry/manifests, from where they
// are loaded again at start, so a restarted registry still has every image.
func registryServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("registry serve", flag.ContinueOnError)
	quiet := fs.Bool("quiet", false, "do not log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("registry serve takes no arguments")
	}
	addr := testbed.RegistryAddr()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("registry address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("registry address %q is not a loopback address; the registry has no authentication", addr)
	}

	dir := filepath.Join(testbed.StateDir(), "registry")
	blobs := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	logger := log.New(os.Stderr, "registry: ", log.LstdFlags)
	regLog := logger
	if *quiet {
		regLog = log.New(discard{}, "", 0)
	}
	reg := registry.New(registry.Logger(regLog), registry.WithBlobHandler(registry.NewDiskBlobHandler(blobs)))
	h, err := newManifestJournal(reg, filepath.Join(dir, "manifests"), logger)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Printf("serving on http://%s, data in %s", ln.Addr(), dir)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Printf("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// manifestJournal wraps the registry handler and keeps every manifest that
// was pushed on disk: dir/<repo, path-escaped>/digests/<digest>.json holds
// the manifest and its media type, dir/<repo>/tags/<tag> the digest the tag
// points at. At start the journal is replayed into the in-memory registry.
type manifestJournal struct {
	next http.Handler
	dir  string
	log  *log.Logger
}

type journaledManifest struct {
	MediaType string `json:"mediaType"`
	Body      []byte `json:"body"`
}

var (
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// manifestPath splits /v2/<repo>/manifests/<target>.
func manifestPath(p string) (repo, target string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v2/")
	if !found {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	repo, target = rest[:i], rest[i+len("/manifests/"):]
	if !tagRE.MatchString(target) && !digestRE.MatchString(target) {
		return "", "", false
	}
	return repo, target, true
}

func newManifestJournal(next http.Handler, dir string, logger *log.Logger) (*manifestJournal, error) {
	j := &manifestJournal{next: next, dir: dir, log: logger}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n, err := j.replay()
	if err != nil {
		return nil, err
	}
	if n > 0 {
		logger.Printf("loaded %d manifests and tags from %s", n, dir)
	}
	return j, nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (j *manifestJournal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	repo, target, ok := manifestPath(r.URL.Path)
	if !ok || (r.Method != http.MethodPut && r.Method != http.MethodDelete) {
		j.next.ServeHTTP(w, r)
		return
	}
	var body []byte
	if r.Method == http.MethodPut {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	j.next.ServeHTTP(rec, r)
	var err error
	switch {
	case r.Method == http.MethodPut && rec.status == http.StatusCreated:
		err = j.record(repo, target, r.Header.Get("Content-Type"), body)
	case r.Method == http.MethodDelete && rec.status == http.StatusAccepted:
		err = j.forget(repo, target)
	}
	if err != nil {
		j.log.Printf("manifest journal: %v", err)
	}
}

func (j *manifestJournal) repoDir(repo string) string {
	return filepath.Join(j.dir, url.PathEscape(repo))
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (j *manifestJournal) record(repo, target, mediaType string, body []byte) error {
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	b, err := json.Marshal(journaledManifest{MediaType: mediaType, Body: body})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(j.repoDir(repo), "digests", digest+".json"), b); err != nil {
		return err
	}
	if target != digest && tagRE.MatchString(target) {
		return writeFileAtomic(filepath.Join(j.repoDir(repo), "tags", target), []byte(digest))
	}
	return nil
}

func (j *manifestJournal) forget(repo, target string) error {
	p := filepath.Join(j.repoDir(repo), "tags", target)
	if digestRE.MatchString(target) {
		p = filepath.Join(j.repoDir(repo), "digests", target+".json")
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// replay pushes the journal into the registry handler: plain manifests
// first, then indexes (which need their children), then tags.
func (j *manifestJournal) replay() (int, error) {
	repos, err := os.ReadDir(j.dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rd := range repos {
		repo, err := url.PathUnescape(rd.Name())
		if err != nil || !rd.IsDir() {
			continue
		}
		loaded := map[string]journaledManifest{}
		files, _ := filepath.Glob(filepath.Join(j.dir, rd.Name(), "digests", "sha256:*.json"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			var m journaledManifest
			if err == nil {
				err = json.Unmarshal(b, &m)
			}
			if err != nil {
				j.log.Printf("manifest journal: skipping %s: %v", f, err)
				continue
			}
			loaded[strings.TrimSuffix(filepath.Base(f), ".json")] = m
		}
		for _, indexes := range []bool{false, true} {
			for digest, m := range loaded {
				if types.MediaType(m.MediaType).IsIndex() == indexes {
					if j.put(repo, digest, m) {
						n++
					}
				}
			}
		}
		tags, _ := os.ReadDir(filepath.Join(j.dir, rd.Name(), "tags"))
		for _, t := range tags {
			if !tagRE.MatchString(t.Name()) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(j.dir, rd.Name(), "tags", t.Name()))
			m, ok := loaded[strings.TrimSpace(string(b))]
			if err != nil || !ok {
				j.log.Printf("manifest journal: tag %s:%s points at no stored manifest, dropped", repo, t.Name())
				continue
			}
			if j.put(repo, t.Name(), m) {
				n++
			}
		}
	}
	return n, nil
}

func (j *manifestJournal) put(repo, target string, m journaledManifest) bool {
	req := httptest.NewRequest(http.MethodPut, "/v2/"+repo+"/manifests/"+target, bytes.NewReader(m.Body))
	req.Header.Set("Content-Type", m.MediaType)
	rec := httptest.NewRecorder()
	j.next.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		j.log.Printf("manifest journal: loading %s@%s: %d %s", repo, target, rec.Code, rec.Body.String())
		return false
	}
	return true
}
