// Command devagent is the sidecar that kubectl devpatch injects into a
// workload; see pkg/agent.
package main

import (
	"os"

	"github.com/kubectl-dev/kubectl-dev/pkg/agent"
)

func main() { os.Exit(agent.Main(os.Args[1:], os.Stderr)) }
