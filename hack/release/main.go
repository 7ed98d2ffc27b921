// Command release builds a release of kubectl-dev without a daemon and
// without network beyond the Go module proxy (and, once per machine, Debian's
// mirror for the arm64 busybox of the agent image). See docs/release.md.
//
//	go run ./hack/release --version v0.1.0 [--out dist] [--base-url URL] [--validate]
//	                      [--push-image --image-repo ghcr.io/kubectl-dev]
//	go run ./hack/release tools     # builds krew's tools once, prints their paths (JSON)
//
// It cross-compiles the three plugins for linux, darwin and windows on amd64
// and arm64 (CGO_ENABLED=0, -trimpath, -s -w, version, commit and date
// stamped), packs one archive per plugin and platform (tar.gz, zip for
// windows) with the binary and LICENSE, writes checksums.txt, and renders the
// krew manifests of krew-manifests/ into OUT/krew/. --validate checks the
// rendered manifests with krew's validate-krew-manifest, installing every
// platform's archive from a loopback HTTP server. --push-image builds the
// devagent image for linux/amd64 and linux/arm64 as one OCI image index and
// pushes it as IMAGE_REPO/devagent:VERSION.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-dev/kubectl-dev/hack/internal/images"
	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// DefaultBaseURL is where a GitHub release serves its assets; {{version}}
// is replaced with the version.
const DefaultBaseURL = "https://github.com/kubectl-dev/kubectl-dev/releases/download/{{version}}"

// semverRE is what krew accepts as a version: semver with a "v".
var semverRE = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

type options struct {
	Version    string
	Commit     string
	Date       string
	Out        string
	BaseURL    string
	Manifests  string
	Platforms  []Platform
	Jobs       int
	Validate   bool
	PushImage  bool
	ImageOnly  bool
	ImageRepo  string
	AllowDirty bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "tools" {
		t, err := EnsureKrewTools(ctx, os.Stderr)
		if err != nil {
			return err
		}
		return json.NewEncoder(out).Encode(t)
	}
	o := options{}
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.StringVar(&o.Version, "version", os.Getenv("KDEV_VERSION"), "the release version, semver with a v (v0.1.0); default $KDEV_VERSION")
	fs.StringVar(&o.Commit, "commit", "", "the commit stamped into the binaries (default: git rev-parse --short HEAD, with -dirty for a changed tree)")
	fs.StringVar(&o.Date, "date", "", "the build date stamped into the binaries and the archives' file times (default: the commit's date, so that a rebuild gives the same archives)")
	fs.StringVar(&o.Out, "out", "dist", "the output folder")
	fs.StringVar(&o.BaseURL, "base-url", DefaultBaseURL, "where the archives will be downloaded from; {{version}} is replaced")
	fs.StringVar(&o.Manifests, "manifests", "krew-manifests", "the folder of the krew manifest templates")
	platforms := fs.String("platforms", "", "comma-separated os/arch list (default: all of "+platformList(AllPlatforms)+"); the manifests need all")
	fs.IntVar(&o.Jobs, "jobs", 1, "platforms built at once (1 or 2: the machine is shared)")
	fs.BoolVar(&o.Validate, "validate", false, "validate the rendered manifests with krew's validate-krew-manifest, installing each platform from a loopback server")
	fs.BoolVar(&o.PushImage, "push-image", false, "build the devagent image index (linux/amd64, linux/arm64) and push it to --image-repo")
	fs.BoolVar(&o.ImageOnly, "image-only", false, "with --push-image: only build and push the image (no plugins, archives or manifests)")
	fs.StringVar(&o.ImageRepo, "image-repo", testbed.ImageRepo(), "the image repository the agent is pushed under, as IMAGE_REPO/devagent:VERSION (a release: ghcr.io/kubectl-dev)")
	fs.BoolVar(&o.AllowDirty, "allow-dirty", true, "allow a working tree with uncommitted changes (the commit is stamped COMMIT-dirty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !semverRE.MatchString(o.Version) {
		return fmt.Errorf("--version %q is not a semantic version with a v (krew needs one, e.g. v0.1.0)", o.Version)
	}
	if o.ImageOnly && !o.PushImage {
		return errors.New("--image-only needs --push-image")
	}
	if o.Jobs < 1 || o.Jobs > 2 {
		return fmt.Errorf("--jobs must be 1 or 2")
	}
	o.Platforms = AllPlatforms
	if *platforms != "" {
		var err error
		if o.Platforms, err = ParsePlatforms(*platforms); err != nil {
			return err
		}
	}
	root, err := images.RepoRoot()
	if err != nil {
		return err
	}
	if err := o.fillGit(ctx, root); err != nil {
		return err
	}
	o.BaseURL = strings.TrimSuffix(strings.ReplaceAll(o.BaseURL, "{{version}}", o.Version), "/")
	if !filepath.IsAbs(o.Manifests) {
		o.Manifests = filepath.Join(root, o.Manifests)
	}
	return release(ctx, out, root, o)
}

