package storage_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
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
		open func(testing.TB, storage.Options) storagetest.Pair
	}{{"sqlite+dir", storagetest.LocalPair}, {"postgres+minio", storagetest.ServicePair}} {
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
		open func(testing.TB, storage.Options) storagetest.Pair
	}{{"sqlite+dir", storagetest.LocalPair}, {"postgres+minio", storagetest.ServicePair}} {
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

// BenchmarkExport reports keys/s exporting 5,000 1 KiB entries of SQLite + dir.
//
//	go test ./storage -run '^$' -bench Export -benchtime 5x
func BenchmarkExport(b *testing.B) {
	ctx := context.Background()
	s := storagetest.LocalPair(b, storage.Options{CacheSize: -1}).Store
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
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := s.Export(ctx, io.Discard, storage.ExportOptions{Namespaces: []string{"bench.export"}})
		if err != nil || n != keys {
			b.Fatalf("Export = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
}
