package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// purgeRace is the race that once lost acknowledged writes on PostgreSQL:
// keys expire, 6 writers overwrite every key with a live value while 2
// purgers remove expired entries. Every acknowledged overwrite must survive,
// and its object must not be queued as garbage. packed writes the keys with
// SetMany (values in packs, 8 to a seed batch, 2 to an overwrite) while a
// collector runs too: a pack goes only with its last live member.
func purgeRace(t *testing.T, open Opener, rounds, keys int, packed bool) {
	ctx := context.Background()
	clock := NewClock()
	p := open(t, storage.Options{Now: clock.Now, CacheSize: -1})
	s := p.Store
	const ns = "race.purge"
	var collectedInAll int64
	for round := 0; round < rounds; round++ {
		var seeders sync.WaitGroup
		for w := 0; w < 8; w++ {
			seeders.Add(1)
			go func() {
				defer seeders.Done()
				if packed {
					for from := w * 8; from < keys; from += 64 {
						var batch []storage.BatchEntry
						for i := from; i < min(from+8, keys); i++ {
							batch = append(batch, storage.BatchEntry{Key: fmt.Sprintf("k%04d", i), Value: storage.String("old"), TTL: time.Minute})
						}
						if _, err := s.SetMany(ctx, ns, batch); err != nil {
							t.Errorf("seed from k%04d: %v", from, err)
							return
						}
					}
					return
				}
				for i := w; i < keys; i += 8 {
					if _, err := s.Set(ctx, ns, fmt.Sprintf("k%04d", i), storage.String("old"), storage.SetOptions{TTL: time.Minute}); err != nil {
						t.Errorf("seed k%04d: %v", i, err)
						return
					}
				}
			}()
		}
		seeders.Wait()
		if t.Failed() {
			t.FailNow()
		}
		clock.Add(2 * time.Minute)

		var next atomic.Int64
		var purged, collected, retried atomic.Int64
		stop := make(chan struct{})
		acked := make([]string, keys) // the object each acknowledged overwrite wrote
		var writers, purgers sync.WaitGroup
		errs := make(chan error, 9)
		// write overwrites the keys idx, together in one pack when there are
		// several. A write refused because the collector took its intent is
		// not acknowledged, and is written again.
		write := func(idx ...int) error {
			batch := make([]storage.BatchEntry, len(idx))
			for j, i := range idx {
				batch[j] = storage.BatchEntry{Key: fmt.Sprintf("k%04d", i), Value: storage.String(fmt.Sprintf("new-%d-%d", round, i))}
			}
			var es []*storage.Entry
			var err error = storage.ErrIntentGone
			retried.Add(-1)
			for try := 0; errors.Is(err, storage.ErrIntentGone) && try < 1000; try++ {
				if len(batch) > 1 {
					es, err = s.SetMany(ctx, ns, batch)
				} else {
					var e *storage.Entry
					e, err = s.Set(ctx, ns, batch[0].Key, batch[0].Value, storage.SetOptions{})
					es = []*storage.Entry{e}
				}
				retried.Add(1)
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", batch[0].Key, err)
			}
			for j, i := range idx {
				acked[i] = es[j].Object
			}
			return nil
		}
		for w := 0; w < 6; w++ {
			writers.Add(1)
			go func() {
				defer writers.Done()
				for {
					// A unit of work: one key, or when packed a pair, every
					// other one written as a pack of two.
					u := int(next.Add(1)) - 1
					var err error
					switch {
					case !packed && u < keys:
						err = write(u)
					case packed && 2*u+1 < keys && u%2 == 0:
						err = write(2*u, 2*u+1)
					case packed && 2*u+1 < keys:
						if err = write(2 * u); err == nil {
							err = write(2*u + 1)
						}
					default:
						return
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		// untilStop runs fn over and over until the writers are done.
		untilStop := func(fn func() error) {
			purgers.Add(1)
			go func() {
				defer purgers.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := fn(); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for range 2 {
			untilStop(func() error {
				got, err := s.Purge(ctx, storage.PurgeOptions{Namespaces: []string{ns}, BatchSize: 50})
				if err != nil {
					return fmt.Errorf("Purge: %w", err)
				}
				purged.Add(int64(got[ns]))
				return nil
			})
		}
		if packed {
			untilStop(func() error {
				// The store's clock runs ahead of the real one, so only a
				// negative grace reaches the garbage of this round; it takes
				// the intents of writes in flight too (they are written
				// again), and a pause between runs lets writes through.
				n, err := s.CollectGarbage(ctx, -time.Hour)
				if err != nil {
					return fmt.Errorf("CollectGarbage: %w", err)
				}
				collected.Add(int64(n))
				time.Sleep(2 * time.Millisecond)
				return nil
			})
		}
		writers.Wait()
		close(stop)
		purgers.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		lost := 0
		for i := 0; i < keys; i++ {
			key := fmt.Sprintf("k%04d", i)
			e, v, err := s.Get(ctx, ns, key)
			want := fmt.Sprintf("new-%d-%d", round, i)
			switch {
			case kvflow.ErrorCode(err) == kvflow.ENOTFOUND:
				lost++
				if lost <= 5 {
					t.Errorf("round %d: acknowledged write of %s lost (Get: %v)", round, key, err)
				}
			case err != nil:
				t.Fatalf("round %d: Get %s: %v", round, key, err)
			case v.V != want || e.Object != acked[i]:
				t.Errorf("round %d: %s = %v (object %s), want %q (object %s)", round, key, v.V, e.Object, want, acked[i])
			}
		}
		if lost > 0 {
			t.Fatalf("round %d: %d of %d acknowledged overwrites lost (%d purged)", round, lost, keys, purged.Load())
		}
		// The live objects are never queued as garbage: collect with no grace
		// and read every key again.
		if _, err := s.CollectGarbage(ctx, -time.Hour); err != nil {
			t.Fatalf("CollectGarbage: %v", err)
		}
		live := map[string]bool{}
		for i := 0; i < keys; i++ {
			if _, _, err := s.Get(ctx, ns, fmt.Sprintf("k%04d", i)); err != nil {
				t.Fatalf("round %d: after GC, k%04d: %v", round, i, err)
			}
			live[storage.ObjectOf(acked[i])] = true
		}
		if _, _, err := s.PruneHistory(ctx, storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CollectGarbage(ctx, -time.Hour); err != nil {
			t.Fatalf("CollectGarbage: %v", err)
		}
		// A write refused because the collector took its reserved name may
		// leave that name's empty file made ahead (the local directory's):
		// an orphan, which SweepOrphans removes, never a live value.
		swept, err := s.SweepOrphans(ctx, -time.Hour)
		if err != nil {
			t.Fatalf("SweepOrphans: %v", err)
		}
		if n := countObjects(t, p.Bucket); packed && n != len(live) {
			t.Errorf("round %d: %d objects after GC and sweeping %d orphans, want the %d holding live values", round, n, swept, len(live))
		}
		if swept > 0 {
			t.Logf("round %d: %d orphans swept", round, swept)
		}
		t.Logf("round %d: %d overwrites kept, %d expired entries purged and %d objects collected concurrently, %d writes refused and written again",
			round, keys, purged.Load(), collected.Load(), retried.Load())
		collectedInAll += collected.Load()
	}
	if packed && collectedInAll == 0 {
		t.Error("the collector collected nothing while the writers ran: the race tested nothing")
	}
}

// createRaceOnExpired: keys that expired are created again by 8 writers at
// once with overwrite=false (the conditional write that replaces an expired
// entry, as Terraform's create and Set overwrite: false do), while 2 purgers
// remove expired entries. Each key has exactly one winner, and what is read
// back after is the winner's value, its version past the expired one.
func createRaceOnExpired(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	p := open(t, storage.Options{Now: clock.Now, CacheSize: -1})
	s := p.Store
	const ns, keys, writers = "race.create", 150, 8
	for round := 0; round < 3; round++ {
		for i := range keys {
			mustSet(t, s, ns, fmt.Sprintf("k%03d", i), storage.String("old"), storage.SetOptions{TTL: time.Minute})
		}
		clock.Add(2 * time.Minute) // every key expired
		stop := make(chan struct{})
		var purgers sync.WaitGroup
		for range 2 {
			purgers.Add(1)
			go func() {
				defer purgers.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := s.Purge(ctx, storage.PurgeOptions{Namespaces: []string{ns}, BatchSize: 20}); err != nil {
						t.Errorf("purge: %v", err)
						return
					}
				}
			}()
		}
		winners := make([]atomic.Int32, keys)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range keys {
					i := (j*7 + w*19) % keys // each writer in its own order
					_, err := s.Set(ctx, ns, fmt.Sprintf("k%03d", i), storage.String(fmt.Sprintf("w%d-r%d", w, round)), storage.SetOptions{NoOverwrite: true})
					switch kvflow.ErrorCode(err) {
					case "":
						if winners[i].Swap(int32(w+1)) != 0 {
							t.Errorf("round %d: k%03d created twice", round, i)
						}
					case kvflow.ECONFLICT:
					default:
						t.Errorf("writer %d, k%03d: %v", w, i, err)
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		purgers.Wait()
		for i := range keys {
			w := winners[i].Load()
			e, v, err := s.Get(ctx, ns, fmt.Sprintf("k%03d", i))
			if w == 0 || err != nil || v.V != fmt.Sprintf("w%d-r%d", w-1, round) || e.Version < 2 {
				t.Fatalf("round %d, k%03d: winner %d, read %v (version %v), %v", round, i, w-1, v.V, e, err)
			}
		}
		clock.Add(2 * time.Minute) // this round's keys expire for the next one
	}
}
