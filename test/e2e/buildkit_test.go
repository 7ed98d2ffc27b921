package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// The demo apps are built from their Dockerfiles with BuildKit, rootless and
// daemonless (`kdev images build`, run by the harness's setup), and
// `kdev build` is what a user of the test bed runs for an image of their own.

// registryRef parses refStr; the test bed's registry speaks plain HTTP.
func registryRef(t *testing.T, refStr string) name.Reference {
	t.Helper()
	var opts []name.Option
	if strings.HasPrefix(refStr, testbed.RegistryAddr()+"/") {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(refStr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// remoteImage reads an image's manifest and config from the registry.
func remoteImage(t *testing.T, refStr string) (v1.Image, name.Reference) {
	t.Helper()
	ref := registryRef(t, refStr)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("reading %s from the registry: %v", refStr, err)
	}
	return img, ref
}

// builtByBuildKit fails unless the image's history has a step of BuildKit's
// Dockerfile frontend; it returns the history's steps.
func builtByBuildKit(t *testing.T, img v1.Image, ref string) []string {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	found := false
	for _, h := range cf.History {
		steps = append(steps, h.CreatedBy+" ("+h.Comment+")")
		if h.Comment == "buildkit.dockerfile.v0" {
			found = true
		}
	}
	if !found {
		t.Fatalf("%s: no history entry says buildkit.dockerfile.v0:\n%s", ref, strings.Join(steps, "\n"))
	}
	return steps
}

func TestDemoImagesBuiltWithBuildKit(t *testing.T) {
	for _, c := range []struct{ name, tag, user, step string }{
		{"demo-python", "latest", "", "COPY . /app/"},
		{"demo-python", "nonroot", "1000:1000", "COPY --chown=1000:1000 . /app/"},
		{"demo-go", "latest", "", "COPY demo /app/demo"},
		{"demo-go", "nonroot", "1000:1000", "COPY demo /app/demo"},
	} {
		ref := env.Image(c.name, c.tag)
		img, _ := remoteImage(t, ref)
		steps := builtByBuildKit(t, img, ref)
		if !strings.Contains(strings.Join(steps, "\n"), c.step) {
			t.Errorf("%s: no step %q in its history:\n%s", ref, c.step, strings.Join(steps, "\n"))
		}
		cf, _ := img.ConfigFile()
		if cf.Config.User != c.user || cf.Config.WorkingDir != "/app" {
			t.Errorf("%s: user %q workdir %q, want %q and /app", ref, cf.Config.User, cf.Config.WorkingDir, c.user)
		}
	}
}

// kdevBuild runs `kdev build ARGS...` with a deadline.
func kdevBuild(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r, err := env.Run(ctx, nil, filepath.Join(env.BinDir, "kdev"), append([]string{"build"}, args...)...)
	if err != nil {
		t.Fatalf("kdev build %s: %v", strings.Join(args, " "), err)
	}
	return r.Stdout, r.Stderr, r.ExitCode
}

func TestKdevBuildPushes(t *testing.T) {
	dir := t.TempDir()
	stamp := time.Now().Format(time.RFC3339Nano)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nARG WHAT\nCOPY hello.txt /hello.txt\nLABEL what=$WHAT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(stamp), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := env.Image("e2e-kdev-build", "ok")
	stdout, stderr, code := kdevBuild(t, dir, "-t", ref, "--build-arg", "WHAT=e2e")
	if code != 0 {
		t.Fatalf("kdev build exited %d:\n%s%s", code, stdout, stderr)
	}
	img, _ := remoteImage(t, ref)
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if want := "pushed " + ref + "@" + digest.String(); strings.TrimSpace(stdout) != want {
		t.Fatalf("kdev build printed %q, want %q (the registry's digest)", stdout, want)
	}
	builtByBuildKit(t, img, ref)
	cf, _ := img.ConfigFile()
	if cf.Config.Labels["what"] != "e2e" {
		t.Fatalf("label what=%q, want the build arg e2e", cf.Config.Labels["what"])
	}
	for _, w := range []string{"buildkitd v", "(rootless, as ", "COPY hello.txt /hello.txt"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("kdev build's output lacks %q:\n%s", w, stderr)
		}
	}
}

func TestKdevBuildFailureShowsBuildKitError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY no-such-file /x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := env.Image("e2e-kdev-build", "broken")
	stdout, stderr, code := kdevBuild(t, dir, "-t", ref)
	if code == 0 {
		t.Fatalf("kdev build of a broken Dockerfile exited 0:\n%s%s", stdout, stderr)
	}
	// BuildKit's own lines: its ERROR on the step, the Dockerfile excerpt,
	// buildctl's "failed to solve", naming the missing file.
	for _, w := range []string{"ERROR: failed to calculate checksum", `"/no-such-file": not found`,
		">>> COPY no-such-file /x", "error: failed to solve:"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("kdev build's error output lacks BuildKit's %q:\n%s", w, stderr)
		}
	}
	if last := lastLine(stderr); !strings.HasPrefix(last, "error: failed to solve:") {
		t.Errorf("kdev build's last line %q is not BuildKit's error", last)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
