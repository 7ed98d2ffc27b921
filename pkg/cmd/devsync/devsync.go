// Package devsync is the cobra layer of "kubectl devsync": flags, argument
// parsing and output. Watching and streaming live in engine packages
// (pkg/filesync on both sides, pkg/sshclient and pkg/portforward for the
// connection, the agent's "devsync" SSH subsystem).
package devsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/scheme"
	"k8s.io/kubectl/pkg/util/templates"
	uexec "k8s.io/utils/exec"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentconn"
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/cli"
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/complete"
	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
	"github.com/kubectl-dev/kubectl-dev/pkg/portforward"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncengine"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

var (
	syncLong = templates.LongDesc(`
		Watch a local directory and stream every change into the running app
		container of a workload, through the devagent sidecar, without a shell or tar
		in the app's image. Optionally restart the app process after each change
		without restarting its container (--restart, after kubectl devpatch --supervise),
		send it a signal (--signal) or run a command in its view (--exec).

		The destination defaults to the app process's working directory. Files are
		written atomically, owned by the app's user. When the connection drops, the
		pod is replaced or the container restarts, devsync follows the workload to
		its new pod, syncs again, and keeps watching.

		TYPE/NAME is a workload, a job (its newest running pod) or a pod. The
		workload must have been patched with "kubectl devpatch" first.`)

	syncExample = templates.Examples(`
		# Sync ./src into the app's working directory and keep watching
		kubectl devsync ./src deploy/demo

		# Sync into /app and restart the app (kubectl devpatch --supervise) after each change
		kubectl devsync ./src deploy/demo --dest /app --restart

		# Sync once, deleting remote files that do not exist locally, for a script
		kubectl devsync ./src deploy/demo --once --delete -q`)
)

// Options are the flags and resolved state of one run.
type Options struct {
	genericiooptions.IOStreams

	// Remedy holds the flags the commands errors suggest repeat.
	Remedy            kubectlcmd.Flags
	Container         string
	Dest              string
	Once              bool
	Delete            bool
	Excludes          []string
	NoGitignore       bool
	Restart           bool
	Signal            string
	Exec              string
	Quiet             bool
	Verbose           bool
	Poll              bool
	Identity          string
	PodRunningTimeout time.Duration
	Compress          string

	// predial is the first port-forward's connection, dialled in
	// advance; Run closes it if no dial took it.
	predial  *portforward.Predial
	Progress string

	// Filled by Complete.
	LocalDir   string
	TypeName   string
	Namespace  string
	Object     runtime.Object
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	KeyDir     string
	// Dialer carries the stream to the agent: the API server's
	// port-forward unless a test set another before Complete.
	Dialer agentconn.Dialer
}

// NewOptions returns the defaults.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	return &Options{IOStreams: streams, PodRunningTimeout: 2 * time.Minute, Compress: "auto", Progress: "auto"}
}

// NewCmdDevSync returns the root command of "kubectl devsync".
func NewCmdDevSync(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmd(f, NewOptions(streams))
}

