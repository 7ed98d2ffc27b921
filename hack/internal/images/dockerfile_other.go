//go:build !linux

package images

import (
	"context"
	"errors"
	"io"
)

var errNoBuildKit = errors.New("BuildKit runs on Linux only")

func ensureBuildKit(ctx context.Context, out io.Writer) error { return errNoBuildKit }

func startBuildKit(ctx context.Context, out io.Writer) (buildKit, error) { return nil, errNoBuildKit }
