package sqldb

import (
	"errors"
	"os"
	"syscall"
)

// preallocate reserves n bytes for f, so that appends within them do not
// change its size and fdatasync has no metadata to write.
func preallocate(f *os.File, n int64) error {
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err != nil && !errors.Is(err, syscall.EOPNOTSUPP) {
		return err
	}
	return nil
}

func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// tryLock takes an exclusive lock on f without waiting; false when another
// process holds it.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
