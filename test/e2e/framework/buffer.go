package framework

import (
	"bytes"
	"sync"
)

// LockedBuffer is a bytes.Buffer that a command writes while a test reads
// it (a process's stdout or stderr, polled for a line).
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
