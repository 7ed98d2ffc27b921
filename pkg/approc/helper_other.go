//go:build !linux

package approc

import (
	"fmt"
	"io"
)

// HelperMain needs Linux.
func HelperMain(args []string, stdin io.Reader, stdout io.WriteCloser, log io.Writer) int {
	fmt.Fprintln(log, HelperSFTP+": only on Linux")
	return 1
}

// ShellHelperMain needs Linux.
func ShellHelperMain(args []string, log io.Writer) int {
	fmt.Fprintln(log, HelperShell+": only on Linux")
	return 1
}
