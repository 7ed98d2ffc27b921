//go:build linux

package images

import (
	"context"
	"io"

	"github.com/kubectl-dev/kubectl-dev/hack/buildkit"
)

func ensureBuildKit(ctx context.Context, out io.Writer) error { return buildkit.Ensure(ctx, out) }

type buildKitDaemon struct{ d *buildkit.Daemon }

func startBuildKit(ctx context.Context, out io.Writer) (buildKit, error) {
	d, err := buildkit.Start(ctx, buildkit.DaemonOptions{Log: out})
	if err != nil {
		return nil, err
	}
	return buildKitDaemon{d}, nil
}

func (b buildKitDaemon) build(ctx context.Context, d *dockerBuild, ref string, progress io.Writer) (string, error) {
	return b.d.Build(ctx, buildkit.BuildOptions{
		Dir: d.dir, Dockerfile: d.dockerfile, Image: ref, BuildArgs: d.args, Target: d.target, Output: progress,
	})
}

func (b buildKitDaemon) stop() error { return b.d.Stop() }
