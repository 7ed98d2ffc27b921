package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// AgentArches are the architectures of the released devagent image (all linux).
var AgentArches = []string{"amd64", "arm64"}

// IndexOptions says which multi-platform agent image to build.
type IndexOptions struct {
	// Ref is the full reference to push, e.g. ghcr.io/kubectl-dev/devagent:v0.1.0.
	Ref string
	// LDFlags are the link flags of the agent (-X of version, commit, date);
	// "-s -w" is always added.
	LDFlags string
	// Arches defaults to AgentArches.
	Arches []string
	// Push writes the index to the registry (only when its digest changed).
	Push bool
}

// PlatformImage is one image of the index.
type PlatformImage struct {
	Arch   string
	Digest v1.Hash
	// Compressed is what a node downloads: the config and the gzip'ed layers.
	Compressed int64
	// Busybox tells whether the image has a busybox (else only the agent).
	Busybox bool
}

// IndexResult describes a built (and perhaps pushed) index.
type IndexResult struct {
	Ref    string
	Digest v1.Hash
	Images []PlatformImage
	Index  v1.ImageIndex
}

// BuildAgentIndex builds the devagent image for each architecture (the
// static agent plus a static busybox, as `kdev images build devagent` does
// for the local one) and puts them into one OCI image index, without a
// daemon. With opts.Push it pushes the index under opts.Ref, with the
// credentials of the Docker config (~/.docker/config.json) for a remote
// registry and plain HTTP for the local one.
func BuildAgentIndex(ctx context.Context, out io.Writer, opts IndexOptions) (*IndexResult, error) {
	if len(opts.Arches) == 0 {
		opts.Arches = AgentArches
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cacheDir(), 0o755); err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	res := &IndexResult{Ref: opts.Ref}
	for _, arch := range opts.Arches {
		bin, err := goBuildFor(ctx, root, "./cmd/devagent", opts.LDFlags, arch)
		if err != nil {
			return nil, err
		}
		agent, err := memLayer([]entry{file("devagent", 0o755, bin)})
		if err != nil {
			return nil, err
		}
		layers := []v1.Layer{agent}
		bb, err := busyboxLayerFor(ctx, out, arch)
		hasBusybox := err == nil
		if err != nil {
			if os.Getenv("KDEV_AGENT_WITHOUT_BUSYBOX") == "" {
				return nil, fmt.Errorf("busybox for linux/%s: %w (set KDEV_AGENT_WITHOUT_BUSYBOX=1 to ship that image with the agent only)", arch, err)
			}
			fmt.Fprintf(out, "note: the linux/%s agent image has no busybox: %v\n", arch, err)
		} else {
			layers = []v1.Layer{bb, agent}
		}
		img, err := imageFor(arch, v1.Config{Entrypoint: []string{"/devagent"}, Env: []string{agentPath}}, layers...)
		if err != nil {
			return nil, err
		}
		digest, err := img.Digest()
		if err != nil {
			return nil, err
		}
		cfg, err := img.RawConfigFile()
		if err != nil {
			return nil, err
		}
		res.Images = append(res.Images, PlatformImage{Arch: arch, Digest: digest, Compressed: imageSize(img) + int64(len(cfg)), Busybox: hasBusybox})
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	if res.Digest, err = idx.Digest(); err != nil {
		return nil, err
	}
	res.Index = idx
	if opts.Push {
		if err := pushIndex(ctx, out, opts.Ref, idx); err != nil {
			return nil, fmt.Errorf("pushing %s: %w", opts.Ref, err)
		}
	}
	return res, nil
}

// pushIndex writes the index and its images unless the registry has the same
// index digest under the tag already.
func pushIndex(ctx context.Context, out io.Writer, refStr string, idx v1.ImageIndex) error {
	ref, err := name.ParseReference(refStr, nameOptions(refStr)...)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	desc, err := remote.Head(ref, opts...)
	var terr *transport.Error
	switch {
	case err == nil && desc.Digest == digest:
		fmt.Fprintf(out, "up to date %s %s\n", refStr, digest)
		return nil
	case err != nil && !(errors.As(err, &terr) && terr.StatusCode == 404):
		return fmt.Errorf("asking the registry: %w", err)
	}
	if err := remote.WriteIndex(ref, idx, opts...); err != nil {
		return err
	}
	fmt.Fprintf(out, "pushed %s %s\n", refStr, digest)
	return nil
}

// busyboxLayerFor is the busybox layer for linux/arch: the machine's own
// busybox for its architecture, else KDEV_BUSYBOX_<ARCH> or the binary of
// Debian's busybox-static package for that architecture (fetched once with
// `apt-get download busybox-static:<arch>` into the cache; this adds the
// architecture to dpkg when it is missing). A foreign busybox cannot run
// here to list its applets, so the applet links are those of the machine's
// busybox (the same Debian version on every architecture).
func busyboxLayerFor(ctx context.Context, out io.Writer, arch string) (v1.Layer, error) {
	if arch == runtime.GOARCH {
		return busyboxLayer(ctx)
	}
	path := os.Getenv("KDEV_BUSYBOX_" + strings.ToUpper(arch))
	if path == "" {
		var err error
		if path, err = debianBusybox(ctx, out, arch); err != nil {
			return nil, err
		}
	}
	if err := checkStatic(path); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	list, err := exec.CommandContext(ctx, Busybox(), "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list (for the applets of the %s busybox): %w", Busybox(), arch, err)
	}
	return busyboxLayerOf(data, list)
}

