//go:build linux

package supervisor

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentlog"
)

// Main is the "supervise" subcommand of the agent binary:
//
//	devagent supervise [--grace 10s] [--socket PATH] [--keep-running] [--log-level LEVEL] -- CMD [ARGS...]
//
// It logs on stderr, which it shares with the app (the container's log),
// through its own logger (pkg/agentlog), its records marked
// component=supervisor. It returns the exit code for os.Exit.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("supervise", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts Options
	fs.DurationVar(&opts.Grace, "grace", 0, "time between SIGTERM and SIGKILL when restarting the app (default 10s)")
	fs.StringVar(&opts.Socket, "socket", "", "control socket path (e.g. in the shared emptyDir)")
	fs.BoolVar(&opts.KeepRunning, "keep-running", false, "keep running when the app exits, waiting for a restart")
	quiet := fs.Bool("quiet", false, "log only warnings and errors (as --log-level warn)")
	logLevel := fs.String("log-level", os.Getenv(agentlog.EnvLevel), "debug, info (the default), warn or error (env "+agentlog.EnvLevel+")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: devagent supervise [--grace 10s] [--socket PATH] [--keep-running] [--log-level LEVEL] -- CMD [ARGS...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts.Argv = fs.Args()
	level, err := agentlog.ParseLevel(*logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "devagent supervise:", err)
		return 2
	}
	if *quiet {
		level = max(level, slog.LevelWarn)
	}
	log := agentlog.New(stderr, level).With("component", "supervisor")
	opts.Logger = log
	// Orphans of the app come to us, and we reap them.
	if os.Getpid() == 1 {
		opts.ReapAll = true
	} else if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err == nil {
		opts.ReapAll = true
	}
	s, err := New(opts)
	if err != nil {
		log.Error("the app cannot start", "err", err)
		return 127
	}
	code, err := s.Run(context.Background())
	if err != nil {
		log.Error("supervising the app failed", "err", err)
		if code <= 0 {
			code = 1
		}
	}
	return code
}
