// Package fstest makes directory buckets for tests.
package fstest

import (
	"testing"

	"github.com/kvflow/kvflow/storage/fs"
)

// NewBucket returns a bucket in a fresh temp dir, removed at cleanup.
func NewBucket(tb testing.TB) *fs.Bucket {
	tb.Helper()
	b, err := fs.New(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() }) // before the temp dir goes
	return b
}
