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
		var purged atomic.Int64
		stop := make(chan struct{})
		acked := make([]string, keys) // the object each acknowledged overwrite wrote
		var writers, purgers sync.WaitGroup
		errs := make(chan error, 9)
		for w := 0; w < 6; w++ {
			writers.Add(1)
			go func() {
				defer writers.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= keys {
						return
					}
					v := storage.String(fmt.Sprintf("new-%d-%d", round, i))
					if packed && i%2 == 0 && i+1 < keys {
						next.Add(1) // i+1 goes in the same pack
						var es []*storage.Entry
						var err error = storage.ErrIntentGone
						// The collector, with no grace, may take an in-flight
						// write's intent: that write is refused, not
						// acknowledged, and is written again.
						for try := 0; errors.Is(err, storage.ErrIntentGone) && try < 100; try++ {
							es, err = s.SetMany(ctx, ns, []storage.BatchEntry{{Key: fmt.Sprintf("k%04d", i), Value: v},
								{Key: fmt.Sprintf("k%04d", i+1), Value: storage.String(fmt.Sprintf("new-%d-%d", round, i+1))}})
						}
						if err != nil {
							errs <- fmt.Errorf("SetMany k%04d: %w", i, err)
							return
						}
						acked[i], acked[i+1] = es[0].Object, es[1].Object
						continue
					}
					var e *storage.Entry
					var err error = storage.ErrIntentGone
					for try := 0; errors.Is(err, storage.ErrIntentGone) && try < 100; try++ {
						e, err = s.Set(ctx, ns, fmt.Sprintf("k%04d", i), v, storage.SetOptions{})
					}
					if err != nil {
						errs <- fmt.Errorf("Set k%04d: %w", i, err)
						return
					}
					acked[i] = e.Object
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
				if _, err := s.CollectGarbage(ctx, 0); err != nil {
					return fmt.Errorf("CollectGarbage: %w", err)
				}
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
		if n := countObjects(t, p.Bucket); packed && n != len(live) {
			t.Errorf("round %d: %d objects after GC, want the %d holding live values", round, n, len(live))
		}
		t.Logf("round %d: %d overwrites kept, %d expired entries purged concurrently", round, keys, purged.Load())
	}
}
