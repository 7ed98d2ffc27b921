//go:build linux

package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/kubectl-dev/kubectl-dev/hack/internal/cluster"
)

func init() {
	register("cluster up", clusterUp)
	register("cluster down", clusterDown)
	register("cluster status", clusterStatus)
	register("cluster env", clusterEnv)
}

func clusterFlags(name string, args []string, extra func(*flag.FlagSet, *cluster.Config)) (cluster.Config, error) {
	cfg := cluster.Default()
	fs := flag.NewFlagSet("kdev "+name, flag.ContinueOnError)
	if extra != nil {
		extra(fs, &cfg)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	return cfg, nil
}

func needRoot() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the cluster needs root (containerd, kubelet, mounts, network namespaces)")
	}
	return nil
}

func clusterUp(ctx context.Context, args []string) error {
	return lockedRun("cluster up", args, func(fs *flag.FlagSet, c *cluster.Config) {
		fs.BoolVar(&c.KeepOnFailure, "keep-on-failure", false, "leave started components running when a later step fails")
	}, func(cfg cluster.Config) error { return cfg.Up(ctx) })
}

func clusterDown(ctx context.Context, args []string) error {
	return lockedRun("cluster down", args, nil, func(cfg cluster.Config) error {
		// The link emulator stands in front of this cluster: it goes first.
		if err := cluster.StopDaemon(linkPidFile()); err != nil {
			return fmt.Errorf("stopping the link: %w", err)
		}
		return cfg.Down(ctx)
	})
}

// lockedRun parses the flags, checks for root and runs fn holding the
// cluster's lock, so that two ups or downs never interleave.
func lockedRun(name string, args []string, extra func(*flag.FlagSet, *cluster.Config), fn func(cluster.Config) error) error {
	cfg, err := clusterFlags(name, args, extra)
	if err != nil {
		return err
	}
	if err := needRoot(); err != nil {
		return err
	}
	unlock, err := cfg.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	return fn(cfg)
}

func clusterStatus(ctx context.Context, args []string) error {
	cfg, err := clusterFlags("cluster status", args, nil)
	if err != nil {
		return err
	}
	return cfg.Status(ctx)
}

func clusterEnv(ctx context.Context, args []string) error {
	cfg, err := clusterFlags("cluster env", args, nil)
	if err != nil {
		return err
	}
	cfg.Env()
	return nil
}
