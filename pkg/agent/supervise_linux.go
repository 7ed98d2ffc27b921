//go:build linux

package agent

import (
	"io"

	"github.com/kubectl-dev/kubectl-dev/pkg/supervisor"
)

func superviseMain(args []string, log io.Writer) int { return supervisor.Main(args, log) }
