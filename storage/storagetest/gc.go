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

// gcRacingWritersNoAcknowledgedWriteLost: garbage collection with no grace
// at all, racing writers of every kind, never takes an object a committed
// write points to, and leaves no object no record names. A negative grace
// also takes the intents of reserved names in use, so whole values race GC
// on their retry under a fresh name as well.
func gcRacingWritersNoAcknowledgedWriteLost(grace time.Duration) func(*testing.T, Opener) {
	return func(t *testing.T, open Opener) { gcRacingWriters(t, open, grace) }
}

func gcRacingWriters(t *testing.T, open Opener, grace time.Duration) {
	ctx := context.Background()
	p := open(t, storage.Options{CacheSize: -1})
	s := p.Store
	const ns, writers, rounds = "gc.race", 6, 40
	var mu sync.Mutex
	last := map[string]string{} // key → last acknowledged value
	ack := func(key, v string) { mu.Lock(); last[key] = v; mu.Unlock() }
	stop := make(chan struct{})
	var collected atomic.Int64
	gcErrs := make(chan error, 2)
	// Two collectors, as two server processes run, prune and collect as
	// fast as they can, racing each other too.
	for _, gs := range []*storage.Store{s, storage.New(p.Index, p.Bucket, storage.Options{CacheSize: -1})} {
		go func() {
			for {
				select {
				case <-stop:
					gcErrs <- nil
					return
				default:
				}
				if _, _, err := gs.PruneHistory(ctx, storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil {
					gcErrs <- err
					return
				}
				n, err := gs.CollectGarbage(ctx, grace)
				if err != nil {
					gcErrs <- err
					return
				}
				collected.Add(int64(n))
			}
		}()
	}
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
	for range 2 {
		if err := <-gcErrs; err != nil {
			t.Fatalf("garbage collection: %v", err)
		}
	}
	if _, _, err := s.PruneHistory(ctx, storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CollectGarbage(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, v, err := s.Get(ctx, ns, "ctr"); incremented.Load() > 0 && (err != nil || fmt.Sprint(v.V) != fmt.Sprint(incremented.Load())) {
		t.Errorf("counter after racing GC: %v, %v; want %d acknowledged increments", v.V, err, incremented.Load())
	}
	written := map[string]bool{}
	if incremented.Load() > 0 {
		written["ctr"] = true
	}
	mu.Lock()
	for k := range last {
		written[k] = true
	}
	mu.Unlock()
	keys, err := s.Keys(ctx, ns, "")
	if err != nil || len(keys) != len(written) {
		t.Fatalf("keys = %v, %v; want %d", keys, err, len(written))
	}
	live := map[string]bool{} // the objects live values are in: their own, or a batch's pack
	for _, k := range keys {
		if e, v, err := s.Get(ctx, ns, k); err != nil {
			t.Errorf("Get %s after GC with grace %v: %v (an acknowledged write lost its object)", k, grace, err)
		} else if s, ok := v.V.(string); k != "ctr" && (!ok || !strings.HasPrefix(s, "w")) {
			t.Errorf("Get %s: %.40q", k, v.V)
		} else {
			live[storage.ObjectOf(e.Object)] = true
		}
	}
	// Every object left holds a live value: GC left nothing behind, and no
	// object exists that no record names (SweepOrphans finds none).
	if n := countObjects(t, p.Bucket); n != len(live) {
		t.Errorf("%d objects after GC, want %d (those of the %d live keys)", n, len(live), len(keys))
	}
	if n, err := s.SweepOrphans(ctx, 0); err != nil || n != 0 {
		t.Errorf("SweepOrphans found %d, %v; want 0", n, err)
	}
	if len(last) == 0 {
		t.Error("no write was acknowledged: the race tested nothing")
	}
	t.Logf("%d objects collected while writing; %d keys and %d increments acknowledged", collected.Load(), len(last), incremented.Load())
}

// gcWorkFollowsTheGarbageNoListing: one delete per garbage object, and a
// read of the header of a pack one of them is in; no listing.
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
		in := storage.Intent{Namespace: ns, Object: storage.ObjectName(ns)}
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
	if err != nil || n != 14 {
		t.Fatalf("CollectGarbage = %d, %v; want 14 (9 replaced, 5 crashed; the batch's pack keeps 199 live members)", n, err)
	}
	if cb.Lists.Load() != 0 || cb.Gets.Load() != 2 || cb.Puts.Load() != 0 || cb.Deletes.Load() != 14 {
		t.Errorf("object-store calls: %d lists, %d gets, %d puts, %d deletes; want 14 deletes (one per garbage object) and 2 gets (the pack's header)",
			cb.Lists.Load(), cb.Gets.Load(), cb.Puts.Load(), cb.Deletes.Load())
	}
	if got := countObjects(t, p.Bucket); got != 2 {
		t.Errorf("%d objects left, want 2 (the pack and live000's value)", got)
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
			intents[i] = storage.Intent{Namespace: "gc.renew", Object: storage.ObjectName("gc.renew")}
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

// countingIndex counts the statements that record write intents.
type countingIndex struct {
	storage.Index
	adds atomic.Int64
}

func (x *countingIndex) AddIntents(ctx context.Context, at time.Time, intents []storage.Intent) error {
	x.adds.Add(1)
	return x.Index.AddIntents(ctx, at, intents)
}

// gcReservedNamesWritesPayNoIntentStatement: sequential writes take names
// whose intents were reserved ahead, many per statement; garbage collection
// with no grace never takes a name still handed out, and a write whose
// reserved name was taken anyway (a negative grace) is written again.
func gcReservedNamesWritesPayNoIntentStatement(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{CacheSize: -1})
	x := &countingIndex{Index: p.Index}
	s := storage.New(x, p.Bucket, storage.Options{CacheSize: -1})
	const ns, writes = "gc.reserved", 300
	var expect int64
	for i := 0; i < writes; i++ {
		if _, err := s.Set(ctx, ns, fmt.Sprintf("k%d", i%20), storage.Value{Type: storage.NUMBER, V: int64(i)}, storage.SetOptions{}); err != nil {
			t.Fatal(err)
		}
		if i%40 == 0 { // and increments, which write through the same path
			v, _, err := s.Increment(ctx, ns, "ctr", storage.Value{Type: storage.NUMBER, V: int64(1)}, storage.SetOptions{})
			if expect++; err != nil || fmt.Sprint(v.V) != fmt.Sprint(expect) {
				t.Fatalf("Increment = %v, %v", v.V, err)
			}
		}
		if i%20 == 0 {
			time.Sleep(2 * time.Millisecond) // let a reservation land, as it would between requests
		}
	}
	// One statement for the first write, then reservations of 1, 2, 4 … 64
	// names: far fewer statements than writes.
	t.Logf("%d statements recorded intents for %d writes", x.adds.Load(), writes+int(expect))
	if n := x.adds.Load(); n > 20 {
		t.Errorf("%d statements recorded intents for %d writes; want them reserved many at a time", n, writes+int(expect))
	}
	if n, err := s.CollectGarbage(ctx, 0); err != nil || n != 0 {
		t.Errorf("GC with no grace removed %d, %v; want 0 (every write committed; reserved names are not stale)", n, err)
	}
	// A negative grace takes the reserved names too: the next write finds
	// its intent gone and is written again under a fresh name.
	if _, err := s.CollectGarbage(ctx, -time.Hour); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		mustSet(t, s, ns, "after", storage.String(fmt.Sprint(i)), storage.SetOptions{})
	}
	if _, v, err := s.Get(ctx, ns, "after"); err != nil || v.V != "4" {
		t.Errorf("Get after = %v, %v", v.V, err)
	}
	// Every write consumed its intent: what is left are reserved names not
	// yet used, and none names an object.
	left, err := p.Index.TakeStaleIntents(ctx, time.Now().Add(time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 64 {
		t.Errorf("%d intents left, want at most the last reservation's 64", len(left))
	}
	for _, name := range left {
		if rc, err := p.Bucket.Get(ctx, name); err == nil {
			rc.Close()
			t.Errorf("unused reserved name %s names an object", name)
		}
	}
}

// failingUpload is a bucket whose next Put, when armed, runs collect and then
// fails as an upload whose object vanished under it does.
type failingUpload struct {
	storage.Bucket
	armed   atomic.Bool
	collect func() error
	puts    atomic.Int64
}

func (b *failingUpload) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	b.puts.Add(1)
	if b.armed.CompareAndSwap(true, false) {
		if _, err := io.Copy(io.Discard, r); err != nil { // the store records an unreserved name's intent by the end
			return err
		}
		if err := b.collect(); err != nil {
			return err
		}
		return fmt.Errorf("upload of %q failed: no such file or directory", name)
	}
	return b.Bucket.Put(ctx, name, r, size)
}

// gcTakesIntentDuringFailedUploadWriteRetried: an upload that fails because
// garbage collection took its intent meanwhile (and removed its object) is
// written again under a fresh name and succeeds, under a reserved name or
// not; a batch write or an import is refused as ErrIntentGone; an upload that fails on
// its own is reported as the object store's failure and not retried.
func gcTakesIntentDuringFailedUploadWriteRetried(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{CacheSize: -1})
	const ns = "gc.upload"
	var grace atomic.Int64
	b := &failingUpload{Bucket: p.Bucket}
	s := storage.New(p.Index, b, storage.Options{CacheSize: -1})
	b.collect = func() error { _, err := s.CollectGarbage(ctx, time.Duration(grace.Load())); return err }
	grace.Store(int64(-time.Hour)) // takes every intent, reserved names' too
	for i := 0; i < 4; i++ {       // the first write records its intent; later ones take reserved names
		b.armed.Store(true)
		before := b.puts.Load()
		v := fmt.Sprintf("v%d", i)
		if _, err := s.Set(ctx, ns, "k", storage.String(v), storage.SetOptions{}); err != nil {
			t.Fatalf("write %d, its intent taken while its upload failed: %v; want it written again under a fresh name", i, err)
		}
		if n := b.puts.Load() - before; n != 2 {
			t.Errorf("write %d: %d uploads, want 2 (the failed one and its retry)", i, n)
		}
		if _, got, err := s.Get(ctx, ns, "k"); err != nil || got.V != v {
			t.Errorf("Get after write %d = %v, %v", i, got.V, err)
		}
		time.Sleep(20 * time.Millisecond) // lets the next reservation land
	}
	// A batch write's upload fails the same way: the batch is refused as
	// ErrIntentGone (write it again), nothing of it stored.
	b.armed.Store(true)
	if _, err := s.SetMany(ctx, ns, []storage.BatchEntry{{Key: "b1", Value: storage.String("x")}, {Key: "b2", Value: storage.String("y")}}); !errors.Is(err, storage.ErrIntentGone) {
		t.Errorf("SetMany whose intents were taken while an upload failed: %v; want ErrIntentGone", err)
	}
	b.armed.Store(true)
	line := `{"namespace":"` + ns + `","key":"b3","type":"STRING","value":"z"}` + "\n"
	if _, err := s.Import(ctx, strings.NewReader(line), storage.ImportOptions{}); !errors.Is(err, storage.ErrIntentGone) {
		t.Errorf("Import whose intent was taken while its upload failed: %v; want ErrIntentGone", err)
	}
	if keys, err := s.Keys(ctx, ns, "b"); err != nil || len(keys) != 0 {
		t.Errorf("keys after the refused batch and import = %v, %v; want none", keys, err)
	}
	// The collections above took the namespace's reserved names too: a
	// fresh namespace's first write, whose intent GC now leaves alone.
	grace.Store(int64(time.Hour))
	b.armed.Store(true)
	before := b.puts.Load()
	_, err := s.Set(ctx, ns+"2", "k", storage.String("lost"), storage.SetOptions{})
	if err == nil || errors.Is(err, storage.ErrIntentGone) || !strings.Contains(err.Error(), "object store is unreachable") {
		t.Errorf("a failed upload whose intent stays: %v; want the object store's error", err)
	}
	if n := b.puts.Load() - before; n != 1 {
		t.Errorf("a failed upload whose intent stays was uploaded %d times, want 1", n)
	}
}
