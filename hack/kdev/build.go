//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kubectl-dev/kubectl-dev/hack/buildkit"
)

func init() { register("build", runBuild) }

const buildUsage = `usage: kdev build DIR -t IMAGE [--build-arg K=V]... [--target T] [-f DOCKERFILE]

Builds DIR's Dockerfile with BuildKit, rootless and daemonless: buildkitd
starts under RootlessKit as the unprivileged user %s for this one build,
the image is pushed to IMAGE (the test bed's registry speaks plain HTTP),
and the daemon stops. Its build cache stays in %s.
The first run builds BuildKit and RootlessKit (minutes without Go's build cache), installs
Debian's uidmap and adds the user.

`

// parseBuild reads kdev build's arguments: flags may come before or after DIR.
func parseBuild(args []string) (buildkit.BuildOptions, error) {
	fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, buildUsage, buildkit.User(), buildkit.DefaultStateDir())
		fs.PrintDefaults()
	}
	var o buildkit.BuildOptions
	var buildArgs []string
	fs.StringVarP(&o.Image, "tag", "t", "", "the image to push, a full reference (127.0.0.1:5000/NAME:TAG)")
	fs.StringVarP(&o.Dockerfile, "file", "f", "", "the Dockerfile (default DIR/Dockerfile)")
	fs.StringArrayVar(&buildArgs, "build-arg", nil, "a Dockerfile ARG, K=V (repeatable)")
	fs.StringVar(&o.Target, "target", "", "the stage to build (default the last)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return o, fmt.Errorf("kdev build takes one directory, the build context (got %d arguments)", fs.NArg())
	}
	o.Dir = fs.Arg(0)
	if o.Image == "" {
		return o, fmt.Errorf("no image given: add -t 127.0.0.1:5000/NAME:TAG")
	}
	for _, kv := range buildArgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return o, fmt.Errorf("--build-arg %q: give it as NAME=VALUE", kv)
		}
		if o.BuildArgs == nil {
			o.BuildArgs = map[string]string{}
		}
		o.BuildArgs[k] = v
	}
	return o, nil
}

// runBuild: kdev build DIR -t IMAGE ...
func runBuild(ctx context.Context, args []string) error {
	o, err := parseBuild(args)
	if err != nil {
		return err
	}
	o.Output = os.Stderr
	if err := buildkit.Ensure(ctx, os.Stderr); err != nil {
		return err
	}
	digest, err := buildkit.Build(ctx, o, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", o.Image, digest)
	return nil
}
