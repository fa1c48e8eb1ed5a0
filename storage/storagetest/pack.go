package storagetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvflow/kvflow/storage"
)

// packsBatchWritesShareOneObject: the small values of a SetMany or an
// import batch share one object (a pack), each read back as its own; a big
// value keeps its own object. The pack stays while any member is
// referenced, goes with the last one (a skipped import line's bytes
// included), and a pack no metadata names is swept.
func packsBatchWritesShareOneObject(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{Keys: TestKeys(t), CacheSize: -1})
	wb := &writtenBucket{Bucket: p.Bucket, put: map[string]bool{}}
	s := storage.New(p.Index, wb, storage.Options{Keys: TestKeys(t), CacheSize: -1})
	objects := func(ns string) int {
		t.Helper()
		n := 0
		if err := p.Bucket.Iter(ctx, strings.ReplaceAll(ns, ".", "/")+"/", func(string, time.Time) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	collect := func(want int, why string) {
		t.Helper()
		if n, _, err := s.PruneHistory(ctx, storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil {
			t.Fatalf("PruneHistory: %d, %v", n, err)
		}
		time.Sleep(10 * time.Millisecond)
		before := wb.deletions()
		// Counted in the bucket: GC also takes the names this store reserved
		// and left unused past storage.ReservedFor, which a slow run reaches.
		if n, err := s.CollectGarbage(ctx, 0); err != nil || wb.deletions()-before != want {
			t.Errorf("GC removed %d of the objects written, %v (%d in all); want %d (%s)", wb.deletions()-before, err, n, want, why)
		}
	}
	get := func(ns, key string, want any) {
		t.Helper()
		if _, v, err := s.Get(ctx, ns, key); err != nil || v.V != want {
			t.Errorf("Get %s/%s = %v, %v; want %v", ns, key, v.V, err, want)
		}
	}

	const a = "pack.a"
	big := strings.Repeat("b", 70<<10)
	es, err := s.SetMany(ctx, a, []storage.BatchEntry{
		{Key: "s", Value: storage.String("one")},
		{Key: "n", Value: storage.Value{Type: storage.NUMBER, V: int64(42)}},
		{Key: "sec", Value: storage.String("pack-secret-marker"), Sensitive: true},
		{Key: "big", Value: storage.String(big)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := objects(a); n != 2 {
		t.Errorf("SetMany of 3 small values and a big one made %d objects, want 2 (a pack and the big value's own)", n)
	}
	for _, e := range es {
		if raw := RawObject(t, p.Bucket, e.Object); int64(len(raw)) != e.Size || strings.Contains(string(raw), "pack-secret-marker") {
			t.Errorf("object of %s: %d bytes, want %d, sealed when sensitive", e.Key, len(raw), e.Size)
		}
	}
	get(a, "s", "one")
	get(a, "sec", "pack-secret-marker")
	get(a, "big", big)
	if _, v, err := s.Get(ctx, a, "n"); err != nil || v.Text() != "42" {
		t.Errorf("Get n = %v, %v", v.V, err)
	}

	// An import batch: one pack for its lines, a skipped line's bytes in it too.
	const b = "pack.b"
	mustSet(t, s, b, "k0", storage.String("old"), storage.SetOptions{})
	var lines strings.Builder
	for _, k := range []string{"k0", "k1", "k2"} {
		lines.WriteString(`{"namespace":"` + b + `","key":"` + k + `","type":"STRING","value":"new ` + k + `"}` + "\n")
	}
	if res, err := s.Import(ctx, strings.NewReader(lines.String()), storage.ImportOptions{}); err != nil || res.Written != 2 || res.Skipped != 1 {
		t.Fatalf("Import = %+v, %v; want 2 written, 1 skipped", res, err)
	}
	if n := objects(b); n != 2 {
		t.Errorf("namespace %s holds %d objects, want 2 (k0's own and the import's pack)", b, n)
	}
	get(b, "k0", "old")
	get(b, "k1", "new k1")
	if missing, err := s.MissingObjects(ctx); err != nil || len(missing) != 0 {
		t.Errorf("MissingObjects = %v, %v; want none (packed values are there)", missing, err)
	}
	if n, err := s.SweepOrphans(ctx, 0); err != nil || n != 0 {
		t.Errorf("SweepOrphans removed %d, %v; want 0 (every pack has a live member)", n, err)
	}

	// The pack stays until its last member is garbage.
	mustSet(t, s, a, "s", storage.String("two"), storage.SetOptions{})
	collect(0, "two members of the pack are live")
	get(a, "sec", "pack-secret-marker")
	mustSet(t, s, a, "n", storage.String("three"), storage.SetOptions{})
	if _, err := s.Delete(ctx, a, "sec"); err != nil {
		t.Fatal(err)
	}
	collect(1, "the pack, with its last member")
	if n := objects(a); n != 3 {
		t.Errorf("namespace %s holds %d objects, want 3 (big, and the new s and n)", a, n)
	}
	get(a, "big", big)
	mustSet(t, s, b, "k1", storage.String("x"), storage.SetOptions{})
	mustSet(t, s, b, "k2", storage.String("x"), storage.SetOptions{})
	collect(1, "the import's pack: its skipped member was never referenced")

	// The largest batch, one pack of 10,000 members: it is written (its
	// intents taken a chunk at a time), and GC asks about every member (more
	// names than one SQLite statement takes parameters for) and keeps it.
	const d = "pack.d"
	many := make([]storage.BatchEntry, storage.MaxBatch)
	for i := range many {
		many[i] = storage.BatchEntry{Key: fmt.Sprintf("k%04d", i), Value: storage.String(fmt.Sprint(i))}
	}
	if _, err := s.SetMany(ctx, d, many); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, d, "k0000"); err != nil {
		t.Fatal(err)
	}
	collect(0, "9,999 members of the big pack are live")
	get(d, "k9999", "9999")

	// A batch whose intents GC took during its upload is refused; a pack
	// its cleanup could not delete is swept.
	lb := &leakyBucket{Bucket: p.Bucket}
	s2 := storage.New(p.Index, lb, storage.Options{CacheSize: -1})
	lb.afterPut = func() { s2.CollectGarbage(ctx, -time.Hour) }
	lb.noDelete.Store(true)
	const c = "pack.c"
	if _, err := s2.SetMany(ctx, c, []storage.BatchEntry{{Key: "x", Value: storage.String("x")}, {Key: "y", Value: storage.String("y")}}); !errors.Is(err, storage.ErrIntentGone) {
		t.Errorf("SetMany whose intents GC took: %v; want ErrIntentGone", err)
	}
	lb.noDelete.Store(false)
	if n := objects(c); n != 1 {
		t.Fatalf("namespace %s holds %d objects, want the leaked pack", c, n)
	}
	if n, err := s.SweepOrphans(ctx, 0); err != nil || n < 1 || objects(c) != 0 {
		t.Errorf("SweepOrphans removed %d, %v, %d objects left in %s; want the leaked pack gone", n, err, objects(c), c)
	}
	get(a, "big", big)
	get(b, "k0", "old")

	// A damaged pack, its header claiming 4 billion members, is left alone
	// (and nothing that large is read or allocated).
	const bad = "pack.bad"
	if err := p.Bucket.Put(ctx, "pack/bad/_kv/x.pack", strings.NewReader("KVFLOWPK\xff\xff\xff\xff"), 12); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := s.SweepOrphans(ctx, 0); err != nil || objects(bad) != 1 {
		t.Errorf("SweepOrphans over a damaged pack: %v, %d objects left; want no error and the pack left", err, objects(bad))
	}
}

// leakyBucket runs afterPut after each upload and, while noDelete is set,
// deletes nothing.
// writtenBucket counts the deletions of objects written through it.
type writtenBucket struct {
	storage.Bucket
	mu      sync.Mutex
	put     map[string]bool
	deleted int
}

func (b *writtenBucket) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	err := b.Bucket.Put(ctx, name, r, size)
	if err == nil {
		b.mu.Lock()
		b.put[name] = true
		b.mu.Unlock()
	}
	return err
}

func (b *writtenBucket) Delete(ctx context.Context, name string) error {
	err := b.Bucket.Delete(ctx, name)
	b.mu.Lock()
	if err == nil && b.put[name] {
		delete(b.put, name)
		b.deleted++
	}
	b.mu.Unlock()
	return err
}

func (b *writtenBucket) deletions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deleted
}

// Prepare and WritesInPlace pass on what a local directory does.
func (b *writtenBucket) Prepare(ctx context.Context, names []string) {
	if p, ok := b.Bucket.(storage.Preparer); ok {
		p.Prepare(ctx, names)
	}
}

func (b *writtenBucket) WritesInPlace() bool {
	w, ok := b.Bucket.(interface{ WritesInPlace() bool })
	return ok && w.WritesInPlace()
}

type leakyBucket struct {
	storage.Bucket
	afterPut func()
	noDelete atomic.Bool
}

func (b *leakyBucket) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	err := b.Bucket.Put(ctx, name, r, size)
	if b.noDelete.Load() {
		b.afterPut()
	}
	return err
}

func (b *leakyBucket) Delete(ctx context.Context, name string) error {
	if b.noDelete.Load() {
		return nil
	}
	return b.Bucket.Delete(ctx, name)
}

// packsTwoCollectorsEachTakingAMember: two collectors (two server
// processes) each take one member of a pack from the garbage queue, and
// both look at the pack before either drops its row, so each sees the
// other's member still queued. The pack still goes: each looks again once
// its rows are dropped.
func packsTwoCollectorsEachTakingAMember(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{CacheSize: -1})
	const ns = "pack.race"
	es, err := p.Store.SetMany(ctx, ns, []storage.BatchEntry{{Key: "x", Value: storage.String("x")}, {Key: "y", Value: storage.String("y")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"x", "y"} {
		if _, err := p.Store.Delete(ctx, ns, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := p.Store.PruneHistory(ctx, storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	var looked sync.WaitGroup
	looked.Add(2)
	var removed atomic.Int64
	var wg sync.WaitGroup
	for _, e := range es {
		s := storage.New(&oneMemberIndex{Index: p.Index, member: e.Object, looked: &looked}, p.Bucket, storage.Options{CacheSize: -1})
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.CollectGarbage(ctx, 0)
			if err != nil {
				t.Errorf("CollectGarbage: %v", err)
			}
			removed.Add(int64(n))
		}()
	}
	wg.Wait()
	var left []string
	if err := p.Bucket.Iter(ctx, "pack/race/", func(name string, _ time.Time) error { left = append(left, name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 || removed.Load() < 1 { // both may count it: each deletes what it finds unused
		t.Errorf("objects left %v, %d removed; want the pack removed", left, removed.Load())
	}
}

// oneMemberIndex hands its collector only one queued object, and holds
// its DropGarbage until both collectors have reached theirs.
type oneMemberIndex struct {
	storage.Index
	member string
	looked *sync.WaitGroup
}

func (x *oneMemberIndex) Garbage(ctx context.Context, olderThan time.Time, limit int) ([]string, error) {
	names, err := x.Index.Garbage(ctx, olderThan, limit)
	if err != nil || !slices.Contains(names, x.member) {
		return nil, err
	}
	return []string{x.member}, nil
}

func (x *oneMemberIndex) DropGarbage(ctx context.Context, objects []string) error {
	x.looked.Done()
	x.looked.Wait()
	return x.Index.DropGarbage(ctx, objects)
}
