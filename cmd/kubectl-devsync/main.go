// Command kubectl-devsync is the kubectl plugin "kubectl devsync"; see pkg/cmd/devsync.
package main

import (
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/cli"
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/devsync"
)

func main() {
	cli.Main(devsync.NewCmdDevSync)
}
