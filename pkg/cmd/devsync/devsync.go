// Package devsync is the cobra layer of "kubectl devsync": flags, argument
// parsing and output. Watching and streaming live in engine packages.
package devsync

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"
)

var (
	syncLong = templates.LongDesc(`
		Watch a local directory and stream every change into the running app
		container of a workload, through the devagent sidecar, without a shell or tar
		in the app's image. Optionally restart the app process after each change
		without restarting its container.

		The workload must have been patched with "kubectl devpatch" first.`)

	syncExample = templates.Examples(`
		# Sync ./src into the app's working directory and keep watching
		kubectl devsync ./src deploy/demo`)
)

// NewCmdDevSync returns the root command of "kubectl devsync".
func NewCmdDevSync(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "devsync LOCAL_DIR TYPE/NAME [-c CONTAINER] [flags]",
		DisableFlagsInUseLine: true,
		Short:                 "Stream local edits into a running app container",
		Long:                  syncLong,
		Example:               syncExample,
		Args:                  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("kubectl devsync %s %s: syncing is not available in this build yet", args[0], args[1])
		},
	}
	return cmd
}
