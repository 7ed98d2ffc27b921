// Command kubectl-devsync is the kubectl plugin "kubectl devsync"; see pkg/cmd/devsync.
package main

import (
	"os"

	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/cli"
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/devsync"
)

func main() {
	os.Args = devsync.RewriteVerbose(os.Args)
	cli.Main(devsync.NewCmdDevSync)
}