// debianBusybox returns the static busybox of Debian's busybox-static for
// arch, from the cache or fetched from the Debian mirror.
func debianBusybox(ctx context.Context, out io.Writer, arch string) (string, error) {
	dir := filepath.Join(cacheDir(), "busybox", "linux-"+arch)
	bin := filepath.Join(dir, "busybox")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	run := func(name string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
		}
		return b, nil
	}
	foreign, err := run("dpkg", "--print-foreign-architectures")
	if err != nil {
		return "", err
	}
	native, _ := run("dpkg", "--print-architecture")
	if !strings.Contains(" "+strings.Join(strings.Fields(string(foreign)), " ")+" ", " "+arch+" ") && strings.TrimSpace(string(native)) != arch {
		fmt.Fprintf(out, "adding the dpkg architecture %s to download busybox-static:%s (dpkg --add-architecture %s; apt-get update) ...\n", arch, arch, arch)
		if _, err := run("dpkg", "--add-architecture", arch); err != nil {
			return "", err
		}
		if _, err := run("apt-get", "update", "-qq"); err != nil {
			return "", err
		}
	}
	fmt.Fprintf(out, "downloading busybox-static:%s from the Debian mirror ...\n", arch)
	old, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	for _, f := range old {
		os.Remove(f)
	}
	if _, err := run("apt-get", "download", "-q", "busybox-static:"+arch); err != nil {
		return "", err
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download busybox-static:%s left %d .deb files in %s", arch, len(debs), dir)
	}
	fsys, err := run("dpkg-deb", "--fsys-tarfile", debs[0])
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(bytes.NewReader(fsys))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s has no bin/busybox", debs[0])
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", debs[0], err)
		}
		if strings.TrimPrefix(h.Name, "./") != "bin/busybox" || h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return "", err
		}
		tmp := bin + ".tmp"
		if err := os.WriteFile(tmp, data, 0o755); err != nil {
			return "", err
		}
		if err := checkStatic(tmp); err != nil {
			return "", err
		}
		os.Remove(debs[0])
		return bin, os.Rename(tmp, bin)
	}
}

// AgentRef is the devagent image reference under an image repository
// ("ghcr.io/kubectl-dev", default testbed.ImageRepo()).
func AgentRef(repo, version string) string {
	if repo == "" {
		repo = testbed.ImageRepo()
	}
	return strings.TrimSuffix(repo, "/") + "/devagent:" + version
}
