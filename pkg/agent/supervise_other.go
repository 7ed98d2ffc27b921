//go:build !linux

package agent

import (
	"fmt"
	"io"
)

func superviseMain(args []string, log io.Writer) int {
	fmt.Fprintln(log, "devagent supervise needs Linux")
	return 2
}
