//go:build !linux

package images

import (
	"context"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// debianLayer needs debootstrap, chroot and mounts: Linux only.
func debianLayer(ctx context.Context, out io.Writer) (v1.Layer, error) {
	return nil, errors.New("the demo-python root filesystem is made with debootstrap, on Linux only")
}
