package sqldb_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/fs/fstest"
	"github.com/kvflow/kvflow/storage/sqldb"
	"github.com/kvflow/kvflow/storage/sqldb/sqldbtest"
)

// Batches of many rows in shuffled key orders, lone Sets (some expiring at
// once), deletes, purges of expired entries across namespaces and feed pruning
// race on the same keys of two namespaces: every write succeeds, every
// acknowledged version reads back with its value, and, as every writer takes
// its namespaces' feed counters before any entry row, PostgreSQL never has to
// break a deadlock.
func TestWriters_RacingOnSameKeys_NoDeadlock(t *testing.T) {
	for _, dialect := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			db := sqldbtest.Open(t, dialect)
			s := storage.New(db, fstest.NewBucket(t), storage.Options{})
			nss := []string{"race.a", "race.b"}
			for _, ns := range nss { // a namespace's first write creates its counter
				if _, err := s.Set(ctx, ns, "first", storage.String("v"), storage.SetOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			const keys, rounds = 40, 30
			key := func(r *rand.Rand) string { return fmt.Sprintf("k%02d", r.IntN(keys)) }
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				writes int
				seq    atomic.Int64
				acked  = map[storage.Entry]string{} // namespace, key, version → value
			)
			ack := func(es []*storage.Entry, vals []string) {
				mu.Lock()
				defer mu.Unlock()
				for i, e := range es {
					acked[storage.Entry{Namespace: e.Namespace, Key: e.Key, Version: e.Version}] = vals[i]
				}
			}
			fail := func(what string, err error) {
				t.Errorf("%s: %v", what, err)
			}
			run := func(n int, fn func(r *rand.Rand, ns string) error, what string) {
				for w := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := rand.New(rand.NewPCG(uint64(w), uint64(len(what))))
						for i := range rounds {
							if err := fn(r, nss[(w+i)%len(nss)]); err != nil {
								fail(what, err)
								return
							}
							mu.Lock()
							writes++
							mu.Unlock()
						}
					}()
				}
			}
			run(3, func(r *rand.Rand, ns string) error {
				batch, vals := make([]storage.BatchEntry, keys), make([]string, keys)
				for i, k := range r.Perm(keys) {
					vals[i] = fmt.Sprint("batch-", seq.Add(1))
					batch[i] = storage.BatchEntry{Key: fmt.Sprintf("k%02d", k), Value: storage.String(vals[i])}
				}
				es, err := s.SetMany(ctx, ns, batch)
				if err == nil {
					ack(es, vals)
				}
				return err
			}, "SetMany")
			run(3, func(r *rand.Rand, ns string) error {
				o := storage.SetOptions{}
				if r.IntN(2) == 0 {
					o.TTL = time.Millisecond
				}
				v := fmt.Sprint("set-", seq.Add(1))
				e, err := s.Set(ctx, ns, key(r), storage.String(v), o)
				if err == nil {
					ack([]*storage.Entry{e}, []string{v})
				}
				return err
			}, "Set")
			run(2, func(r *rand.Rand, ns string) error {
				_, err := s.Delete(ctx, ns, key(r))
				return err
			}, "Delete")
			run(1, func(r *rand.Rand, ns string) error {
				_, err := s.Purge(ctx, storage.PurgeOptions{BatchSize: 7})
				return err
			}, "Purge")
			run(1, func(r *rand.Rand, ns string) error {
				_, err := db.PruneChanges(ctx, time.Now().Add(time.Hour), 25)
				return err
			}, "PruneChanges")
			wg.Wait()
			if writes != 10*rounds {
				t.Errorf("%d writes succeeded, want %d", writes, 10*rounds)
			}
			for at, want := range acked {
				_, v, err := s.GetVersion(ctx, at.Namespace, at.Key, at.Version)
				if err != nil || v.V != want {
					t.Errorf("%s/%s version %d = %v, %v; want %q", at.Namespace, at.Key, at.Version, v.V, err, want)
				}
			}
			if len(acked) < 3*rounds*keys {
				t.Errorf("%d versions acknowledged, want at least the batches' %d", len(acked), 3*rounds*keys)
			}
			if n := db.Deadlocks(); n != 0 {
				t.Errorf("PostgreSQL broke %d deadlocks: some writer takes an entry row before its namespace's counter", n)
			}
		})
	}
}

// Lone Sets and batches racing on the first writes of a fresh namespace,
// before its feed counter exists: every write succeeds and PostgreSQL never
// breaks a deadlock (a write's intent creates the counter, committed, so its
// statement waits for a batch's lock instead of racing it to the counter).
func TestWriters_NewNamespace_FirstWritesRace_NoDeadlock(t *testing.T) {
	for _, dialect := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			db := sqldbtest.Open(t, dialect)
			s := storage.New(db, fstest.NewBucket(t), storage.Options{})
			const rounds, keys = 15, 20
			for round := range rounds {
				ns := fmt.Sprintf("fresh.n%d", round)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for w := range 6 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := rand.New(rand.NewPCG(uint64(round), uint64(w)))
						<-start
						if w < 2 {
							batch := make([]storage.BatchEntry, keys)
							for i, k := range r.Perm(keys) {
								batch[i] = storage.BatchEntry{Key: fmt.Sprintf("k%02d", k), Value: storage.String("batch")}
							}
							if _, err := s.SetMany(ctx, ns, batch); err != nil {
								t.Errorf("round %d: SetMany: %v", round, err)
							}
							return
						}
						for range 3 {
							if _, err := s.Set(ctx, ns, fmt.Sprintf("k%02d", r.IntN(keys)), storage.String("set"), storage.SetOptions{}); err != nil {
								t.Errorf("round %d: Set: %v", round, err)
							}
						}
					}()
				}
				close(start)
				wg.Wait()
				if n, err := s.Keys(ctx, ns, ""); err != nil || len(n) != keys {
					t.Errorf("round %d: %d keys, %v; want %d", round, len(n), err, keys)
				}
			}
			if n := db.Deadlocks(); n != 0 {
				t.Errorf("PostgreSQL broke %d deadlocks on a fresh namespace's first writes", n)
			}
		})
	}
}

// A lock held past the busy timeout is told apart from an unreachable
// database: the error wraps storage.ErrBusy and says who held what.
func TestErr_SQLiteBusy_IsBusyNotUnreachable(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.SQLite)
	err := db.Err(errors.New("database is locked (5) (SQLITE_BUSY)"))
	if !errors.Is(err, storage.ErrBusy) || kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE || !strings.Contains(err.Error(), "held the database's lock") {
		t.Fatalf("Err(SQLITE_BUSY) = %v (%s)", err, kvflow.ErrorCode(err))
	}
}
