// Package images builds the test bed's container images without Docker and
// pushes them to the local registry (testbed.ImageRepo()):
//
//	pause:3.10-kdev          the pod sandbox image (testbed.PauseImage())
//	demo-go:latest|nonroot   a static Go HTTP server on an empty base
//	demo-python:latest|nonroot  a Pyramid app on a Debian bookworm root filesystem
//	devagent:<Version>       the agent binary plus a static busybox
//
// Images are content-addressed: every layer is a deterministic tar (sorted
// entries, fixed times), layers are cached under testbed.CacheDir() by a hash
// of their inputs, and an image whose manifest digest the registry already
// has under its tag is not pushed again.
//
// BuildAgentIndex (index.go) builds the released devagent image: one OCI
// image index for linux/amd64 and linux/arm64 (hack/release --push-image).
package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// Version is the devagent version built into the agent and used as its
// image tag. KDEV_VERSION sets the default; `kdev images build --version`
// overrides it.
var Version = testbed.Getenv("KDEV_VERSION", "v0.0.0-dev")

// VersionVar is the variable the agent's version is linked into.
const VersionVar = Module + "/pkg/version.Version"

const (
	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	agentPath   = "PATH=/bin:/usr/bin"
	nonroot     = "1000:1000"
)

func cacheDir() string { return filepath.Join(testbed.CacheDir(), "images") }

// tagged is one image to push under one tag.
type tagged struct {
	ref string
	img v1.Image
}

// builder makes every tag of one image.
type builder func(ctx context.Context, b *build) ([]tagged, error)

var builders = map[string]builder{
	"pause":       buildPause,
	"demo-go":     buildDemoGo,
	"demo-python": buildDemoPython,
	"devagent":    buildDevagent,
}

// Names lists the images Build knows, in build order.
func Names() []string {
	return []string{"pause", "demo-go", "devagent", "demo-python"}
}

// Ref returns the reference an image is pushed under (for devagent, the
// current Version).
func Ref(name, tag string) string { return testbed.Image(name, tag) }

// build carries what the image builders share.
type build struct {
	root string
	out  io.Writer
}

