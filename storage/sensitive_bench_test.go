package storage_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
)

// Issue 12: a sensitive (sealed) Set and Get beside a plain one of the same
// 1 KiB value, on both pairs in one run. Each iteration makes one plain and
// one sealed call, alternating which goes first, so the neighbours' load
// falls on both alike; the metrics are each kind's median and the ratios
// of the medians and of the means (medians: a neighbour's stall moves them least).
// No read cache: every Get reads (and opens) the object.
//
//	go test ./storage -run '^$' -bench Sensitive -benchtime 1000x -count 3
func BenchmarkSensitive(b *testing.B) {
	ctx := context.Background()
	v := storage.String(value1K)
	for _, p := range []struct {
		name string
		open func(testing.TB, storage.Options) testpair.Pair
	}{{"sqlite+dir", testpair.Local}, {"postgres+minio", testpair.Service}} {
		s := p.open(b, storage.Options{CacheSize: -1, Keys: storagetest.TestKeys(b)}).Store
		plain, sealed := storage.SetOptions{}, storage.SetOptions{Sensitive: true}
		pair := func(b *testing.B, op func(sensitive bool) error) {
			tPlain, tSealed := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				for j := 0; j < 2; j++ {
					sensitive := (i+j)%2 == 1
					start := time.Now()
					if err := op(sensitive); err != nil {
						b.Fatal(err)
					}
					if sensitive {
						tSealed = append(tSealed, time.Since(start))
					} else {
						tPlain = append(tPlain, time.Since(start))
					}
				}
			}
			mp, ms := p50(tPlain), p50(tSealed)
			b.ReportMetric(float64(mp.Microseconds()), "plain-p50-µs")
			b.ReportMetric(float64(ms.Microseconds()), "sealed-p50-µs")
			b.ReportMetric(float64(ms)/float64(mp), "p50-sealed/plain")
			b.ReportMetric(float64(total(tSealed))/float64(total(tPlain)), "mean-sealed/plain")
		}
		b.Run(p.name+"/set", func(b *testing.B) {
			pair(b, func(sensitive bool) error {
				key, o := "plain", plain
				if sensitive {
					key, o = "sealed", sealed
				}
				_, err := s.Set(ctx, "bench.sensitive", key, v, o)
				return err
			})
		})
		b.Run(p.name+"/get", func(b *testing.B) {
			if _, err := s.Set(ctx, "bench.sensitive", "plain", v, plain); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Set(ctx, "bench.sensitive", "sealed", v, sealed); err != nil {
				b.Fatal(err)
			}
			pair(b, func(sensitive bool) error {
				key := "plain"
				if sensitive {
					key = "sealed"
				}
				_, got, err := s.Get(ctx, "bench.sensitive", key)
				if err == nil && got.V != value1K {
					b.Fatalf("Get %s = %v", key, got.V)
				}
				return err
			})
		})
	}
}

func p50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func total(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}
