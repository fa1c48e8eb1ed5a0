// Package s3test makes S3 buckets for tests on the shared MinIO that
// internal/testsvc starts: a package using it calls testsvc.Main from TestMain.
package s3test

import (
	"context"
	"testing"

	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/storage/s3"
)

// NewBucket returns a fresh, empty bucket, removed with its objects at cleanup.
func NewBucket(tb testing.TB) *s3.Bucket {
	tb.Helper()
	return Open(tb, testsvc.S3URL(tb))
}

// Open opens an s3:// storage URL.
func Open(tb testing.TB, url string) *s3.Bucket {
	tb.Helper()
	cfg, err := s3.ParseURL(url)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := s3.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
