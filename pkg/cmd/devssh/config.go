package devssh

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-dev/kubectl-dev/pkg/sshclient"
)

var (
	configLong = templates.LongDesc(`
		Print an ssh_config block for a patched workload, so that ssh, scp, sftp,
		rsync -e ssh and VS Code Remote-SSH reach its pod: a host alias of its own,
		"kubectl devssh --stdio" as ProxyCommand (context and namespace pinned), your
		identity, and a known_hosts file (written under ~/.ssh/kubectl-dev) holding the
		agent's host key from the workload's Secret, checked strictly.

		With --write the block goes to a file of its own under ~/.ssh/kubectl-dev and
		the one Include line to add to ~/.ssh/config is printed; ~/.ssh/config itself
		is never changed.`)

	configExample = templates.Examples(`
		# Print the block
		kubectl devssh config deploy/demo

		# Write it, then use OpenSSH
		kubectl devssh config deploy/demo --write
		ssh demo.default.kdev
		scp -s ./file demo.default.kdev:/tmp/`)
)

// NewCmdConfig is "kubectl devssh config".
func NewCmdConfig(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewOptions(streams)
	write := false
	cmd := &cobra.Command{
		Use:                   "config TYPE/NAME [--write]",
		DisableFlagsInUseLine: true,
		Short:                 "Print (or write) an ssh_config block for OpenSSH and VS Code",
		Long:                  configLong,
		Example:               configExample,
		Args:                  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.TypeName = args[0]
			if err := o.completeClients(f, cmd); err != nil {
				return err
			}
			return o.runConfig(cmd.Context(), write)
		},
	}
	cmd.Flags().BoolVar(&write, "write", false, "Write the block to ~/.ssh/kubectl-dev/ALIAS.conf and print the Include line to add to ~/.ssh/config.")
	cmd.Flags().StringVar(&o.Identity, "identity", o.Identity, "The SSH private key OpenSSH should use; default: the key pair in the kubectl-dev folder beside your kubeconfig.")
	cmd.Flags().DurationVar(&o.PodRunningTimeout, "pod-running-timeout", o.PodRunningTimeout, "How long to wait for a running pod with a ready agent.")
	return cmd
}

func (o *Options) runConfig(ctx context.Context, write bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	o.predial.Close() // no port-forward here
	t, err := o.resolve(ctx)
	if err != nil {
		return err
	}
	if err := t.ReadHostKey(ctx, o.Client); err != nil {
		return err
	}
	cfg, err := o.openSSH(t)
	if err != nil {
		return err
	}
	if err := cfg.WriteKnownHosts(); err != nil {
		return fmt.Errorf("writing %s: %w", cfg.KnownHostsFile, err)
	}
	if !write {
		fmt.Fprint(o.Out, cfg.Block())
		return nil
	}
	path, err := cfg.WriteConfig(sshclient.Dir(""))
	if err != nil {
		return fmt.Errorf("writing the ssh_config block: %w", err)
	}
	fmt.Fprintf(o.ErrOut, "wrote %s and %s; add this line at the top of ~/.ssh/config (before any Host), once:\n", path, cfg.KnownHostsFile)
	fmt.Fprintf(o.Out, "Include %s/*.conf\n", sshclient.Dir(""))
	fmt.Fprintf(o.ErrOut, "then: ssh %s\n", cfg.Alias)
	return nil
}
