// Package images builds the test bed's container images without Docker and
// pushes them to the local registry (testbed.ImageRepo()):
//
//	pause:3.10-kdev          the pod sandbox image (testbed.PauseImage())
//	demo-go:latest|nonroot   a static Go HTTP server on an empty base
//	demo-python:latest|nonroot  a Pyramid app on a Debian bookworm root filesystem
//	debian-python-base:bookworm  that root filesystem alone, demo-python's base
//	devagent:<Version>       the agent binary plus a static busybox
//
// The demo apps are built from their Dockerfiles (hack/images/demo-go,
// hack/images/demo-python) with BuildKit, rootless and daemonless
// (hack/buildkit, dockerfile.go): one daemon for the run, started
// only when an image's inputs changed. The others are assembled here.
//
// Assembled images are content-addressed: every layer is a deterministic tar (sorted
// entries, fixed times), layers are cached under testbed.CacheDir() by a hash
// of their inputs, and an image whose manifest digest the registry already
// has under its tag is not pushed again.
//
// BuildAgentIndex (index.go) builds the released devagent image: one OCI
// image index for linux/amd64 and linux/arm64 (hack/release --push-image).
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	// docker, instead of img, builds the image from a Dockerfile with BuildKit.
	docker *dockerBuild
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
func Build(ctx context.Context, out io.Writer, names ...string) (err error) {
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
	var bk *buildKitSession
	for _, n := range names {
		if n == "demo-go" || n == "demo-python" {
			bk = newBuildKitSession(ctx, out)
			break
		}
	}
	defer func() {
		if bk == nil {
			return
		}
		if cerr := bk.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	// The images built with BuildKit come last: on a fresh machine, BuildKit
	// builds itself in the background meanwhile.
	var withBuildKit []tagged
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
			if t.docker != nil {
				withBuildKit = append(withBuildKit, t)
				continue
			}
			if err := push(ctx, out, t); err != nil {
				return fmt.Errorf("image %s: %w", t.ref, err)
			}
		}
		if d := time.Since(start); d > 10*time.Second {
			fmt.Fprintf(out, "(%s took %s)\n", n, d.Round(time.Second))
		}
	}
	start := time.Now()
	for _, t := range withBuildKit {
		if err := dockerPush(ctx, out, bk, root, t); err != nil {
			return fmt.Errorf("image %s: %w", t.ref, err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		fmt.Fprintf(out, "(the BuildKit images took %s)\n", d.Round(time.Second))
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
	return []tagged{{ref: testbed.PauseImage(), img: img}}, nil
}

func buildDemoGo(ctx context.Context, b *build) ([]tagged, error) {
	bin, err := goBuild(ctx, b.root, "./hack/images/demo-go", "")
	if err != nil {
		return nil, err
	}
	// The build context is a folder holding the binary alone, named after
	// its contents.
	sum := sha256.Sum256(bin)
	ctxDir := filepath.Join(cacheDir(), "contexts", "demo-go-"+hex.EncodeToString(sum[:12]))
	if err := writeOnce(filepath.Join(ctxDir, "demo"), bin, 0o755); err != nil {
		return nil, err
	}
	var out []tagged
	for _, tag := range []string{"latest", "nonroot"} {
		out = append(out, tagged{ref: Ref("demo-go", tag), docker: &dockerBuild{
			dir: ctxDir, dockerfile: filepath.Join(b.root, "hack/images/demo-go/Dockerfile"), target: tag,
		}})
	}
	return out, nil
}

// writeOnce writes a file unless it is there already (its name says what it holds).
func writeOnce(path string, data []byte, perm os.FileMode) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pythonBase pushes the Debian root filesystem alone as demo-python's base
// image, under debian-python-base:bookworm and a tag naming its layer, and
// returns the reference to build from, pinned by digest.
func pythonBase(ctx context.Context, b *build) (string, error) {
	debian, err := debianLayer(ctx, b.out)
	if err != nil {
		return "", err
	}
	img, err := image(v1.Config{Env: []string{defaultPath}}, debian)
	if err != nil {
		return "", err
	}
	ld, err := debian.Digest()
	if err != nil {
		return "", err
	}
	pinned := Ref("debian-python-base", debianSuite+"-"+ld.Hex[:12])
	for _, ref := range []string{pinned, Ref("debian-python-base", debianSuite)} {
		if err := push(ctx, b.out, tagged{ref: ref, img: img}); err != nil {
			return "", fmt.Errorf("image %s: %w", ref, err)
		}
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return pinned + "@" + d.String(), nil
}

func buildDemoPython(ctx context.Context, b *build) ([]tagged, error) {
	src := filepath.Join(b.root, "hack/images/demo-python")
	if _, err := os.Stat(filepath.Join(src, "e2e_k8s", "demo.py")); err != nil {
		return nil, err
	}
	base, err := pythonBase(ctx, b)
	if err != nil {
		return nil, err
	}
	var out []tagged
	for _, tag := range []string{"latest", "nonroot"} {
		out = append(out, tagged{ref: Ref("demo-python", tag), docker: &dockerBuild{
			dir: src, dockerfile: filepath.Join(src, "Dockerfile"), target: tag, args: map[string]string{"BASE": base},
		}})
	}
	return out, nil
}

// KdevBuildArgs returns the `kdev build` arguments (paths relative to the
// repository) that build the demo image name:tag as `kdev images build`
// does; the base image is made and pushed first if need be.
func KdevBuildArgs(ctx context.Context, out io.Writer, name, tag string) ([]string, error) {
	if name != "demo-go" && name != "demo-python" {
		return nil, fmt.Errorf("image %s is not built from a Dockerfile (demo-go and demo-python are)", name)
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	imgs, err := builders[name](ctx, &build{root: root, out: out})
	if err != nil {
		return nil, err
	}
	for _, t := range imgs {
		if t.ref == Ref(name, tag) {
			return t.docker.kdevBuildArgs(root, t.ref), nil
		}
	}
	return nil, fmt.Errorf("image %s has no tag %s", name, tag)
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
	return []tagged{{ref: Ref("devagent", Version), img: img}}, nil
}
