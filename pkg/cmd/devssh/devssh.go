// Package devssh is the cobra layer of "kubectl devssh": flags, argument
// parsing and output. The SSH client and the port-forward live in engine
// packages.
package devssh

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"
)

var (
	sshLong = templates.LongDesc(`
		Open an SSH session to the devagent in a pod, through the API server's
		port-forward: an interactive shell, a remote command with its exit code, sftp,
		local port forwards, or raw SSH on stdin and stdout for OpenSSH's ProxyCommand.

		The workload must have been patched with "kubectl devpatch" first.`)

	sshExample = templates.Examples(`
		# Open a shell in the app's view of a deployment's pod
		kubectl devssh deploy/demo

		# Run a command; its exit code becomes kubectl devssh's exit code
		kubectl devssh deploy/demo -- ls -l /app`)
)

// NewCmdDevSSH returns the root command of "kubectl devssh".
func NewCmdDevSSH(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "devssh TYPE/NAME [-c CONTAINER] [-- COMMAND [args...]]",
		DisableFlagsInUseLine: true,
		Short:                 "SSH into a pod's devagent through port-forward",
		Long:                  sshLong,
		Example:               sshExample,
		Args:                  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("kubectl devssh %s: ssh is not available in this build yet", args[0])
		},
	}
	return cmd
}