func newCmd(f cmdutil.Factory, o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "devsync LOCAL_DIR TYPE/NAME [-c CONTAINER] [--dest PATH] [--once] [--delete] [--exclude GLOB]... [--restart | --signal SIG | --exec CMD] [flags]",
		DisableFlagsInUseLine: true,
		Short:                 "Stream local edits into a running app container",
		Long:                  syncLong,
		Example:               syncExample,
		Args:                  cobra.ArbitraryArgs,
		ValidArgsFunction:     complete.TargetArg(f, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f, cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// AddFlags binds the flags.
func (o *Options) AddFlags(cmd *cobra.Command) {
	flags := cmd.Flags()
	cmdutil.AddContainerVarFlags(cmd, &o.Container, o.Container)
	flags.Lookup("container").Usage = "The app container to sync into; default: the one the agent was patched for."
	flags.StringVar(&o.Dest, "dest", "", "Destination directory in the app container (absolute); default: the app process's working directory.")
	flags.BoolVar(&o.Once, "once", false, "Sync once, report and exit (non-zero when anything failed).")
	flags.BoolVar(&o.Delete, "delete", false, "Delete remote files that do not exist locally (initial sync; local deletes are always synced while watching).")
	flags.StringArrayVar(&o.Excludes, "exclude", nil, "Do not sync paths matching this pattern (.gitignore syntax); repeatable.")
	flags.BoolVar(&o.NoGitignore, "no-gitignore", false, "Do not read .gitignore files (.git/ stays excluded).")
	flags.BoolVar(&o.Restart, "restart", false, "Restart the app process after each synced batch, without restarting its container (needs kubectl devpatch --supervise).")
	flags.StringVar(&o.Signal, "signal", "", "Send this signal (e.g. HUP) to the app process after each synced batch.")
	flags.StringVar(&o.Exec, "exec", "", "Run this command in the app's view after each synced batch.")
	flags.BoolVarP(&o.Quiet, "quiet", "q", false, "No progress bar and no per-batch lines; errors only.")
	flags.StringVar(&o.Progress, "progress", o.Progress, "Draw a progress bar (bytes, rate, ETA) on stderr during a sync: auto (when stderr is a terminal and without --quiet), always (also to a pipe or a file: one frame per redraw, after a carriage return) or never.")
	flags.BoolVar(&o.Verbose, "verbose", false, "List the synced files (and what --restart or --signal printed). -v N is the log level, as in kubectl; -v=1 says how file content travels.")
	flags.BoolVar(&o.Poll, "poll", false, "Poll the local tree instead of using inotify.")
	flags.StringVar(&o.Identity, "identity", "", "Your SSH private key; default: the key pair in the kubectl-dev folder beside your kubeconfig (created by kubectl devpatch).")
	flags.DurationVar(&o.PodRunningTimeout, "pod-running-timeout", o.PodRunningTimeout, "How long to wait for a running pod with a ready agent (at start; reconnects wait as long as needed).")
	flags.StringVar(&o.Compress, "compress", o.Compress, "Compress what is sent with zstd: auto (when the round trip to the agent, measured at the handshake, says the link is a network), zstd or none.")
}

// Complete parses the arguments and builds the clients.
func (o *Options) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) != 2 {
		return cmdutil.UsageErrorf(cmd, "want LOCAL_DIR and TYPE/NAME, got %q", args)
	}
	o.LocalDir, o.TypeName = args[0], args[1]
	c, err := cli.ClientsFrom(f)
	if err != nil {
		return err
	}
	o.Namespace, o.RESTConfig, o.Client, o.KeyDir = c.Namespace, c.RESTConfig, c.Client, c.KeyDir
	o.Remedy = cli.RemedyFlagsFor(cmd, c.Namespace, c.ExplicitNS)
	target, err := cli.ParsePodOrTarget(o.TypeName)
	if err != nil {
		return cmdutil.UsageErrorf(cmd, "%s", err.Error())
	}
	o.TypeName = target.String()
	if o.Dialer == nil {
		// The first port-forward's TCP and TLS handshakes overlap the
		// requests that find the pod (see portforward.StartPredial).
		pf := agentconn.PortForward{Config: o.RESTConfig, Client: o.Client, Predial: portforward.StartPredial(o.RESTConfig)}
		o.predial = pf.Predial
		o.Dialer = pf
	}
	obj, err := f.NewBuilder().
		WithScheme(scheme.Scheme, scheme.Scheme.PrioritizedVersionsAllGroups()...).
		NamespaceParam(o.Namespace).DefaultNamespace().
		ResourceNames("pods", o.TypeName).
		Do().Object()
	if err != nil {
		return err
	}
	o.Object = obj
	return nil
}

