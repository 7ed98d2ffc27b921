// Package devssh is the cobra layer of "kubectl devssh": flags, argument
// parsing and output. The SSH client and the port-forward live in engine
// packages (pkg/sshclient, pkg/portforward).
package devssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/scheme"
	"k8s.io/kubectl/pkg/util/templates"
	uexec "k8s.io/utils/exec"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentconn"
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/cli"
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/complete"
	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
	"github.com/kubectl-dev/kubectl-dev/pkg/portforward"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshclient"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

var (
	sshLong = templates.LongDesc(`
		Open an SSH session to the devagent in a pod, through the API server's
		port-forward: an interactive shell, a remote command with its exit code, sftp,
		local port forwards, or raw SSH on stdin and stdout for OpenSSH's ProxyCommand.

		The shell runs in the app's view when the agent can (chrooted into the app's
		files, as the app's user, with its environment and working directory), else in
		the agent's own busybox shell with the app's files at $DEVSSH_APP_ROOT;
		--target chooses. The agent's host key is pinned from the workload's Secret.

		TYPE/NAME is a workload, a job (its newest running pod, as kubectl logs
		job/NAME picks) or a pod. The workload must have been patched with
		"kubectl devpatch" first.`)

	sshExample = templates.Examples(`
		# Open a shell in the app's view of a deployment's pod
		kubectl devssh deploy/demo

		# Run a command; its exit code becomes kubectl devssh's exit code
		kubectl devssh deploy/demo -- ls -l /app

		# Forward local port 8080 to the pod's port 8080, without a shell
		kubectl devssh deploy/demo -N -L 8080:localhost:8080

		# Use OpenSSH, scp, sftp, rsync or VS Code: write an ssh_config block
		kubectl devssh config deploy/demo --write

		# Hand the connection to the system's ssh
		kubectl devssh deploy/demo --ssh --ssh-option ForwardAgent=no -- uname -a`)
)

// Options are the flags and resolved state of one run.
type Options struct {
	genericiooptions.IOStreams

	// Remedy holds the flags the commands errors suggest repeat.
	Remedy            kubectlcmd.Flags
	Container         string
	Forwards          []string
	Stdio             bool
	UseSSH            bool
	SSHOptions        []string
	Target            string
	Identity          string
	PodRunningTimeout time.Duration
	ForceTTY          bool
	NoCommand         bool

	// Filled by Complete.
	TypeName   string
	Command    []string
	Namespace  string
	Object     runtime.Object
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	KeyDir     string
	Context    string
	Kubeconfig string
	// Dialer carries the stream to the agent: the API server's
	// port-forward unless a test set another before Complete.
	Dialer agentconn.Dialer
	// predial is the port-forward's connection dialled in advance; Run
	// closes it if nothing took it.
	predial *portforward.Predial
	// speculate: Complete starts connecting to the pod of the hint (the
	// pod the reference resolved to last time) before it reads the
	// object; Run uses that connection when the pod is still the one.
	speculate bool
	hintFile  string
	hint      agentconn.Hint
	spec      *agentconn.Speculation
}

// NewOptions returns the defaults.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	return &Options{IOStreams: streams, PodRunningTimeout: time.Minute}
}

// NewCmdDevSSH returns the root command of "kubectl devssh".
func NewCmdDevSSH(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmd(f, NewOptions(streams))
}

