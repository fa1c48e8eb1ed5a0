package storage_test

import (
	"context"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/kvflow/kvflow/storage"
)

// BenchmarkHistory reads a key with 1,000 versions: one version's value (no
// cache) and the first page (100) of its history, and reports the medians.
//
//	go test ./storage -run '^$' -bench History -benchtime 500x
func BenchmarkHistory(b *testing.B) {
	ctx := context.Background()
	for _, p := range benchPairs(b) {
		for i := 0; i < 1000; i++ {
			if _, err := p.Store.Set(ctx, "bench.history", "k", storage.String(value1K+strconv.Itoa(i)), storage.SetOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(p.Name+"/GetVersion", func(b *testing.B) {
			median(b, func(i int) {
				v := int64(1 + (i*7919)%1000)
				if _, val, err := p.Store.GetVersion(ctx, "bench.history", "k", v); err != nil || val.V != value1K+strconv.FormatInt(v-1, 10) {
					b.Fatalf("GetVersion %d: %v", v, err)
				}
			})
		})
		b.Run(p.Name+"/FirstPage", func(b *testing.B) {
			median(b, func(int) {
				if pg, err := p.Store.History(ctx, "bench.history", "k", storage.HistoryOptions{}); err != nil || len(pg.Versions) != 100 || pg.Versions[0].Version != 1000 {
					b.Fatalf("History: %d, %v", len(pg.Versions), err)
				}
			})
		})
	}
}

// median times fn b.N times and reports the p50 and p99 in milliseconds.
func median(b *testing.B, fn func(i int)) {
	times := make([]time.Duration, b.N)
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		fn(i)
		times[i] = time.Since(t0)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}