func release(ctx context.Context, out io.Writer, root string, o options) error {
	start := time.Now()
	b := Build{Root: root, Version: o.Version, Commit: o.Commit, Date: o.Date, Out: filepath.Join(o.Out, "bin"), Jobs: o.Jobs, Log: out}
	if !o.ImageOnly {
		if err := releasePlugins(ctx, out, root, o, b); err != nil {
			return err
		}
	}
	if o.PushImage {
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			return err
		}
		ref := images.AgentRef(o.ImageRepo, o.Version)
		fmt.Fprintf(out, "agent image %s (linux/%s)\n", ref, strings.Join(images.AgentArches, ", linux/"))
		res, err := images.BuildAgentIndex(ctx, out, images.IndexOptions{Ref: ref, LDFlags: strings.TrimPrefix(b.LDFlags(), "-s -w "), Push: true})
		if err != nil {
			return err
		}
		if err := writeImageInfo(filepath.Join(o.Out, "devagent-image.txt"), res); err != nil {
			return err
		}
		for _, im := range res.Images {
			note := ""
			if !im.Busybox {
				note = " (agent only, no busybox)"
			}
			fmt.Fprintf(out, "  linux/%-6s %s %s compressed%s\n", im.Arch, im.Digest, mib(im.Compressed), note)
		}
	}
	fmt.Fprintf(out, "done in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// releasePlugins builds, packs, checksums and renders (and validates) the plugins.
func releasePlugins(ctx context.Context, out io.Writer, root string, o options, b Build) error {
	if err := cleanOut(o.Out); err != nil {
		return err
	}
	fmt.Fprintf(out, "release %s (commit %s, date %s) into %s\n", o.Version, o.Commit, o.Date, o.Out)
	bins, err := b.Run(ctx, o.Platforms)
	if err != nil {
		return err
	}
	mtime, err := time.Parse(time.RFC3339, o.Date)
	if err != nil {
		return fmt.Errorf("--date %q: %w", o.Date, err)
	}
	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		return err
	}
	var arts []Artifact
	for _, bin := range bins {
		a, err := WriteArchive(o.Out, bin, o.Version, license, mtime)
		if err != nil {
			return err
		}
		arts = append(arts, a)
	}
	if err := WriteChecksums(filepath.Join(o.Out, "checksums.txt"), arts); err != nil {
		return err
	}
	if len(o.Platforms) == len(AllPlatforms) {
		if err := RenderAll(o.Manifests, filepath.Join(o.Out, "krew"), o.Version, o.BaseURL, arts); err != nil {
			return err
		}
		fmt.Fprintf(out, "rendered the krew manifests into %s\n", filepath.Join(o.Out, "krew"))
	} else {
		fmt.Fprintln(out, "not rendering the krew manifests: they need every platform")
	}
	printSizes(out, arts)
	if o.Validate {
		if len(o.Platforms) != len(AllPlatforms) {
			return errors.New("--validate needs every platform")
		}
		if err := ValidateManifests(ctx, out, o, arts); err != nil {
			return err
		}
	}
	return nil
}

// fillGit fills in the commit and the date from git unless given.
func (o *options) fillGit(ctx context.Context, root string) error {
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "TZ=UTC")
		b, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	if o.Commit == "" {
		o.Commit = git("rev-parse", "--short", "HEAD")
		if o.Commit == "" {
			o.Commit = "unknown"
		} else if git("status", "--porcelain", "--untracked-files=no") != "" {
			if !o.AllowDirty {
				return errors.New("the working tree has uncommitted changes (commit them, or pass --allow-dirty)")
			}
			o.Commit += "-dirty"
		}
	}
	if o.Date == "" {
		o.Date = git("log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ")
		if o.Date == "" {
			o.Date = time.Now().UTC().Format(time.RFC3339)
		}
	}
	return nil
}

// cleanOut removes what an earlier run left in out (only files this tool
// writes), so that checksums.txt lists exactly this release.
func cleanOut(out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, pattern := range []string{"kubectl-*.tar.gz", "kubectl-*.zip", "checksums.txt", "devagent-image.txt"} {
		m, _ := filepath.Glob(filepath.Join(out, pattern))
		for _, f := range m {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{"krew", "bin"} {
		if err := os.RemoveAll(filepath.Join(out, d)); err != nil {
			return err
		}
	}
	return nil
}

func writeImageInfo(path string, res *images.IndexResult) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s@%s\n", res.Ref, res.Digest)
	for _, im := range res.Images {
		fmt.Fprintf(&sb, "linux/%s %s %d\n", im.Arch, im.Digest, im.Compressed)
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func printSizes(out io.Writer, arts []Artifact) {
	fmt.Fprintf(out, "%-18s %-14s %10s %10s\n", "plugin", "platform", "binary", "archive")
	for _, a := range arts {
		fmt.Fprintf(out, "%-18s %-14s %10s %10s\n", a.Plugin, a.Platform, mib(a.BinarySize), mib(a.Size))
	}
}
