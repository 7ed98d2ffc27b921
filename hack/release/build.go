package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Plugins are the kubectl plugins of a release, by krew name.
var Plugins = []string{"devpatch", "devssh", "devsync"}

// Platform is one os/arch a plugin is built for.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Exe is the file name suffix of executables on the platform.
func (p Platform) Exe() string {
	if p.OS == "windows" {
		return ".exe"
	}
	return ""
}

// ArchiveExt is the archive format of the platform: zip for windows.
func (p Platform) ArchiveExt() string {
	if p.OS == "windows" {
		return ".zip"
	}
	return ".tar.gz"
}

// AllPlatforms are the platforms of a release, in the manifests' order.
var AllPlatforms = []Platform{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

// ParsePlatforms reads "linux/amd64,darwin/arm64" (release platforms only).
func ParsePlatforms(s string) ([]Platform, error) {
	var out []Platform
	for _, f := range strings.Split(s, ",") {
		found := false
		for _, p := range AllPlatforms {
			if p.String() == strings.TrimSpace(f) {
				out, found = append(out, p), true
			}
		}
		if !found {
			return nil, fmt.Errorf("platform %q is not one of %s", f, platformList(AllPlatforms))
		}
	}
	return out, nil
}

func platformList(ps []Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// Binary is one built plugin binary.
type Binary struct {
	Plugin   string // krew name: devpatch
	Platform Platform
	Path     string
}

// Name is the binary's file name: kubectl-devpatch(.exe).
func (b Binary) Name() string { return "kubectl-" + b.Plugin + b.Platform.Exe() }

// Build cross-compiles the plugins.
type Build struct {
	Root                  string
	Version, Commit, Date string
	// Out receives OUT/<os>_<arch>/kubectl-<plugin>[.exe].
	Out string
	// Jobs is how many platforms are built at once (each go build is
	// parallel by itself).
	Jobs int
	Log  io.Writer
}

// LDFlags are the Makefile's: stripped, with version, commit and date.
func (b Build) LDFlags() string {
	const pkg = "github.com/kubectl-dev/kubectl-dev/pkg/version"
	return fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Commit=%s -X %s.Date=%s", pkg, b.Version, pkg, b.Commit, pkg, b.Date)
}

// Run builds every plugin for each platform: one go build per platform (it
// links the three plugins), reusing the Go build cache.
func (b Build) Run(ctx context.Context, platforms []Platform) ([]Binary, error) {
	jobs := max(b.Jobs, 1)
	sem := make(chan struct{}, jobs)
	var mu sync.Mutex
	var out []Binary
	var firstErr error
	var wg sync.WaitGroup
	for _, p := range platforms {
		wg.Add(1)
		sem <- struct{}{}
		go func(p Platform) {
			defer wg.Done()
			defer func() { <-sem }()
			bins, err := b.platform(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out = append(out, bins...)
		}(p)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	order := map[string]int{}
	for i, p := range platforms {
		order[p.String()] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Plugin != out[j].Plugin {
			return out[i].Plugin < out[j].Plugin
		}
		return order[out[i].Platform.String()] < order[out[j].Platform.String()]
	})
	return out, nil
}

func (b Build) platform(ctx context.Context, p Platform) ([]Binary, error) {
	start := time.Now()
	dir, err := filepath.Abs(filepath.Join(b.Out, p.OS+"_"+p.Arch))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := []string{"build", "-trimpath", "-ldflags", b.LDFlags(), "-o", dir + string(filepath.Separator)}
	for _, pl := range Plugins {
		args = append(args, "./cmd/kubectl-"+pl)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch, "GOWORK=off")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build for %s: %w\n%s", p, err, output.String())
	}
	var bins []Binary
	for _, pl := range Plugins {
		bin := Binary{Plugin: pl, Platform: p}
		bin.Path = filepath.Join(dir, bin.Name())
		if _, err := os.Stat(bin.Path); err != nil {
			return nil, fmt.Errorf("go build for %s did not write %s: %w", p, bin.Path, err)
		}
		bins = append(bins, bin)
	}
	if b.Log != nil {
		fmt.Fprintf(b.Log, "built %s in %s\n", p, time.Since(start).Round(100*time.Millisecond))
	}
	return bins, nil
}
