package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// Distribution: what a user gets from krew and what their cluster pulls.

var (
	releaseOnce sync.Once
	releaseBin  string
	releaseErr  error
)

// releaseTool builds hack/release once per test run.
func releaseTool(t *testing.T) string {
	t.Helper()
	releaseOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kdev-release-tool-")
		if err != nil {
			releaseErr = err
			return
		}
		releaseBin = filepath.Join(dir, "release")
		cmd := exec.Command("go", "build", "-o", releaseBin, "./hack/release")
		cmd.Dir = env.Root
		if out, err := cmd.CombinedOutput(); err != nil {
			releaseErr = fmt.Errorf("go build ./hack/release: %v\n%s", err, out)
		}
	})
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	return releaseBin
}

// runTool runs a command in the repository with extra environment and fails
// the test unless it exits 0.
func runTool(t *testing.T, timeout time.Duration, extraEnv []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = env.Root
	cmd.Env = append(os.Environ(), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String() + stderr.String()
}

// pathWithout is $PATH without the given folders.
func pathWithout(drop ...string) []string {
	var keep []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		skip := d == ""
		for _, x := range drop {
			if filepath.Clean(d) == filepath.Clean(x) {
				skip = true
			}
		}
		if !skip {
			keep = append(keep, d)
		}
	}
	return keep
}

