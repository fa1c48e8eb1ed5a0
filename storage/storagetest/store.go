package storagetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/fs"
	"github.com/kvflow/kvflow/storage/s3"
	"github.com/kvflow/kvflow/storage/sqldb"
)

// Pair is a store on one backend pair, with its parts for tests that look inside.
type Pair struct {
	Name   string
	DB     *sqldb.DB
	Bucket storage.Bucket
	Store  *storage.Store
}

// Pairs returns a fresh store on each backend pair: SQLite + a local
// directory, and PostgreSQL + MinIO (started by testsvc). Options apply to both.
func Pairs(tb testing.TB, opts storage.Options) []Pair {
	return []Pair{LocalPair(tb, opts), ServicePair(tb, opts)}
}

// LocalPair is SQLite + a local directory, in a temp dir.
func LocalPair(tb testing.TB, opts storage.Options) Pair {
	tb.Helper()
	dir := tb.TempDir()
	db := OpenDB(tb, "sqlite://"+filepath.ToSlash(filepath.Join(dir, "kvflow.db")))
	b, err := fs.New(filepath.Join(dir, "storage"))
	if err != nil {
		tb.Fatal(err)
	}
	return Pair{Name: "sqlite+dir", DB: db, Bucket: b, Store: storage.New(db, b, opts)}
}

// ServicePair is PostgreSQL + MinIO: a fresh database and a fresh bucket.
func ServicePair(tb testing.TB, opts storage.Options) Pair {
	tb.Helper()
	db := OpenDB(tb, testsvc.PostgresURL(tb))
	b := OpenS3(tb, testsvc.S3URL(tb))
	return Pair{Name: "postgres+minio", DB: db, Bucket: b, Store: storage.New(db, b, opts)}
}

// LocalStore is a store on SQLite + a local directory.
func LocalStore(tb testing.TB) *storage.Store { return LocalPair(tb, storage.Options{}).Store }

// OpenDB opens a metadata database and closes it at cleanup.
func OpenDB(tb testing.TB, url string) *sqldb.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		tb.Fatalf("open %s: %v", url, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// OpenS3 opens an s3:// storage URL.
func OpenS3(tb testing.TB, url string) *s3.Bucket {
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
