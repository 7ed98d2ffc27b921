//go:build linux

package supervisor

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Main is the "supervise" subcommand of the agent binary:
//
//	devagent supervise [--grace 10s] [--socket PATH] [--keep-running] -- CMD [ARGS...]
//
// It returns the exit code for os.Exit.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("supervise", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts Options
	fs.DurationVar(&opts.Grace, "grace", 0, "time between SIGTERM and SIGKILL when restarting the app (default 10s)")
	fs.StringVar(&opts.Socket, "socket", "", "control socket path (e.g. in the shared emptyDir)")
	fs.BoolVar(&opts.KeepRunning, "keep-running", false, "keep running when the app exits, waiting for a restart")
	quiet := fs.Bool("quiet", false, "do not log supervisor events on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: devagent supervise [--grace 10s] [--socket PATH] [--keep-running] -- CMD [ARGS...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts.Argv = fs.Args()
	if !*quiet {
		opts.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	}
	// Orphans of the app come to us, and we reap them.
	if os.Getpid() == 1 {
		opts.ReapAll = true
	} else if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err == nil {
		opts.ReapAll = true
	}
	s, err := New(opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 127
	}
	code, err := s.Run(context.Background())
	if err != nil {
		fmt.Fprintln(stderr, err)
		if code <= 0 {
			code = 1
		}
	}
	return code
}