// Validate checks the arguments and flag combinations.
func (o *Options) Validate() error {
	fi, err := os.Stat(o.LocalDir)
	if err != nil {
		return fmt.Errorf("LOCAL_DIR %s: %w", o.LocalDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("LOCAL_DIR %s is not a directory", o.LocalDir)
	}
	n := 0
	for _, b := range []bool{o.Restart, o.Signal != "", o.Exec != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		return errors.New("choose one of --restart, --signal and --exec")
	}
	if o.Dest != "" && !strings.HasPrefix(o.Dest, "/") {
		return fmt.Errorf("--dest must be an absolute path in the app container, not %q", o.Dest)
	}
	if o.PodRunningTimeout <= 0 {
		return fmt.Errorf("--pod-running-timeout must be positive, not %s", o.PodRunningTimeout)
	}
	switch o.Compress {
	case "auto", "zstd", "none":
	default:
		return fmt.Errorf("--compress must be auto, zstd or none, not %q", o.Compress)
	}
	switch o.Progress {
	case "", "auto", "always", "never":
	default:
		return fmt.Errorf("--progress must be auto, always or never, not %q", o.Progress)
	}
	return nil
}

// compression maps --compress to the session's setting. auto is decided
// by the session from the round trip of its handshake, not from the API
// server's address: a loopback address is as often a proxy, a tunnel or a
// gateway in front of a remote cluster (see filesync.AutoCompressRTT).
func compression(mode string) filesync.Compression {
	switch mode {
	case "zstd":
		return filesync.CompressAlways
	case "none":
		return filesync.CompressNever
	}
	return filesync.CompressAuto
}

// progress says whether to draw the bar (--progress, --quiet) and whether
// stderr is a terminal.
func (o *Options) progress() (show, tty bool) {
	if f, ok := o.ErrOut.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	switch o.Progress {
	case "always":
		return true, tty
	case "never":
		return false, tty
	}
	return tty && !o.Quiet, tty
}

func (o *Options) identityFile() string {
	if o.Identity != "" {
		return o.Identity
	}
	return filepath.Join(o.KeyDir, keys.PrivateKeyFile)
}

// action is what runs after each applied batch (nil for none).
func (o *Options) action() *syncproto.Action {
	switch {
	case o.Restart:
		return &syncproto.Action{Kind: "restart"}
	case o.Signal != "":
		return &syncproto.Action{Kind: "signal", Args: []string{o.Signal}}
	case o.Exec != "":
		return &syncproto.Action{Kind: "exec", Args: []string{o.Exec}}
	}
	return nil
}

// Config is the engine's configuration from the flags (a pure function of
// the Options).
func (o *Options) Config() syncengine.Config {
	return syncengine.Config{
		LocalDir:       o.LocalDir,
		Ignore:         filesync.IgnoreOptions{Excludes: o.Excludes, NoGitignore: o.NoGitignore},
		Delete:         o.Delete,
		Once:           o.Once,
		Poll:           o.Poll,
		Action:         o.action(),
		ConnectTimeout: o.PodRunningTimeout,
	}
}

// exitError is an exit code with a one-line message.
func exitError(code int, format string, args ...any) error {
	return uexec.CodeExitError{Err: fmt.Errorf("error: "+format, args...), Code: code}
}

// Run syncs, then watches until interrupted, reconnecting as needed.
func (o *Options) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	defer o.predial.Close()
	signer, err := agentconn.LoadIdentity(o.identityFile(), o.Identity != "", o.TypeName, o.Remedy)
	if err != nil {
		var ni *agentconn.NoIdentityError
		if errors.As(err, &ni) {
			return exitError(1, "%v", err)
		}
		return err
	}
	cfg := o.Config()
	if show, tty := o.progress(); show {
		cfg.Progress = NewProgressBar(o.ErrOut, tty)
	}
	conn := &syncengine.AgentConnector{
		Conn: &agentconn.Connector{
			Client: o.Client, Object: o.Object, Ref: o.TypeName, Container: o.Container,
			Dialer: o.Dialer, Signer: signer, KeepaliveInterval: 5 * time.Second, Remedy: o.Remedy,
		},
		Client:   o.Client,
		Dest:     o.Dest,
		Compress: compression(o.Compress),
		Name:     "kubectl-devsync",
	}
	warn := func(msg string) { fmt.Fprintln(o.ErrOut, "Warning:", msg) }
	eng, err := syncengine.New(cfg, conn, &printer{o: o}, warn)
	if err != nil {
		return err
	}
	err = eng.Run(ctx)
	var np *agentconn.NotPatchedError
	var oe *syncengine.OnceError
	switch {
	case errors.As(err, &np):
		return exitError(1, "%s has no devagent: run \"%s\" first", o.TypeName, o.Remedy.Command("devpatch", o.TypeName))
	case errors.As(err, &oe):
		return exitError(1, "%v", oe.Err)
	}
	return err
}

