package storage_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// Issue 12: a compare-and-set write beside a plain Set of the same key and
// value, and SetMany beside as many Sets, on both pairs in one run.
//
//	go test ./storage -run '^$' -bench 'CAS|SetMany' -benchtime 2000x
func BenchmarkCAS(b *testing.B) {
	ctx := context.Background()
	v := storage.String(value1K)
	for _, p := range []struct {
		name string
		open func(testing.TB, storage.Options) testpair.Pair
	}{{"sqlite+dir", testpair.Local}, {"postgres+minio", testpair.Service}} {
		s := p.open(b, storage.Options{CacheSize: -1}).Store
		b.Run(p.name+"/plain-set", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := s.Set(ctx, "bench.cas", "plain", v, storage.SetOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.name+"/if-version", func(b *testing.B) {
			e, err := s.Set(ctx, "bench.cas", "cas", v, storage.SetOptions{})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				if e, err = s.Set(ctx, "bench.cas", "cas", v, storage.SetOptions{IfVersion: e.Version}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.name+"/increment", func(b *testing.B) {
			one := storage.Value{Type: storage.NUMBER, V: int64(1)}
			for i := 0; i < b.N; i++ {
				if _, _, err := s.Increment(ctx, "bench.cas", "n", one, storage.SetOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSetMany(b *testing.B) {
	ctx := context.Background()
	const n = 100
	for _, p := range []struct {
		name string
		open func(testing.TB, storage.Options) testpair.Pair
	}{{"sqlite+dir", testpair.Local}, {"postgres+minio", testpair.Service}} {
		s := p.open(b, storage.Options{CacheSize: -1}).Store
		batch := make([]storage.BatchEntry, n)
		for i := range batch {
			batch[i] = storage.BatchEntry{Key: fmt.Sprintf("k%03d", i), Value: storage.String(strings.Repeat("x", 1024))}
		}
		b.Run(p.name+"/100-sets", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				for _, be := range batch {
					if _, err := s.Set(ctx, "bench.many", be.Key, be.Value, storage.SetOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(p.name+"/setmany-100", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := s.SetMany(ctx, "bench.many", batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExport reports keys/s exporting 5,000 1 KiB entries of SQLite +
// dir, beside its floor in the same run: listing the same entries and
// reading each one's object bytes with 8 readers (the I/O an export cannot
// avoid), without decoding or writing anything.
//
//	go test ./storage -run '^$' -bench Export -benchtime 5x
func BenchmarkExport(b *testing.B) {
	ctx := context.Background()
	p := testpair.Local(b, storage.Options{CacheSize: -1})
	s := p.Store
	const keys = 5000
	batch := make([]storage.BatchEntry, 100)
	for k := 0; k < keys; k += len(batch) {
		for i := range batch {
			batch[i] = storage.BatchEntry{Key: fmt.Sprintf("k%06d", k+i), Value: storage.String(value1K)}
		}
		if _, err := s.SetMany(ctx, "bench.export", batch); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("floor", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			o := storage.ListOptions{Limit: storage.MaxListLimit}
			n := 0
			for {
				page, err := s.List(ctx, "bench.export", o)
				if err != nil {
					b.Fatal(err)
				}
				next := make(chan string)
				var wg sync.WaitGroup
				for r := 0; r < 8; r++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for name := range next {
							rc, err := p.Bucket.Get(ctx, name)
							if err == nil {
								_, err = io.Copy(io.Discard, rc)
								rc.Close()
							}
							if err != nil {
								b.Error(err)
							}
						}
					}()
				}
				for _, e := range page.Entries {
					next <- e.Object
				}
				close(next)
				wg.Wait()
				n += len(page.Entries)
				if page.Next == "" {
					break
				}
				o.After = page.Next
			}
			if n != keys {
				b.Fatalf("read %d objects, want %d", n, keys)
			}
		}
		b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
	b.Run("export", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			n, err := s.Export(ctx, io.Discard, storage.ExportOptions{Namespaces: []string{"bench.export"}})
			if err != nil || n != keys {
				b.Fatalf("Export = %d, %v", n, err)
			}
		}
		b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}

// BenchmarkImport reports keys/s importing 2,000 1 KiB entries into
// PostgreSQL + MinIO (into a fresh namespace each time), beside its floor in
// the same run: uploading the same objects, 64 at a time as Import does, with no metadata.
//
//	go test ./storage -run '^$' -bench Import -benchtime 3x
func BenchmarkImport(b *testing.B) {
	ctx := context.Background()
	p := testpair.Service(b, storage.Options{CacheSize: -1})
	const keys = 2000
	var in strings.Builder
	for k := 0; k < keys; k++ {
		fmt.Fprintf(&in, `{"namespace":"bench.import","key":"k%06d","type":"STRING","value":%q}`+"\n", k, value1K)
	}
	b.Run("floor", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			next := make(chan int)
			var wg sync.WaitGroup
			for w := 0; w < 64; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range next {
						name := storage.ObjectName(fmt.Sprintf("floor.n%d", i))
						if err := p.Bucket.Put(ctx, name, strings.NewReader(value1K), int64(len(value1K))); err != nil {
							b.Error(err)
						}
					}
				}()
			}
			for k := 0; k < keys; k++ {
				next <- k
			}
			close(next)
			wg.Wait()
		}
		b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
	// The import's metadata alone: its intents recorded and its rows written,
	// 500 to a transaction as the import does, no upload.
	b.Run("metadata-floor", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ns := fmt.Sprintf("bench.meta.n%d.%d", i, b.N)
			for k := 0; k < keys; k += 500 {
				es := make([]*storage.Entry, 500)
				intents := make([]storage.Intent, len(es))
				for j := range es {
					es[j] = &storage.Entry{Namespace: ns, Key: fmt.Sprintf("k%06d", k+j), Type: storage.STRING,
						Object: storage.ObjectName(ns), Size: int64(len(value1K)), Hash: strings.Repeat("0", 64), Updated: time.Now().UTC()}
					intents[j] = storage.Intent{Namespace: ns, Object: es[j].Object}
				}
				if err := p.Index.AddIntents(ctx, time.Now(), intents); err != nil {
					b.Fatal(err)
				}
				if _, err := p.Index.PutEntriesCond(ctx, es, true, false); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
	run := 0 // a fresh namespace for every import, across the harness's rounds
	b.Run("import", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			run++
			res, err := p.Store.Import(ctx, strings.NewReader(in.String()), storage.ImportOptions{
				NamespaceMap: map[string]string{"bench.import": fmt.Sprintf("bench.import.n%d", run)}})
			if err != nil || res.Written != keys {
				b.Fatalf("Import = %+v, %v", res, err)
			}
		}
		b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}
