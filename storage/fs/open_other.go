//go:build !unix

package fs

import (
	"io"
	"os"
)

// openObject opens a file for reading; errIsDir when it is a directory.
func openObject(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil {
		f.Close()
		return nil, err
	} else if fi.IsDir() {
		f.Close()
		return nil, errIsDir
	}
	return f, nil
}

// openFile is os.OpenFile.
func openFile(path string, flag int, perm uint32) (*os.File, error) {
	return os.OpenFile(path, flag, os.FileMode(perm))
}
