package storage_test

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/fs"
	"github.com/kvflow/kvflow/storage/sqldb"
)

// A stream that uploads for longer than the grace period renews its intent,
// so garbage collection running meanwhile never takes it, and it commits.
func TestStream_LongerThanGrace_RenewsIntentAndCommits(t *testing.T) {
	defer storage.SetIntentRenewal(20 * time.Millisecond)()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(dir, "kv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := fs.New(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	s := storage.New(db, b, storage.Options{CacheSize: -1})
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.SetStream(ctx, "company.team", "slow", pr, storage.SetOptions{})
		done <- err
	}()
	pw.Write([]byte("first half|"))
	for i := 0; i < 8; i++ { // 400 ms of a stream, collected every 50 ms with a 100 ms grace
		time.Sleep(50 * time.Millisecond)
		if n, err := s.CollectGarbage(ctx, 100*time.Millisecond); err != nil || n != 0 {
			t.Fatalf("GC during the stream removed %d, %v", n, err)
		}
	}
	pw.Write([]byte("second half"))
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("SetStream: %v", err)
	}
	_, v, err := s.Get(ctx, "company.team", "slow")
	if err != nil || v.V != "first half|second half" {
		t.Fatalf("Get: %q, %v", v.V, err)
	}
}
