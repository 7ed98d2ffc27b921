// Command kubectl-devssh is the kubectl plugin "kubectl devssh"; see pkg/cmd/devssh.
package main

import (
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/cli"
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/devssh"
)

func main() { cli.Main(devssh.NewCmdDevSSH) }
