// Package devpatch is the cobra layer of "kubectl devpatch": flags, argument
// parsing and output. The patching itself lives in an engine package.
package devpatch

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"
)

var (
	patchLong = templates.LongDesc(`
		Inject the devagent sidecar into a workload so that "kubectl devssh" and
		"kubectl devsync" can work inside its pods.

		The patch is applied with server-side apply under a field manager of its own, so
		"kubectl devpatch --remove" takes away exactly the fields it added and leaves the
		workload's spec as it was.`)

	patchExample = templates.Examples(`
		# Add the agent to the pods of a deployment
		kubectl devpatch deploy/demo

		# Target a container other than the default one
		kubectl devpatch deploy/demo -c app

		# Remove the agent again
		kubectl devpatch --remove deploy/demo`)
)

// NewCmdDevPatch returns the root command of "kubectl devpatch".
func NewCmdDevPatch(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "devpatch TYPE/NAME [-c CONTAINER] [flags]",
		DisableFlagsInUseLine: true,
		Short:                 "Inject the devagent sidecar into a workload, reversibly",
		Long:                  patchLong,
		Example:               patchExample,
		Args:                  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("kubectl devpatch %s: patching is not available in this build yet", args[0])
		},
	}
	return cmd
}
