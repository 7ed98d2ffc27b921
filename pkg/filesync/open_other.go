//go:build !unix

package filesync

import (
	"io"
	"os"
)

// openLocal opens a local file to send.
func openLocal(name string) (io.ReadCloser, error) { return os.Open(name) }