func newCmd(f cmdutil.Factory, o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "devssh TYPE/NAME [-c CONTAINER] [-- COMMAND [args...]]",
		DisableFlagsInUseLine: true,
		Short:                 "SSH into a pod's devagent through port-forward",
		Long:                  sshLong,
		Example:               sshExample,
		Args:                  cobra.MinimumNArgs(1),
		ValidArgsFunction:     complete.TargetArg(f, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.speculate = true
			if err := o.Complete(f, cmd, args); err != nil {
				o.spec.Close()
				return err
			}
			if err := o.Validate(); err != nil {
				o.spec.Close()
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.AddFlags(cmd)
	cmd.AddCommand(NewCmdConfig(f, o.IOStreams))
	return cmd
}

// AddFlags binds the flags.
func (o *Options) AddFlags(cmd *cobra.Command) {
	flags := cmd.Flags()
	cmdutil.AddContainerVarFlags(cmd, &o.Container, o.Container)
	flags.Lookup("container").Usage = "The app container whose view the session gets; default: the one the agent was patched for."
	flags.StringArrayVarP(&o.Forwards, "local-forward", "L", nil, "Forward a local port to the pod's loopback, as ssh -L [bind_address:]port:host:hostport (host must be localhost or 127.0.0.1).")
	flags.BoolVarP(&o.NoCommand, "no-command", "N", false, "Run no shell or command (with -L: only forward ports), as ssh -N.")
	flags.BoolVarP(&o.ForceTTY, "tty", "t", false, "Allocate a terminal for a command too, as ssh -t.")
	flags.BoolVar(&o.Stdio, "stdio", false, "Carry raw SSH bytes on stdin and stdout (for OpenSSH's ProxyCommand).")
	flags.BoolVar(&o.UseSSH, "ssh", false, "Run the system's OpenSSH client, set up with the pinned host key, your identity and this plugin as ProxyCommand.")
	flags.StringArrayVar(&o.SSHOptions, "ssh-option", nil, "With --ssh, an extra ssh option KEY=VALUE (passed as -o).")
	flags.StringVar(&o.Target, "target", wire.TargetApp, "Where the shell runs: app (the app's files, user and environment, when the agent can) or agent (the agent's own shell).")
	flags.StringVar(&o.Identity, "identity", o.Identity, "Your SSH private key; default: the key pair in the kubectl-dev folder beside your kubeconfig (created by kubectl devpatch).")
	flags.DurationVar(&o.PodRunningTimeout, "pod-running-timeout", o.PodRunningTimeout, "How long to wait for a running pod with a ready agent.")
}

// Complete parses the arguments and builds the clients.
func (o *Options) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	dash := cmd.ArgsLenAtDash()
	if dash >= 0 {
		o.Command = args[dash:]
		args = args[:dash]
	}
	if len(args) != 1 {
		return cmdutil.UsageErrorf(cmd, "want one TYPE/NAME (then -- COMMAND ARGS...), got %q", args)
	}
	o.TypeName = args[0]
	return o.completeClients(f, cmd)
}

func (o *Options) completeClients(f cmdutil.Factory, cmd *cobra.Command) error {
	c, err := cli.ClientsFrom(f)
	if err != nil {
		return err
	}
	o.Namespace, o.RESTConfig, o.Client, o.KeyDir = c.Namespace, c.RESTConfig, c.Client, c.KeyDir
	o.Remedy = cli.RemedyFlagsFor(cmd, c.Namespace, c.ExplicitNS)
	o.Context, _ = cmd.Flags().GetString("context")
	if o.Context == "" {
		if raw, err := f.ToRawKubeConfigLoader().RawConfig(); err == nil {
			o.Context = raw.CurrentContext
		}
	}
	o.Kubeconfig, _ = cmd.Flags().GetString("kubeconfig")
	if o.Kubeconfig == "" {
		o.Kubeconfig = os.Getenv("KUBECONFIG")
	}
	target, err := cli.ParsePodOrTarget(o.TypeName)
	if err != nil {
		return cmdutil.UsageErrorf(cmd, "%s", err.Error())
	}
	o.TypeName = target.String()
	if o.Dialer == nil {
		pf := agentconn.PortForward{Config: o.RESTConfig, Client: o.Client}
		if !o.UseSSH {
			// The port-forward's TCP and TLS handshakes overlap the
			// requests that find the pod (the upgrade is HTTP/1.1, not on
			// their HTTP/2 connection).
			pf.Predial = portforward.StartPredial(o.RESTConfig)
			o.predial = pf.Predial
		}
		o.Dialer = pf
	}
	if o.speculate && !o.UseSSH && !o.Stdio {
		o.startSpeculation(cmd.Context())
	}
	obj, err := f.NewBuilder().
		WithScheme(scheme.Scheme, scheme.Scheme.PrioritizedVersionsAllGroups()...).
		NamespaceParam(o.Namespace).DefaultNamespace().
		ResourceNames("pods", o.TypeName).
		Do().Object()
	if err != nil {
		// ssh exits 255 when it cannot reach the host; so does devssh when
		// the object cannot be found.
		return resolveFailed(err)
	}
	o.Object = obj
	return nil
}

// startSpeculation connects to the hinted pod, if there is a hint, while
// Complete reads the object and Run finds the pod: the round trips of the
// port-forward and of the SSH handshake overlap theirs.
func (o *Options) startSpeculation(ctx context.Context) {
	if o.KeyDir == "" || o.RESTConfig == nil {
		return
	}
	if ctx == nil {
		ctx = context.Background()
	}
	o.hintFile = agentconn.HintFile(o.KeyDir, o.RESTConfig.Host, o.Namespace, o.TypeName, o.Container)
	h, ok := agentconn.LoadHint(o.hintFile)
	if !ok {
		return
	}
	o.hint = h
	signer, err := agentconn.LoadIdentity(o.identityFile(), o.Identity != "", o.TypeName, o.Remedy)
	if err != nil {
		return // Run reports it
	}
	o.spec = o.connector(signer).Speculate(ctx, o.Namespace, h)
}

func resolveFailed(err error) error {
	msg, ok := cmdutil.StandardErrorMessage(err)
	if !ok {
		msg = "error: " + err.Error()
	}
	return uexec.CodeExitError{Err: errors.New(msg), Code: 255}
}

// Validate checks flag combinations.
func (o *Options) Validate() error {
	if o.Target != wire.TargetApp && o.Target != wire.TargetAgent {
		return fmt.Errorf("--target must be app or agent, not %q", o.Target)
	}
	if o.Stdio && (o.UseSSH || len(o.Command) > 0 || len(o.Forwards) > 0 || o.NoCommand || o.ForceTTY) {
		return errors.New("--stdio carries raw SSH and takes no command, -L, -N, -t or --ssh")
	}
	if len(o.SSHOptions) > 0 && !o.UseSSH {
		return errors.New("--ssh-option only works with --ssh")
	}
	if o.NoCommand && len(o.Command) > 0 {
		return errors.New("-N runs no command: drop the command or -N")
	}
	for _, spec := range o.Forwards {
		if _, err := sshclient.ParseForward(spec); err != nil {
			return err
		}
	}
	if o.PodRunningTimeout <= 0 {
		return fmt.Errorf("--pod-running-timeout must be positive, not %s", o.PodRunningTimeout)
	}
	return nil
}

// exitError is the process exit code with a message (none for the remote
// command's own code).
func exitError(code int, format string, args ...any) error {
	msg := ""
	if format != "" {
		msg = "error: " + fmt.Sprintf(format, args...)
	}
	return uexec.CodeExitError{Err: errors.New(msg), Code: code}
}

// connectionFailed is ssh's exit code 255 with one line.
func connectionFailed(err error) error {
	var ce uexec.CodeExitError
	if errors.As(err, &ce) {
		return err
	}
	return exitError(255, "%v", err)
}

func (o *Options) connector(signer ssh.Signer) *agentconn.Connector {
	return &agentconn.Connector{
		Client: o.Client, Object: o.Object, Ref: o.TypeName, Container: o.Container,
		Dialer: o.Dialer, Signer: signer, Remedy: o.Remedy,
	}
}

// resolve finds the pod; its host key is read later, by whoever needs it
// (DialSSH reads it while it dials; --stdio never needs it).
func (o *Options) resolve(ctx context.Context) (*agentconn.Target, error) {
	return o.connector(nil).ResolvePod(ctx, o.PodRunningTimeout)
}

func (o *Options) identityFile() string {
	if o.Identity != "" {
		return o.Identity
	}
	return filepath.Join(o.KeyDir, keys.PrivateKeyFile)
}

// Run connects and runs the shell, the command, the forwards or the pipe.
func (o *Options) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	defer o.predial.Close()
	defer o.spec.Close() // unless taken
	t, err := o.resolve(ctx)
	if err != nil {
		return connectionFailed(err)
	}
	if o.UseSSH {
		if err := t.ReadHostKey(ctx, o.Client); err != nil {
			return connectionFailed(err)
		}
		return o.runOpenSSH(ctx, t)
	}
	if o.Stdio {
		conn, err := o.connector(nil).Dial(ctx, t)
		if err != nil {
			return connectionFailed(err)
		}
		defer conn.Close()
		if err := sshclient.Pipe(conn, o.In, o.Out); err != nil && !errors.Is(err, io.EOF) {
			return connectionFailed(agentconn.StreamError(conn, t, err))
		}
		return nil
	}
	signer, err := agentconn.LoadIdentity(o.identityFile(), o.Identity != "", o.TypeName, o.Remedy)
	if err != nil {
		return connectionFailed(err)
	}
	cl := o.spec.Take(t)
	if cl == nil {
		if cl, err = o.connector(signer).DialSSH(ctx, t); err != nil {
			return connectionFailed(err)
		}
	}
	defer cl.Close()
	if o.hintFile != "" {
		agentconn.SaveHint(o.hintFile, o.hint, t)
	}
	lostErr := func() error {
		return exitError(255, "the connection to %s was lost (the port-forward through the API server ended)", t.Ref())
	}

	for _, spec := range o.Forwards {
		fw, _ := sshclient.ParseForward(spec)
		ln, err := fw.Listen()
		if err != nil {
			return connectionFailed(fmt.Errorf("-L %s: %w", spec, err))
		}
		go cl.ServeForward(ctx, ln, fw, o.ErrOut)
	}
	if o.NoCommand {
		select {
		case <-ctx.Done():
			return nil
		case <-cl.Lost():
			return lostErr()
		}
	}

	ro := sshclient.RunOptions{
		Command: sshclient.QuoteCommand(o.Command),
		Env:     t.Env(o.Target),
		Stdin:   o.In, Stdout: o.Out, Stderr: o.ErrOut,
	}
	term := sshclient.Terminal{}
	if f, ok := o.In.(*os.File); ok {
		term.In = f
	}
	if f, ok := o.Out.(*os.File); ok {
		term.Out = f
	}
	ro.TTY = o.ForceTTY || (len(o.Command) == 0 && term.IsTerminal())
	if ro.TTY {
		ro.Term = sshclient.Term()
		ro.Rows, ro.Cols = term.Size()
		if term.IsTerminal() {
			restore, err := term.MakeRaw()
			if err == nil {
				defer restore()
			}
			stop := make(chan struct{})
			defer close(stop)
			ro.Resize = term.WatchSize(stop)
		}
	}
	code, err := cl.Run(ctx, ro)
	if errors.Is(err, sshclient.ErrConnectionLost) {
		if ro.TTY {
			fmt.Fprint(o.ErrOut, "\r\n")
		}
		return lostErr()
	}
	if err != nil {
		return connectionFailed(err)
	}
	if code != 0 {
		return exitError(code, "")
	}
	return nil
}

