// Package agent is the devagent: the process that runs in the sidecar
// container next to the app, sharing its process namespace.
package agent

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/kubectl-dev/kubectl-dev/pkg/version"
)

// Main runs the agent until SIGTERM or SIGINT and returns its exit code.
func Main(args []string, log io.Writer) int {
	fs := flag.NewFlagSet("devagent", flag.ContinueOnError)
	fs.SetOutput(log)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(log, "devagent", version.String())
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintf(log, "devagent %s started\n", version.String())
	<-ctx.Done()
	fmt.Fprintln(log, "devagent stopping")
	return 0
}
