//go:build unix

package filesync

import (
	"io"
	"os"
	"syscall"
)

// openLocal opens a local file to send. Plain system calls: os.Open also
// makes each descriptor non-blocking and tries to register it with the
// runtime's poller (four fcntl and a failing epoll_ctl per file, a fifth of
// the client's system calls in a 10,000-file sync), which a regular file
// does not use. A symlink is refused (O_NOFOLLOW): the sync sends
// symlinks as symlinks, so one that replaced a file since the scan is not
// followed.
func openLocal(name string) (io.ReadCloser, error) {
	for {
		fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		return &localFile{fd: fd, name: name}, nil
	}
}

// localFile reads a regular file with blocking read(2).
type localFile struct {
	fd   int
	name string
}

func (f *localFile) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(f.fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: f.name, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *localFile) Close() error {
	if f.fd < 0 {
		return os.ErrClosed
	}
	err := syscall.Close(f.fd)
	f.fd = -1
	return err
}