// openSSH is the OpenSSH set-up of a target.
func (o *Options) openSSH(t *agentconn.Target) (sshclient.OpenSSH, error) {
	self, err := os.Executable()
	if err != nil {
		self = "kubectl-devssh"
	}
	proxy := []string{self, "--stdio"}
	if o.Kubeconfig != "" {
		if abs, err := filepath.Abs(o.Kubeconfig); err == nil && !strings.Contains(o.Kubeconfig, string(os.PathListSeparator)) {
			proxy = append(proxy, "--kubeconfig", abs)
		}
	}
	if o.Context != "" {
		proxy = append(proxy, "--context", o.Context)
	}
	proxy = append(proxy, "--namespace", t.Namespace, o.TypeName)
	target, err := cli.ParsePodOrTarget(o.TypeName)
	if err != nil {
		return sshclient.OpenSSH{}, err
	}
	alias := sshclient.Alias(target.AliasKind(), target.Name, t.Namespace)
	id, err := filepath.Abs(o.identityFile())
	if err != nil {
		return sshclient.OpenSSH{}, err
	}
	dir := sshclient.Dir("")
	return sshclient.OpenSSH{
		Alias:          alias,
		ProxyCommand:   proxy,
		IdentityFile:   id,
		KnownHostsFile: filepath.Join(dir, alias+".known_hosts"),
		HostKey:        t.HostKey,
		Comment:        fmt.Sprintf("kubectl devssh config %s (context %q, namespace %s); host key from secret/%s", o.TypeName, o.Context, t.Namespace, t.SecretName),
	}, nil
}