// TestKrewInstallsThePlugins builds a release (every platform), then has
// krew itself install each plugin from its rendered manifest and the local
// archive into a temporary KREW_ROOT, runs it through kubectl's plugin
// discovery with only KREW_ROOT/bin providing plugins (not the repository's
// bin/), completes through the kubectl_complete-* helper, and uninstalls.
func TestKrewInstallsThePlugins(t *testing.T) {
	rel := releaseTool(t)
	dist := t.TempDir()
	start := time.Now()
	runTool(t, 20*time.Minute, nil, rel, "--version", env.Version, "--out", dist)
	t.Logf("release built in %s", time.Since(start).Round(time.Second))

	var tools struct{ Krew, Validate, BinDir string }
	if err := json.Unmarshal([]byte(runToolStdout(t, rel, "tools")), &tools); err != nil {
		t.Fatal(err)
	}
	krewBin := filepath.Join(t.TempDir(), "bin")
	if err := os.MkdirAll(krewBin, 0o755); err != nil {
		t.Fatal(err)
	}
	// Only kubectl-krew of the tools folder, so that nothing else it holds is a plugin.
	if err := os.Symlink(tools.Krew, filepath.Join(krewBin, "kubectl-krew")); err != nil {
		t.Fatal(err)
	}
	krewRoot := t.TempDir()
	completion := filepath.Join(env.Root, "hack", "completion")
	path := append([]string{filepath.Join(krewRoot, "bin"), krewBin, completion, filepath.Dir(env.Kubectl)}, pathWithout(env.BinDir)...)
	userEnv := append(os.Environ(),
		"PATH="+strings.Join(path, string(os.PathListSeparator)),
		"KREW_ROOT="+krewRoot,
		"KREW_NO_UPGRADE_CHECK=1",
		"HOME="+t.TempDir(), // no kubectl or krew state of the machine's user
		"KUBECONFIG="+env.Kubeconfig,
	)
	kubectl := func(args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "kubectl", args...)
		cmd.Env = userEnv
		// exec.Command resolves "kubectl" on the test's PATH; use the user's.
		cmd.Path = env.Kubectl
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
		return stdout.String(), stderr.String(), code
	}
	mustKubectl := func(args ...string) string {
		t.Helper()
		out, errOut, code := kubectl(args...)
		if code != 0 {
			t.Fatalf("kubectl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
		}
		return out + errOut
	}

	// Nothing of ours is a plugin before krew installs it.
	if out, _, _ := kubectl("plugin", "list", "--name-only"); strings.Contains(out, "kubectl-dev") {
		t.Fatalf("a kubectl-dev* plugin is on PATH before the install:\n%s", out)
	}
	plugins := []string{"devpatch", "devssh", "devsync"}
	for _, p := range plugins {
		archive := filepath.Join(dist, "kubectl-"+p+"_"+env.Version+"_"+runtime.GOOS+"_"+runtime.GOARCH+".tar.gz")
		out := mustKubectl("krew", "install", "--manifest="+filepath.Join(dist, "krew", p+".yaml"), "--archive="+archive)
		if !strings.Contains(out, `Installed plugin: `+p) {
			t.Fatalf("kubectl krew install %s:\n%s", p, out)
		}
		help := mustKubectl(p, "--help")
		if !strings.Contains(help, "kubectl "+p) {
			t.Fatalf("kubectl %s --help does not show the kubectl form:\n%s", p, help)
		}
		if v := mustKubectl(p, "version"); !strings.HasPrefix(v, "kubectl "+p+" "+env.Version+" (commit ") {
			t.Fatalf("kubectl %s version = %q, want the release's version %s", p, v, env.Version)
		}
		// kubectl completes the plugin through kubectl_complete-<plugin>.
		if c := mustKubectl("__complete", p, "--name"); !strings.Contains(c, "--namespace") {
			t.Fatalf("kubectl __complete %s --name did not offer --namespace:\n%s", p, c)
		}
	}
	list := mustKubectl("plugin", "list")
	for _, p := range plugins {
		want := filepath.Join(krewRoot, "bin", "kubectl-"+p)
		if !strings.Contains(list, want) {
			t.Fatalf("kubectl plugin list does not show %s:\n%s", want, list)
		}
	}
	if strings.Contains(list, env.BinDir) {
		t.Fatalf("kubectl plugin list shows the repository's bin/:\n%s", list)
	}
	// krew's receipts record the installs.
	for _, p := range plugins {
		if _, err := os.Stat(filepath.Join(krewRoot, "receipts", p+".yaml")); err != nil {
			t.Fatalf("no krew receipt for %s: %v", p, err)
		}
	}
	// krew list and uninstall insist on a cloned plugin index; krew-index on
	// GitHub is out of reach here, so an empty local git repository stands in.
	index := filepath.Join(krewRoot, "index", "default")
	runTool(t, time.Minute, nil, "git", "init", "-q", index)
	if err := os.MkdirAll(filepath.Join(index, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if l := mustKubectl("krew", "list"); !strings.Contains(l, "devpatch") || !strings.Contains(l, "devssh") || !strings.Contains(l, "devsync") {
		t.Fatalf("kubectl krew list:\n%s", l)
	}

	mustKubectl(append([]string{"krew", "uninstall"}, plugins...)...)
	for _, p := range plugins {
		if _, errOut, code := kubectl(p, "--help"); code == 0 || !strings.Contains(errOut, "unknown command") {
			t.Fatalf("kubectl %s --help after the uninstall: exit %d, stderr %q", p, code, errOut)
		}
		for _, f := range []string{filepath.Join("bin", "kubectl-"+p), filepath.Join("receipts", p+".yaml"), filepath.Join("store", p)} {
			if _, err := os.Lstat(filepath.Join(krewRoot, f)); !os.IsNotExist(err) {
				t.Fatalf("KREW_ROOT/%s is still there after the uninstall (%v)", f, err)
			}
		}
	}
}

func runToolStdout(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = env.Root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestAgentImageIndex builds the release's agent image (one OCI index for
// linux/amd64 and linux/arm64), pushes it to the test registry, checks each
// platform's image, and runs the tag on the cluster, where the node picks
// its own platform from the index.
func TestAgentImageIndex(t *testing.T) {
	if !env.Local && os.Getenv("KDEV_IMAGE_REPO") == "" {
		t.Skip("needs the local registry or KDEV_IMAGE_REPO")
	}
	rel := releaseTool(t)
	repo := testbed.ImageRepo() + "/release-e2e"
	runTool(t, 20*time.Minute, nil, rel, "--version", env.Version, "--out", t.TempDir(), "--image-only", "--push-image", "--image-repo", repo)
	refStr := repo + "/devagent:" + env.Version

	ref := registryRef(t, refStr)
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("%s is not an image index: %v", refStr, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("index media type %s", im.MediaType)
	}
	digests := map[string]v1.Hash{}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, m := range im.Manifests {
		if m.Platform == nil || m.Platform.OS != "linux" {
			t.Fatalf("manifest %s has platform %v", m.Digest, m.Platform)
		}
		arch := m.Platform.Architecture
		digests[arch] = m.Digest
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != arch || cfg.OS != "linux" {
			t.Errorf("linux/%s image's config says %s/%s", arch, cfg.OS, cfg.Architecture)
		}
		files := imageFiles(t, img)
		agent, ok := files["devagent"]
		if !ok {
			t.Fatalf("linux/%s image has no /devagent", arch)
		}
		f, err := elf.NewFile(bytes.NewReader(agent))
		if err != nil || f.Machine != machines[arch] {
			t.Fatalf("linux/%s /devagent is not an ELF for %v (%v)", arch, machines[arch], err)
		}
		if bb, ok := files["bin/busybox"]; ok {
			if f, err := elf.NewFile(bytes.NewReader(bb)); err != nil || f.Machine != machines[arch] {
				t.Fatalf("linux/%s /bin/busybox is not an ELF for %v (%v)", arch, machines[arch], err)
			}
		} else {
			t.Logf("linux/%s image has no busybox", arch)
		}
	}
	if len(digests) != 2 || digests["amd64"].Hex == "" || digests["arm64"].Hex == "" {
		t.Fatalf("the index has platforms %v, want linux/amd64 and linux/arm64", digests)
	}

	if runtime.GOARCH != "amd64" {
		return
	}
	ns := env.Namespace(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-version", Labels: map[string]string{"kubectl-dev.io/e2e-app": "agent-version"}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "agent", Image: refStr, ImagePullPolicy: corev1.PullAlways,
				Command: []string{"/devagent", "--version"},
			}},
		},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var final *corev1.Pod
	env.WaitFor(t, "pod agent-version to finish", 3*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "agent-version", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		final = p
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
	})
	logs := env.KubectlT(t, "-n", ns, "logs", "agent-version")
	if final.Status.Phase != corev1.PodSucceeded || !strings.Contains(logs, "devagent "+env.Version) {
		t.Fatalf("pod %s, logs %q, want devagent %s", final.Status.Phase, logs, env.Version)
	}
	if st := final.Status.ContainerStatuses; len(st) == 1 {
		t.Logf("ran %s (image ID %s); the index's linux/amd64 image is %s", refStr, st[0].ImageID, digests["amd64"])
	}
}

// imageFiles reads the regular files of an image's layers (later layers win).
func imageFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				files[strings.TrimPrefix(h.Name, "./")] = b
			}
		}
		rc.Close()
	}
	return files
}
