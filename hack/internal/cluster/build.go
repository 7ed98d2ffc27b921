//go:build linux

package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kubectl-dev/kubectl-dev/hack/internal/gomod"
)

// buildRecipe changes when the way binaries are built changes, so that a
// cache built the old way is rebuilt.
const buildRecipe = "1"

var kubeBinaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"}

func (c Config) stamp(version string) string { return version + " recipe " + buildRecipe + "\n" }
func (c Config) stampFile(bin string) string { return filepath.Join(c.BinDir(), "."+bin+".stamp") }

func (c Config) built(bin, version string) bool {
	if _, err := os.Stat(c.Bin(bin)); err != nil {
		return false
	}
	b, err := os.ReadFile(c.stampFile(bin))
	return err == nil && string(b) == c.stamp(version)
}

// EnsureBinaries builds the Kubernetes components, kubectl and etcd into the
// cache unless they are there already at the pinned versions.
func (c Config) EnsureBinaries(ctx context.Context) error {
	var missing []string
	for _, b := range kubeBinaries {
		if !c.built(b, c.KubeVersion) {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		src, err := c.kubernetesSource(ctx)
		if err != nil {
			return err
		}
		for _, b := range missing {
			if err := c.goBuild(ctx, src, "./cmd/"+b, b, c.KubeVersion, versionLDFlags(c.KubeVersion)); err != nil {
				return err
			}
		}
	}
	if !c.built("etcd", c.EtcdVersion) {
		src, err := c.etcdSource(ctx)
		if err != nil {
			return err
		}
		if err := c.goBuild(ctx, src, ".", "etcd", c.EtcdVersion, ""); err != nil {
			return err
		}
	}
	return nil
}

// versionLDFlags stamps the version the components report (else nodes show
// v0.0.0-master).
func versionLDFlags(v string) string {
	major, minor := "", ""
	if m := regexp.MustCompile(`^v(\d+)\.(\d+)\.`).FindStringSubmatch(v); m != nil {
		major, minor = m[1], m[2]
	}
	var f []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		f = append(f,
			"-X "+pkg+".gitVersion="+v,
			"-X "+pkg+".gitMajor="+major,
			"-X "+pkg+".gitMinor="+minor,
			"-X "+pkg+".gitTreeState=clean",
			"-X "+pkg+".buildDate=1970-01-01T00:00:00Z",
		)
	}
	return strings.Join(f, " ")
}

func goEnv() []string {
	return append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0")
}

func (c Config) goBuild(ctx context.Context, dir, pkg, bin, version, ldflags string) error {
	fmt.Fprintf(c.Out, "building %s %s (once per machine) ...\n", bin, version)
	start := time.Now()
	if err := os.MkdirAll(c.BinDir(), 0o755); err != nil {
		return err
	}
	tmp := c.Bin(bin) + ".tmp"
	args := []string{"build", "-trimpath", "-o", tmp}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = dir
	cmd.Env = goEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", bin, err, tail(string(out), 30))
	}
	if err := os.Rename(tmp, c.Bin(bin)); err != nil {
		return err
	}
	fmt.Fprintf(c.Out, "  built %s in %s\n", bin, time.Since(start).Round(time.Second))
	return os.WriteFile(c.stampFile(bin), []byte(c.stamp(version)), 0o644)
}

// kubernetesSource returns a writable copy of the k8s.io/kubernetes module
// whose staging replaces point at the published modules.
func (c Config) kubernetesSource(ctx context.Context) (string, error) {
	dst := filepath.Join(c.CacheDir, "src", "kubernetes-"+c.KubeVersion)
	if _, err := os.Stat(filepath.Join(dst, ".kdev-ready")); err == nil {
		return dst, nil
	}
	fmt.Fprintf(c.Out, "fetching k8s.io/kubernetes@%s ...\n", c.KubeVersion)
	dir, err := gomod.Download(ctx, "k8s.io/kubernetes@"+c.KubeVersion, goEnv())
	if err != nil {
		return "", err
	}
	tmp := dst + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-r", dir, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy %s: %v: %s", dir, err, out)
	}
	if out, err := exec.CommandContext(ctx, "chmod", "-R", "u+w", tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("chmod: %v: %s", err, out)
	}
	gomod := filepath.Join(tmp, "go.mod")
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(gomod, rewriteStagingReplaces(b, c.KubeVersion), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".kdev-ready"), nil, 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dst)
	return dst, os.Rename(tmp, dst)
}

var stagingReplace = regexp.MustCompile(`(?m)^(\s*)(k8s\.io/[A-Za-z0-9._-]+)\s*=>\s*\./staging/src/k8s\.io/[A-Za-z0-9._-]+\s*$`)

// rewriteStagingReplaces turns `k8s.io/X => ./staging/src/k8s.io/X` into
// `k8s.io/X => k8s.io/X v0.<minor>.<patch>` for Kubernetes version v1.<minor>.<patch>.
func rewriteStagingReplaces(gomod []byte, kubeVersion string) []byte {
	stagingVersion := "v0" + strings.TrimPrefix(kubeVersion, "v1")
	return stagingReplace.ReplaceAll(gomod, []byte("${1}${2} => ${2} "+stagingVersion))
}

const etcdMain = `// Generated by kdev: etcd built from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`

// etcdSource writes a tiny module whose main is etcd's.
func (c Config) etcdSource(ctx context.Context) (string, error) {
	dir := filepath.Join(c.CacheDir, "src", "etcd-"+c.EtcdVersion)
	if _, err := os.Stat(filepath.Join(dir, ".kdev-ready")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module kdev.local/etcd\n\ngo 1.24\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(etcdMain), 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "get", "go.etcd.io/etcd/server/v3@"+c.EtcdVersion)
	cmd.Dir = dir
	cmd.Env = goEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go get etcd: %v\n%s", err, tail(string(out), 30))
	}
	return dir, os.WriteFile(filepath.Join(dir, ".kdev-ready"), nil, 0o644)
}
