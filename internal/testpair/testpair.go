// Package testpair opens a store on each backend pair for tests: SQLite + a
// local directory (the embedded default), and PostgreSQL + MinIO (on the
// servers internal/testsvc starts: call testsvc.Main from TestMain).
package testpair

import (
	"context"
	"testing"

	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/fs/fstest"
	"github.com/kvflow/kvflow/storage/s3/s3test"
	"github.com/kvflow/kvflow/storage/sqldb"
	"github.com/kvflow/kvflow/storage/sqldb/sqldbtest"
	"github.com/kvflow/kvflow/storage/storagetest"
)

// Pair is a store on one backend pair, with the SQL database for tests that
// keep execution records or look inside.
type Pair struct {
	storagetest.Pair
	DB *sqldb.DB
}

// All returns a fresh store on each backend pair. Options apply to both.
func All(tb testing.TB, opts storage.Options) []Pair {
	return []Pair{Local(tb, opts), Service(tb, opts)}
}

// Local is SQLite + a local directory, in temp dirs.
func Local(tb testing.TB, opts storage.Options) Pair {
	tb.Helper()
	return New("sqlite+dir", sqldbtest.Open(tb, sqldb.SQLite), fstest.NewBucket(tb), opts)
}

// Service is PostgreSQL + MinIO: a fresh database and a fresh bucket.
func Service(tb testing.TB, opts storage.Options) Pair {
	tb.Helper()
	return New("postgres+minio", sqldbtest.Open(tb, sqldb.Postgres), s3test.NewBucket(tb), opts)
}

// New makes a store on db and b, with db's journal taking b's small value
// objects when b is a local directory, as app.Open does.
func New(name string, db *sqldb.DB, b storage.Bucket, opts storage.Options) Pair {
	if jb, ok := b.(storage.JournalBucket); ok {
		if err := db.AttachBucket(context.Background(), jb); err != nil {
			panic(err)
		}
	}
	return Pair{DB: db, Pair: storagetest.Pair{
		Name: name, Index: db, Bucket: b, Store: storage.New(db, b, opts),
		Dump: func(tb testing.TB) string { return sqldbtest.Dump(tb, db) },
	}}
}

// LocalStore is a store on SQLite + a local directory.
func LocalStore(tb testing.TB) *storage.Store { return Local(tb, storage.Options{}).Store }

// Opener turns open into a storagetest.Opener, for StoreAcceptance.
func Opener(open func(testing.TB, storage.Options) Pair) storagetest.Opener {
	return func(tb testing.TB, opts storage.Options) storagetest.Pair { return open(tb, opts).Pair }
}
