package images

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Module is the project's Go module path.
const Module = "github.com/kubectl-dev/kubectl-dev"

// RepoRoot walks up from the working directory to the go.mod of Module.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isModuleRoot(d) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of module %s in %s or above it: run from the repository", Module, wd)
		}
	}
}

func isModuleRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == Module
		}
	}
	return false
}

// goBuild builds the main package pkg ("./hack/images/pause") of the
// repository as a static linux binary for the machine's architecture and
// returns its contents; see goBuildFor.
func goBuild(ctx context.Context, root, pkg string, ldflags string) ([]byte, error) {
	return goBuildFor(ctx, root, pkg, ldflags, runtime.GOARCH)
}

// goBuildFor builds the main package pkg as a static linux binary for goarch
// and returns its contents. Binaries are kept in the cache under a key made of
// the package's build ID (which covers its sources and all its
// dependencies, as the go command computes it) and the link flags, so an
// unchanged program is not linked again.
func goBuildFor(ctx context.Context, root, pkg, ldflags, goarch string) ([]byte, error) {
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	flags := []string{"-trimpath"}

	list := exec.CommandContext(ctx, "go", append([]string{"list", "-export", "-f", "{{.BuildID}}"}, append(flags, pkg)...)...)
	list.Dir, list.Env = root, env
	var stderr bytes.Buffer
	list.Stderr = &stderr
	idOut, err := list.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w\n%s", pkg, err, stderr.String())
	}
	buildID := strings.TrimSpace(string(idOut))
	var bin string
	if buildID != "" {
		sum := sha256.Sum256([]byte(strings.Join([]string{buildID, ldflags, goarch}, "\n")))
		bin = filepath.Join(cacheDir(), "bin", filepath.Base(pkg)+"-"+hex.EncodeToString(sum[:12]))
		if b, err := os.ReadFile(bin); err == nil {
			return b, nil
		}
	}
	if err := os.MkdirAll(filepath.Join(cacheDir(), "bin"), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Join(cacheDir(), "bin"), "tmp-"+filepath.Base(pkg)+"-*")
	if err != nil {
		return nil, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args := append([]string{"build"}, flags...)
	args = append(args, "-ldflags", strings.TrimSpace("-s -w "+ldflags), "-o", tmp.Name(), pkg)
	build := exec.CommandContext(ctx, "go", args...)
	build.Dir, build.Env = root, env
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		return nil, err
	}
	if bin != "" {
		if err := os.Rename(tmp.Name(), bin); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// hasPackage reports whether the repository has a Go package in dir.
func hasPackage(root, dir string) bool {
	m, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
	return len(m) > 0
}

var errNoSource = errors.New("source not in the repository")