// printer prints what the engine does: results to stdout, status to
// stderr, diagnostics at -v=1 and more.
type printer struct{ o *Options }

func (p *printer) Connected(s syncengine.Session, first bool) {
	o := p.o
	w := s.Client().Welcome()
	if !first {
		o.status("reconnected to %s:%s", s.Ref(), w.Dest)
		return
	}
	o.status("syncing %s to %s:%s (owner %d:%d)", o.LocalDir, s.Ref(), w.Dest, w.UID, w.GID)
	if !klog.V(1).Enabled() {
		return
	}
	if z, why, _ := s.Client().Compression(); z {
		fmt.Fprintf(o.ErrOut, "file content is compressed with zstd (%s)\n", why)
	} else {
		fmt.Fprintf(o.ErrOut, "file content is not compressed (%s)\n", why)
	}
	// Lanes open in the background; this waits for them.
	if n, err := s.Client().Lanes(); n > 0 {
		fmt.Fprintf(o.ErrOut, "file content travels on %d lanes (SSH channels)\n", n)
	} else if err != nil {
		fmt.Fprintf(o.ErrOut, "file content shares the session's channel (no lanes: %v)\n", err)
	}
}

func (p *printer) Synced(sum *filesync.Summary) {
	o := p.o
	if !o.Quiet {
		fmt.Fprintln(o.Out, summaryLine(sum))
		if o.Verbose {
			summaryDetail(o.Out, sum)
		}
	}
	if err := sum.Err(); err != nil && !o.Once {
		fmt.Fprintln(o.ErrOut, "error:", err) // --once exits with it instead
	}
	if klog.V(1).Enabled() {
		racyNotes(o.ErrOut, sum)
	}
}

func (p *printer) ActionDone(a syncproto.Action, took time.Duration, out string, err error) {
	o := p.o
	if err != nil {
		fmt.Fprintf(o.ErrOut, "error: %v\n", err)
		return
	}
	if o.Quiet {
		return
	}
	fmt.Fprintf(o.Out, "%s in %s\n", actionDone(a), formatDuration(took))
	if out = strings.TrimSpace(out); out != "" && (o.Verbose || a.Kind == "exec") {
		fmt.Fprintln(o.Out, out)
	}
}

func (p *printer) Watching()               { p.o.status("watching %s (Ctrl-C to stop)", p.o.LocalDir) }
func (p *printer) Reconnecting(why string) { p.o.status("%s; reconnecting", why) }
func (p *printer) Waiting(err error)       { p.o.status("waiting for %s: %v", p.o.TypeName, err) }

func (p *printer) SyncFailed(err error, afterReconnect bool) {
	if afterReconnect {
		fmt.Fprintf(p.o.ErrOut, "sync after reconnect failed: %v\n", err)
		return
	}
	fmt.Fprintf(p.o.ErrOut, "initial sync failed: %v\n", err)
}

func actionDone(a syncproto.Action) string {
	switch a.Kind {
	case "restart":
		return "restarted the app"
	case "signal":
		return "sent SIG" + strings.TrimPrefix(strings.ToUpper(a.Args[0]), "SIG") + " to the app"
	}
	return "ran " + strings.Join(a.Args, " ")
}

func (o *Options) status(format string, args ...any) {
	if !o.Quiet {
		fmt.Fprintf(o.ErrOut, format+"\n", args...)
	}
}