// Build builds the named images (all of Names() when none is given) and
// pushes to the registry those whose manifest it does not have under the
// tag yet. It prints one line per image and tag:
//
//	pushed 127.0.0.1:5000/kubectl-dev/demo-go:latest sha256:... (2.1 MB)
//	up to date 127.0.0.1:5000/kubectl-dev/demo-go:latest sha256:...
//
// With no names, an image whose sources are not in the repository yet (the
// agent, ./cmd/devagent) is reported and skipped instead of failing.
func Build(ctx context.Context, out io.Writer, names ...string) error {
	all := len(names) == 0
	if all {
		names = Names()
	}
	for _, n := range names {
		if builders[n] == nil {
			known := Names()
			sort.Strings(known)
			return fmt.Errorf("unknown image %q (known: %s)", n, strings.Join(known, ", "))
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cacheDir(), 0o755); err != nil {
		return err
	}
	b := &build{root: root, out: out}
	for _, n := range names {
		start := time.Now()
		imgs, err := builders[n](ctx, b)
		if all && errors.Is(err, errNoSource) {
			fmt.Fprintf(out, "skipped %s: %v\n", n, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("image %s: %w", n, err)
		}
		for _, t := range imgs {
			if err := push(ctx, out, t); err != nil {
				return fmt.Errorf("image %s: %w", t.ref, err)
			}
		}
		if d := time.Since(start); d > 10*time.Second {
			fmt.Fprintf(out, "(%s took %s)\n", n, d.Round(time.Second))
		}
	}
	return nil
}

// image assembles layers on an empty base with the given runtime config,
// for linux on this machine's architecture.
func image(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	return imageFor(runtime.GOARCH, cfg, layers...)
}

// imageFor assembles layers on an empty base for linux on goarch.
func imageFor(goarch string, cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	if len(cfg.Env) == 0 {
		// runc 1.1.5 fails to start a container with an empty environment.
		cfg.Env = []string{defaultPath}
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err := mutate.ConfigFile(base, &v1.ConfigFile{
		Architecture: goarch,
		OS:           "linux",
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, MediaType: types.OCILayer, History: v1.History{CreatedBy: "kdev images build"}}
	}
	return mutate.Append(base, adds...)
}

func nameOptions(ref string) []name.Option {
	if strings.HasPrefix(ref, testbed.RegistryAddr()+"/") {
		return []name.Option{name.Insecure} // the local registry speaks plain HTTP
	}
	return nil
}

// push writes the image unless the registry has the same manifest digest
// under the tag already. Blobs the registry has are not uploaded again.
func push(ctx context.Context, out io.Writer, t tagged) error {
	ref, err := name.ParseReference(t.ref, nameOptions(t.ref)...)
	if err != nil {
		return err
	}
	digest, err := t.img.Digest()
	if err != nil {
		return err
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	desc, err := remote.Head(ref, opts...)
	var terr *transport.Error
	switch {
	case err == nil && desc.Digest == digest:
		fmt.Fprintf(out, "up to date %s %s\n", t.ref, digest)
		return nil
	case err != nil && !(errors.As(err, &terr) && terr.StatusCode == 404):
		return fmt.Errorf("asking the registry (is `kdev registry serve` running?): %w", err)
	}
	if err := remote.Write(ref, t.img, opts...); err != nil {
		return err
	}
	fmt.Fprintf(out, "pushed %s %s (%s)\n", t.ref, digest, mb(imageSize(t.img)))
	return nil
}

func imageSize(img v1.Image) int64 {
	var n int64
	layers, _ := img.Layers()
	for _, l := range layers {
		s, _ := l.Size()
		n += s
	}
	return n
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// --- the images ---

func buildPause(ctx context.Context, b *build) ([]tagged, error) {
	bin, err := goBuild(ctx, b.root, "./hack/images/pause", "")
	if err != nil {
		return nil, err
	}
	l, err := memLayer([]entry{file("pause", 0o755, bin)})
	if err != nil {
		return nil, err
	}
	img, err := image(v1.Config{Entrypoint: []string{"/pause"}, Env: []string{defaultPath}}, l)
	if err != nil {
		return nil, err
	}
	return []tagged{{testbed.PauseImage(), img}}, nil
}

func buildDemoGo(ctx context.Context, b *build) ([]tagged, error) {
	bin, err := goBuild(ctx, b.root, "./hack/images/demo-go", "")
	if err != nil {
		return nil, err
	}
	l, err := memLayer([]entry{dir("app", 0o755), file("app/demo", 0o755, bin)})
	if err != nil {
		return nil, err
	}
	cfg := v1.Config{Entrypoint: []string{"/app/demo"}, Env: []string{defaultPath}, WorkingDir: "/app",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}}}
	latest, err := image(cfg, l)
	if err != nil {
		return nil, err
	}
	cfg.User = nonroot
	nr, err := image(cfg, l)
	if err != nil {
		return nil, err
	}
	return []tagged{{Ref("demo-go", "latest"), latest}, {Ref("demo-go", "nonroot"), nr}}, nil
}

func buildDemoPython(ctx context.Context, b *build) ([]tagged, error) {
	src := filepath.Join(b.root, "hack/images/demo-python")
	if _, err := os.Stat(filepath.Join(src, "e2e_k8s", "demo.py")); err != nil {
		return nil, err
	}
	debian, err := debianLayer(ctx, b.out)
	if err != nil {
		return nil, err
	}
	cfg := v1.Config{
		Cmd:          []string{"python3", "-m", "e2e_k8s.demo"},
		Env:          []string{defaultPath, "PYTHONUNBUFFERED=1"},
		WorkingDir:   "/app",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
	}
	var out []tagged
	for _, v := range []struct {
		tag   string
		owner *[2]int
		user  string
	}{{"latest", nil, ""}, {"nonroot", &[2]int{1000, 1000}, nonroot}} {
		app, err := appLayer(src, v.owner)
		if err != nil {
			return nil, err
		}
		cfg.User = v.user
		img, err := image(cfg, debian, app)
		if err != nil {
			return nil, err
		}
		out = append(out, tagged{Ref("demo-python", v.tag), img})
	}
	return out, nil
}

func buildDevagent(ctx context.Context, b *build) ([]tagged, error) {
	if !hasPackage(b.root, "cmd/devagent") {
		return nil, fmt.Errorf("%w: no Go package in %s", errNoSource, filepath.Join(b.root, "cmd/devagent"))
	}
	ldflags := ""
	if hasPackage(b.root, "pkg/version") {
		ldflags = "-X " + VersionVar + "=" + Version
	} else {
		fmt.Fprintf(b.out, "note: no pkg/version in the repository, devagent is built without -X %s\n", VersionVar)
	}
	bin, err := goBuild(ctx, b.root, "./cmd/devagent", ldflags)
	if err != nil {
		return nil, err
	}
	bb, err := busyboxLayer(ctx)
	if err != nil {
		return nil, err
	}
	agent, err := memLayer([]entry{file("devagent", 0o755, bin)})
	if err != nil {
		return nil, err
	}
	img, err := image(v1.Config{Entrypoint: []string{"/devagent"}, Env: []string{agentPath}}, bb, agent)
	if err != nil {
		return nil, err
	}
	return []tagged{{Ref("devagent", Version), img}}, nil
}
