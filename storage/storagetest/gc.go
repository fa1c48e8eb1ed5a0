package storagetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvflow/kvflow/storage"
)

// gcNoGraceRacingWritersNoAcknowledgedWriteLost: garbage collection with no
// grace at all, racing writers of every kind, never takes an object a
// committed write points to, and leaves no object no record names.
func gcNoGraceRacingWritersNoAcknowledgedWriteLost(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{CacheSize: -1})
	s := p.Store
	const ns, writers, rounds = "gc.race", 6, 40
	var mu sync.Mutex
	last := map[string]string{} // key → last acknowledged value
	ack := func(key, v string) { mu.Lock(); last[key] = v; mu.Unlock() }
	stop := make(chan struct{})
	var collected atomic.Int64
	var gcErr error
	gcDone := make(chan struct{})
	go func() { // collect and prune as fast as possible, with no grace
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := s.PruneHistory(ctx, storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil {
				gcErr = err
				return
			}
			n, err := s.CollectGarbage(ctx, 0)
			if err != nil {
				gcErr = err
				return
			}
			collected.Add(int64(n))
		}
	}()
	var wg sync.WaitGroup
	var incremented atomic.Int64 // acknowledged increments of "ctr", each a compare-and-set
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds/2; i++ {
				_, _, err := s.Increment(ctx, ns, "ctr", storage.Value{Type: storage.NUMBER, V: int64(1)}, storage.SetOptions{})
				if err == nil {
					incremented.Add(1)
				} else if !errors.Is(err, storage.ErrIntentGone) {
					t.Errorf("increment: %v", err)
				}
			}
		}()
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				key := fmt.Sprintf("k%d", (w*rounds+i)%8)
				v := fmt.Sprintf("w%d-%d|%s", w, i, strings.Repeat("x", i*50))
				var err error
				switch i % 4 {
				case 0:
					_, err = s.SetStream(ctx, ns, key, strings.NewReader(v), storage.SetOptions{})
				case 1:
					_, err = s.SetMany(ctx, ns, []storage.BatchEntry{{Key: key, Value: storage.String(v)}, {Key: key + "-b", Value: storage.String(v)}})
					if err == nil {
						ack(key+"-b", v)
					}
				default:
					_, err = s.Set(ctx, ns, key, storage.String(v), storage.SetOptions{})
				}
				if err == nil {
					ack(key, v)
				} else if !errors.Is(err, storage.ErrIntentGone) { // not acknowledged: allowed
					t.Errorf("write %s: %v", key, err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-gcDone
	if gcErr != nil {
		t.Fatalf("garbage collection: %v", gcErr)
	}
	if _, _, err := s.PruneHistory(ctx, storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CollectGarbage(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, v, err := s.Get(ctx, ns, "ctr"); err != nil || fmt.Sprint(v.V) != fmt.Sprint(incremented.Load()) {
		t.Errorf("counter after racing GC: %v, %v; want %d acknowledged increments", v.V, err, incremented.Load())
	}
	written := map[string]bool{"ctr": true}
	mu.Lock()
	for k := range last {
		written[k] = true
	}
	mu.Unlock()
	keys, err := s.Keys(ctx, ns, "")
	if err != nil || len(keys) != len(written) {
		t.Fatalf("keys = %v, %v; want %d", keys, err, len(written))
	}
	for _, k := range keys {
		if _, v, err := s.Get(ctx, ns, k); err != nil {
			t.Errorf("Get %s after GC with no grace: %v (an acknowledged write lost its object)", k, err)
		} else if s, ok := v.V.(string); k != "ctr" && (!ok || !strings.HasPrefix(s, "w")) {
			t.Errorf("Get %s: %.40q", k, v.V)
		}
	}
	// Every object left is a live value: GC left nothing behind, and no
	// object exists that no record names (SweepOrphans finds none).
	if n := countObjects(t, p.Bucket); n != len(keys) {
		t.Errorf("%d objects after GC, want %d (one per live key)", n, len(keys))
	}
	if n, err := s.SweepOrphans(ctx, 0); err != nil || n != 0 {
		t.Errorf("SweepOrphans found %d, %v; want 0", n, err)
	}
	t.Logf("%d objects collected while writing", collected.Load())
}

// gcWorkFollowsTheGarbageNoListing: one object-store call per garbage object,
// no listing.
func gcWorkFollowsTheGarbageNoListing(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{CacheSize: -1})
	const ns = "gc.cost"
	batch := make([]storage.BatchEntry, 200)
	for i := range batch {
		batch[i] = storage.BatchEntry{Key: fmt.Sprintf("live%03d", i), Value: storage.Value{Type: storage.NUMBER, V: int64(i)}}
	}
	if _, err := p.Store.SetMany(ctx, ns, batch); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ { // 10 replaced values
		mustSet(t, p.Store, ns, "live000", storage.Value{Type: storage.NUMBER, V: int64(1000 + i)}, storage.SetOptions{})
	}
	// 5 writes that crashed after their upload: their intents name them.
	for i := 0; i < 5; i++ {
		in := storage.Intent{Namespace: ns, Object: storage.ObjectName(ns, fmt.Sprintf("crashed%d", i))}
		if err := p.Index.AddIntents(ctx, time.Now().Add(-time.Hour), []storage.Intent{in}); err != nil {
			t.Fatal(err)
		}
		if err := p.Bucket.Put(ctx, in.Object, strings.NewReader("1"), 1); err != nil {
			t.Fatal(err)
		}
	}
	if n, _, err := p.Store.PruneHistory(ctx, storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil || n != 10 {
		t.Fatalf("PruneHistory: %d, %v; want 10", n, err)
	}
	cb := &CountingBucket{Bucket: p.Bucket}
	s := storage.New(p.Index, cb, storage.Options{CacheSize: -1})
	n, err := s.CollectGarbage(ctx, 0)
	if err != nil || n != 15 {
		t.Fatalf("CollectGarbage = %d, %v; want 15 (10 replaced, 5 crashed)", n, err)
	}
	if cb.Lists.Load() != 0 || cb.Gets.Load() != 0 || cb.Puts.Load() != 0 || cb.Deletes.Load() != 15 {
		t.Errorf("object-store calls: %d lists, %d gets, %d puts, %d deletes; want only 15 deletes (one per garbage object)",
			cb.Lists.Load(), cb.Gets.Load(), cb.Puts.Load(), cb.Deletes.Load())
	}
	if got := countObjects(t, p.Bucket); got != len(batch) {
		t.Errorf("%d objects left, want %d", got, len(batch))
	}
}

// CountingBucket counts a bucket's calls.
type CountingBucket struct {
	storage.Bucket
	Lists, Gets, Puts, Deletes atomic.Int64
}

func (b *CountingBucket) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	b.Puts.Add(1)
	return b.Bucket.Put(ctx, name, r, size)
}

func (b *CountingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.Gets.Add(1)
	return b.Bucket.Get(ctx, name)
}

func (b *CountingBucket) Delete(ctx context.Context, name string) error {
	b.Deletes.Add(1)
	return b.Bucket.Delete(ctx, name)
}

func (b *CountingBucket) Iter(ctx context.Context, prefix string, fn func(string, time.Time) error) error {
	b.Lists.Add(1)
	return b.Bucket.Iter(ctx, prefix, fn)
}

// gcTakeStaleIntentsRacingRenewalsEachOnce: an intent renewed (RenewIntent
// true) is never taken by a concurrent TakeStaleIntents that selected it as
// stale before the renewal committed, and every intent is either renewed or
// taken, never both: a renewed stream keeps its object.
func gcTakeStaleIntentsRacingRenewalsEachOnce(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{})
	const rounds, n = 10, 200
	for r := 0; r < rounds; r++ {
		intents := make([]storage.Intent, n)
		for i := range intents {
			intents[i] = storage.Intent{Namespace: "gc.renew", Object: storage.ObjectName("gc.renew", fmt.Sprintf("r%d-%d", r, i))}
		}
		if err := p.Index.AddIntents(ctx, time.Now().Add(-time.Hour), intents); err != nil {
			t.Fatal(err)
		}
		renewed := make([]atomic.Bool, n)
		var taken sync.Map
		var wg sync.WaitGroup
		next := make(chan int)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					ok, err := p.Index.RenewIntent(ctx, intents[i], time.Now())
					if err != nil {
						t.Error(err)
					}
					renewed[i].Store(ok)
				}
			}()
		}
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < 20; k++ {
					names, err := p.Index.TakeStaleIntents(ctx, time.Now().Add(-time.Minute), 25)
					if err != nil {
						t.Error(err)
						return
					}
					for _, name := range names {
						if _, dup := taken.LoadOrStore(name, true); dup {
							t.Errorf("intent %s taken twice", name)
						}
					}
				}
			}()
		}
		for i := range intents {
			next <- i
		}
		close(next)
		wg.Wait()
		for i, in := range intents {
			_, wasTaken := taken.Load(in.Object)
			if wasTaken == renewed[i].Load() {
				t.Fatalf("round %d, intent %d: taken %v, renewed %v; want exactly one", r, i, wasTaken, renewed[i].Load())
			}
		}
		// What was renewed is not stale: nothing is left to take but it, later.
		if left, err := p.Index.TakeStaleIntents(ctx, time.Now().Add(-time.Minute), n); err != nil || len(left) != 0 {
			t.Fatalf("stale intents left after the race: %v, %v", left, err)
		}
		if _, err := p.Index.TakeStaleIntents(ctx, time.Now().Add(time.Minute), n); err != nil {
			t.Fatal(err)
		}
	}
}
