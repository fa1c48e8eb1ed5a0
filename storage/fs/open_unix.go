//go:build unix

package fs

import (
	iofs "io/fs"
	"os"
	"syscall"
)

// openRead opens a file for reading without offering it to the runtime's
// poller as os.Open does: a regular file cannot be polled, and trying costs
// a failed epoll_ctl and four fcntl calls, half the system calls of reading a
// small object.
func openRead(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == nil {
			return os.NewFile(uintptr(fd), path), nil
		}
		if err != syscall.EINTR {
			return nil, &iofs.PathError{Op: "open", Path: path, Err: err}
		}
	}
}