func (o *Options) runOpenSSH(ctx context.Context, t *agentconn.Target) error {
	cfg, err := o.openSSH(t)
	if err != nil {
		return connectionFailed(err)
	}
	if err := cfg.WriteKnownHosts(); err != nil {
		return connectionFailed(fmt.Errorf("writing %s: %w", cfg.KnownHostsFile, err))
	}
	args := cfg.SSHArgs()
	for _, kv := range t.Env(o.Target) {
		args = append(args, "-o", "SetEnv="+kv)
	}
	for _, opt := range o.SSHOptions {
		args = append(args, "-o", opt)
	}
	for _, fw := range o.Forwards {
		args = append(args, "-L", fw)
	}
	if o.NoCommand {
		args = append(args, "-N")
	}
	if o.ForceTTY {
		args = append(args, "-t")
	}
	args = append(args, cfg.Alias)
	if len(o.Command) > 0 {
		args = append(args, "--", sshclient.QuoteCommand(o.Command))
	}
	c := exec.CommandContext(ctx, "ssh", args...)
	c.Stdin, c.Stdout, c.Stderr = o.In, o.Out, o.ErrOut
	err = c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError(ee.ExitCode(), "")
	}
	if err != nil {
		return connectionFailed(fmt.Errorf("running ssh: %w", err))
	}
	return nil
}
