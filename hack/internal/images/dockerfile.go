package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// dockerBuild is an image built from a Dockerfile with BuildKit (rootless,
// daemonless: hack/buildkit) instead of assembled here.
type dockerBuild struct {
	// dir is the build context; dockerfile the Dockerfile's path.
	dir, dockerfile string
	// target is the Dockerfile's stage.
	target string
	// args are the Dockerfile's ARGs.
	args map[string]string
}

// kdevBuildArgs is the `kdev build` command line that makes the same image,
// with paths relative to root where they are under it.
func (d *dockerBuild) kdevBuildArgs(root, ref string) []string {
	rel := func(p string) string {
		if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	args := []string{rel(d.dir)}
	if d.dockerfile != filepath.Join(d.dir, "Dockerfile") {
		args = append(args, "-f", rel(d.dockerfile))
	}
	args = append(args, "-t", ref)
	if d.target != "" {
		args = append(args, "--target", d.target)
	}
	keys := make([]string, 0, len(d.args))
	for k := range d.args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--build-arg", k+"="+d.args[k])
	}
	return args
}

// inputs hashes all that the image is made from: the Dockerfile, every
// file of the context (the .dockerignore'd ones too: a needless rebuild
// is cheap, BuildKit's cache takes it), the stage, the arguments, the
// BuildKit version and the reference. An image the registry has under the
// reference, built from the same inputs, is not built again.
func (d *dockerBuild) inputs(ref string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "recipe 1\nbuildkit %s\nref %s\ntarget %s\n", testbed.BuildKitVersion, ref, d.target)
	keys := make([]string, 0, len(d.args))
	for k := range d.args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "arg %q=%q\n", k, d.args[k])
	}
	df, err := os.ReadFile(d.dockerfile)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "dockerfile %d\n", len(df))
	h.Write(df)
	err = filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.dir, p)
		base := e.Name()
		if e.IsDir() && (base == "__pycache__") {
			return filepath.SkipDir
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%q %v", rel, info.Mode())
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " %d\n", len(b))
			h.Write(b)
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " -> %q\n", t)
		default:
			fmt.Fprintln(h)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func stampPath(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(cacheDir(), "buildkit-stamps", hex.EncodeToString(sum[:12]))
}

// builtBefore returns the digest the registry has under ref when it is the
// one last built there from the same inputs, else "".
func builtBefore(ctx context.Context, ref, inputs string) string {
	b, err := os.ReadFile(stampPath(ref))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) != 3 || f[0] != ref || f[1] != inputs {
		return ""
	}
	r, err := name.ParseReference(ref, nameOptions(ref)...)
	if err != nil {
		return ""
	}
	desc, err := remote.Head(r, remote.WithContext(ctx))
	if err != nil || desc.Digest.String() != f[2] {
		return ""
	}
	return f[2]
}

func recordBuild(ref, inputs, digest string) error {
	p := stampPath(ref)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", p, os.Getpid())
	if err := os.WriteFile(tmp, []byte(ref+" "+inputs+" "+digest+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// buildKit is what this package needs of hack/buildkit (Linux
// only: dockerfile_linux.go).
type buildKit interface {
	build(ctx context.Context, d *dockerBuild, ref string, progress io.Writer) (digest string, err error)
	stop() error
}

// buildKitSession starts BuildKit's setup (Ensure) at once, in the
// background, so that building it the first time overlaps the other
// images' work, and starts one daemon for all the Dockerfile builds of a
// run when the first needs it.
type buildKitSession struct {
	out     io.Writer
	ensured chan struct{}
	ensErr  error
	once    sync.Once
	bk      buildKit
	err     error
}

func newBuildKitSession(ctx context.Context, out io.Writer) *buildKitSession {
	s := &buildKitSession{out: out, ensured: make(chan struct{})}
	go func() {
		defer close(s.ensured)
		s.ensErr = ensureBuildKit(ctx, out)
	}()
	return s
}

func (s *buildKitSession) daemon(ctx context.Context) (buildKit, error) {
	s.once.Do(func() {
		select {
		case <-s.ensured:
		case <-ctx.Done():
			s.err = ctx.Err()
			return
		}
		if s.ensErr != nil {
			s.err = fmt.Errorf("setting up BuildKit: %w", s.ensErr)
			return
		}
		s.bk, s.err = startBuildKit(ctx, s.out)
	})
	return s.bk, s.err
}

// close stops the daemon, and waits for the setup to end.
func (s *buildKitSession) close() error {
	<-s.ensured
	if s.bk != nil {
		return s.bk.stop()
	}
	return nil
}

// dockerPush builds and pushes t with BuildKit unless the registry has
// the image built from the same inputs under its reference already.
func dockerPush(ctx context.Context, out io.Writer, s *buildKitSession, root string, t tagged) error {
	inputs, err := t.docker.inputs(t.ref)
	if err != nil {
		return err
	}
	if digest := builtBefore(ctx, t.ref, inputs); digest != "" {
		fmt.Fprintf(out, "up to date %s %s (BuildKit)\n", t.ref, digest)
		return nil
	}
	bk, err := s.daemon(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(out, "$ kdev build %s\n", strings.Join(t.docker.kdevBuildArgs(root, t.ref), " "))
	digest, err := bk.build(ctx, t.docker, t.ref, nil)
	if err != nil {
		return err
	}
	if err := recordBuild(t.ref, inputs, digest); err != nil {
		return err
	}
	fmt.Fprintf(out, "pushed %s %s (BuildKit, %s)\n", t.ref, digest, time.Since(start).Round(10*time.Millisecond))
	return nil
}
