package storagetest

import (
	"testing"

	"github.com/kvflow/kvflow/storage"
)

// Pair is a store on one backend pair, with its parts for tests that look inside.
type Pair struct {
	Name   string
	Index  storage.Index
	Bucket storage.Bucket
	Store  *storage.Store // on Index and Bucket
	// Dump returns every row the index holds as text, a "table: col | col | "
	// line per row (the suite counts the "kv_versions: " lines).
	Dump func(tb testing.TB) string
}

// Opener makes a fresh, empty store on one backend pair. A backend package
// provides its own test constructor (such as fstest.NewBucket) to build one.
type Opener func(tb testing.TB, opts storage.Options) Pair

// DumpDB returns every row of the pair's index as text.
func DumpDB(tb testing.TB, p Pair) string {
	tb.Helper()
	return p.Dump(tb)
}
