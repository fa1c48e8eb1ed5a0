//go:build unix

package fs

import (
	"io"
	iofs "io/fs"
	"os"
	"syscall"
)

// smallObject is the size up to which openObject reads a file with plain
// system calls; a larger one is an *os.File, which io.Copy can send without
// copying.
const smallObject = 64 << 10

// openObject opens a file for reading; errIsDir when it is a directory.
//
// It never offers the file to the runtime's poller as os.Open does: a
// regular file cannot be polled, and trying costs a failed epoll_ctl and four
// fcntl calls. A small file is read up to the size it had when opened (an
// object never changes once written: it is new, or renamed into place), so
// its last Read returns io.EOF without one more read. Reading a small object
// takes 4 system calls where os.Open, Stat and reading to EOF took 10.
func openObject(path string) (io.ReadCloser, error) {
	fd, err := retry(func() (int, error) { return syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0) })
	if err != nil {
		return nil, &iofs.PathError{Op: "open", Path: path, Err: err}
	}
	var st syscall.Stat_t
	if _, err := retry(func() (int, error) { return 0, syscall.Fstat(fd, &st) }); err != nil {
		syscall.Close(fd)
		return nil, &iofs.PathError{Op: "stat", Path: path, Err: err}
	}
	switch {
	case st.Mode&syscall.S_IFMT == syscall.S_IFDIR:
		syscall.Close(fd)
		return nil, errIsDir
	case st.Size > smallObject:
		return os.NewFile(uintptr(fd), path), nil
	}
	return &smallFile{fd: fd, left: st.Size}, nil
}

// openFile is os.OpenFile without the poller: a regular file opens in 2
// system calls instead of 6 (os.OpenFile's four fcntl calls and failed
// epoll_ctl, as above).
func openFile(path string, flag int, perm uint32) (*os.File, error) {
	fd, err := retry(func() (int, error) { return syscall.Open(path, flag|syscall.O_CLOEXEC, perm) })
	if err != nil {
		return nil, &iofs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// smallFile reads a small object's file; Close must be called.
type smallFile struct {
	fd   int
	left int64 // bytes up to the size the file had when opened
}

func (f *smallFile) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, io.EOF
	} else if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := retry(func() (int, error) { return syscall.Read(f.fd, p) })
	switch {
	case err != nil:
		return 0, err // a bare errno: messages never name the server's files
	case n == 0:
		return 0, io.ErrUnexpectedEOF // shorter than when opened
	}
	if f.left -= int64(n); f.left == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (f *smallFile) Close() error {
	if f.fd < 0 {
		return iofs.ErrClosed
	}
	err := syscall.Close(f.fd)
	f.fd = -1
	return err
}

// retry calls fn again while it is interrupted by a signal.
func retry(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if err != syscall.EINTR {
			return n, err
		}
	}
}
