//go:build !unix

package fs

import "os"

func openRead(path string) (*os.File, error) { return os.Open(path) }
