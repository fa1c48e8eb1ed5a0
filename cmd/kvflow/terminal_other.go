//go:build !linux

package main

import "os"

// terminal reports whether f is a character device, as terminals are; so
// is /dev/null, which Linux (terminal_linux.go) tells apart.
func terminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
