package fs

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncAll syncs the whole file system holding dir with one syncfs(2): many
// small files are flushed together instead of one fsync each (since Linux
// 5.8 it reports their write-back errors too). ok is false where it cannot.
func syncAll(dir string) (ok bool, err error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	for {
		if err = unix.Syncfs(int(f.Fd())); err != unix.EINTR {
			return err != unix.ENOSYS, err
		}
	}
}
