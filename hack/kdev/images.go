//go:build linux

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kubectl-dev/kubectl-dev/hack/internal/images"
)

func init() {
	register("images build", imagesBuild)
}

// imagesBuild: kdev images build [--version V] [NAME...]
func imagesBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("images build", flag.ContinueOnError)
	version := fs.String("version", images.Version, "devagent version: linked into the agent and used as its image tag (KDEV_VERSION)")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: kdev images build [--version V] [NAME...]\n\nBuilds the test images and pushes the changed ones. Names: %s (default: all)\n\n",
			strings.Join(images.Names(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	images.Version = *version
	return images.Build(ctx, os.Stdout, fs.Args()...)
}
