// Command kubectl-devpatch is the kubectl plugin "kubectl devpatch"; see pkg/cmd/devpatch.
package main

import (
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/cli"
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/devpatch"
)

func main() { cli.Main(devpatch.NewCmdDevPatch) }
