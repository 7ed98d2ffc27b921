//go:build linux

// Command kdev is the project's test-bed tool: it builds and runs a real
// single-node Kubernetes cluster, a local OCI registry and the test images,
// without Docker. See hack/README.md and docs/testing.md.
//
//	kdev cluster up|down|status|env
//	kdev registry serve
//	kdev images build
//	kdev build DIR -t IMAGE
//	kdev demo
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// subcommands maps "group verb" or "group" to its implementation; each file of
// this package registers its own in an init function.
var subcommands = map[string]func(ctx context.Context, args []string) error{}

func register(name string, fn func(ctx context.Context, args []string) error) {
	subcommands[name] = fn
}

func usage() {
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: kdev COMMAND [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintln(os.Stderr, "  "+n)
	}
}

func main() { os.Exit(run()) }

// run runs the subcommand and returns the exit code (deferred calls run
// before main exits).
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	var fn func(context.Context, []string) error
	switch {
	case len(args) >= 2 && subcommands[args[0]+" "+args[1]] != nil:
		fn, args = subcommands[args[0]+" "+args[1]], args[2:]
	case len(args) >= 1 && subcommands[args[0]] != nil:
		fn, args = subcommands[args[0]], args[1:]
	default:
		usage()
		return 2
	}
	if err := fn(ctx, args); err != nil {
		fmt.Fprintln(os.Stderr, "kdev: "+err.Error())
		return 1
	}
	return 0
}
