// Package cli is the glue the three kubectl plugins share: the root command's
// kubectl-style flags (cli-runtime's ConfigFlags), the display name that makes
// help and usage errors read "kubectl devpatch", --version, klog's -v, signal
// handling and kubectl's error formatting. It holds no plugin logic.
package cli

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/complete"
	"github.com/kubectl-dev/kubectl-dev/pkg/version"
)

// NewCommandFunc builds a plugin's root command from kubectl's factory.
type NewCommandFunc func(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command

// NewRoot builds a plugin's root command with everything a kubectl user
// expects of it: --kubeconfig, --context, -n and the other ConfigFlags, -v,
// --version, a "version" subcommand (which also reads the agent's version in
// a workload), and "kubectl NAME" in help and usage errors.
func NewRoot(newCmd NewCommandFunc, streams genericiooptions.IOStreams) *cobra.Command {
	configFlags := genericclioptions.NewConfigFlags(true).WithDiscoveryBurst(300).WithDiscoveryQPS(50.0)
	f := cmdutil.NewFactory(cmdutil.NewMatchVersionFlags(configFlags))
	cmd := newCmd(f, streams)
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	if _, ok := cmd.Annotations[cobra.CommandDisplayNameAnnotation]; !ok {
		cmd.Annotations[cobra.CommandDisplayNameAnnotation] = "kubectl " + cmd.Name()
	}
	cmd.Version = version.String()
	cmd.SetVersionTemplate(`{{index .Annotations "cobra_annotation_command_display_name"}} version {{.Version}}` + "\n")
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	cmd.CompletionOptions.HiddenDefaultCmd = true
	if cmd.Args == nil {
		// With subcommands, cobra would refuse a root's positional
		// arguments (TYPE/NAME) as unknown commands.
		cmd.Args = cobra.ArbitraryArgs
	}
	cmd.AddCommand(NewCmdVersion(f, streams, cmd.Annotations[cobra.CommandDisplayNameAnnotation]))

	flags := cmd.PersistentFlags()
	configFlags.AddFlags(flags)
	addVerbosityFlag(flags)
	complete.GlobalFlags(cmd, f)
	return cmd
}

// addVerbosityFlag exposes klog's -v (diagnostics) and hides the rest of klog.
func addVerbosityFlag(flags *pflag.FlagSet) {
	goFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(goFlags)
	v := goFlags.Lookup("v")
	flags.AddGoFlag(v)
	flags.Lookup("v").Usage = "number for the log level verbosity (diagnostics go to stderr)"
}

// Main runs a plugin: it is the whole of each plugin's main function.
func Main(newCmd NewCommandFunc) {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd := NewRoot(newCmd, streams)
	err := cmd.ExecuteContext(ctx)
	stop()
	klog.Flush()
	cmdutil.CheckErr(err)
}
