package storage_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
)

// BenchmarkGC_1MKeys_10kGarbage collects 10,000 garbage objects from a store
// of 1,000,000 live keys on PostgreSQL + MinIO, and counts the object-store
// calls: garbage collection reads the garbage queue and the intents, so it
// makes one delete per garbage object and no listing. The floor is the same
// number of direct deletes of other objects, 8 at a time, in the same run.
// The live keys' objects are not uploaded (a million MinIO PUTs would take an
// hour here): no call of garbage collection could touch them, as the counts show.
//
//	go test ./storage -run '^$' -bench GC_1MKeys -benchtime 1x
func BenchmarkGC_1MKeys_10kGarbage(b *testing.B) {
	const live, garbage = 1_000_000, 10_000
	ctx := context.Background()
	p := testpair.Service(b, storage.Options{CacheSize: -1})
	// Filled without the history triggers: a million trigger calls take
	// minutes here, and garbage collection reads no history row it would make.
	if _, err := p.DB.X.ExecContext(ctx, `ALTER TABLE kv_entries DISABLE TRIGGER USER`); err != nil {
		b.Fatal(err)
	}
	if _, err := p.DB.X.ExecContext(ctx, `INSERT INTO kv_entries (namespace, key, type, object, version, size, hash, description, created_at, updated_at)
		SELECT 'gc.big', 'key-' || lpad(i::text, 7, '0'), 'STRING', 'gc/big/_kv/key-' || i || '.ion.x', 1, 3, 'h', '', 0, 0
		FROM generate_series(0, $1 - 1) AS i`, live); err != nil {
		b.Fatal(err)
	}
	if _, err := p.DB.X.ExecContext(ctx, `ALTER TABLE kv_entries ENABLE TRIGGER USER`); err != nil {
		b.Fatal(err)
	}
	p.DB.X.ExecContext(ctx, `ANALYZE`)
	for i := 0; i < b.N; i++ {
		queued := upload(b, p.Bucket, "gc.garbage", garbage)
		floorObjects := upload(b, p.Bucket, "gc.floor", garbage)
		// Queued as retention queues a purged version's object.
		if _, err := p.DB.X.ExecContext(ctx, `INSERT INTO kv_garbage (object, queued_at) SELECT unnest($1::text[]), 0`, pqArray(queued)); err != nil {
			b.Fatal(err)
		}
		cb := &storagetest.CountingBucket{Bucket: p.Bucket}
		s := storage.New(p.DB, cb, storage.Options{CacheSize: -1})
		start := time.Now()
		n, err := s.CollectGarbage(ctx, 0)
		gc := time.Since(start)
		if err != nil || n != garbage {
			b.Fatalf("CollectGarbage = %d, %v; want %d", n, err, garbage)
		}
		start = time.Now()
		deleteAll(b, p.Bucket, floorObjects)
		floor := time.Since(start)
		b.ReportMetric(gc.Seconds(), "gc-s")
		b.ReportMetric(floor.Seconds(), "floor-s")
		b.ReportMetric(gc.Seconds()/floor.Seconds(), "gc/floor")
		b.ReportMetric(float64(cb.Deletes.Load()), "deletes")
		b.ReportMetric(float64(cb.Lists.Load()+cb.Gets.Load()+cb.Puts.Load()), "other-calls")
	}
}

// upload puts n small objects of ns, 16 at a time, and returns their names.
func upload(b *testing.B, bk storage.Bucket, ns string, n int) []string {
	names := make([]string, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				names[i] = storage.ObjectName(ns)
				if err := bk.Put(context.Background(), names[i], strings.NewReader("1"), 1); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	return names
}

func deleteAll(b *testing.B, bk storage.Bucket, names []string) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := bk.Delete(context.Background(), name); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}

// pqArray is a text[] literal.
func pqArray(ss []string) string {
	return "{" + strings.Join(ss, ",") + "}"
}
