package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// BenchmarkWatch_100Watchers measures, on PostgreSQL + MinIO, the time from a
// Set returning to each of 100 connected watchers receiving its event.
// Custom metrics: p50-ms, p99-ms over every (change, watcher) pair.
//
//	go test -run '^$' -bench Watch -benchtime 50x ./api/
func BenchmarkWatch_100Watchers(b *testing.B) {
	pair := testpair.Service(b, storage.Options{})
	ctx := context.Background()
	srv := New(Config{Store: pair.Store, DB: pair.DB, SweepInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, l) }()
	b.Cleanup(func() { stop(); <-done })
	url := "http://" + l.Addr().String() + "/api/v1/namespaces/bench/kv/watch?since=0"
	const watchers = 100
	var mu sync.Mutex
	var lat []time.Duration
	acked := map[int64]time.Time{} // seq → when its Set returned
	var wg sync.WaitGroup
	got := make(chan struct{}, watchers*1024)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: watchers, MaxConnsPerHost: watchers}}
	for w := 0; w < watchers; w++ {
		resp, err := hc.Get(url)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("watch: %v", err)
		}
		b.Cleanup(func() { resp.Body.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
					now := time.Now()
					var seq int64
					fmt.Sscan(id, &seq)
					mu.Lock()
					lat = append(lat, max(0, now.Sub(acked[seq]))) // <0: the event beat the Set's return
					mu.Unlock()
					got <- struct{}{}
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // every watcher is waiting
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The ack time is recorded before a watcher can see the change: the
		// lock is held across the Set.
		mu.Lock()
		e, err := pair.Store.Set(ctx, "bench", "k", storage.String("v"), storage.SetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		acked[int64(i+1)] = time.Now()
		_ = e
		mu.Unlock()
		for w := 0; w < watchers; w++ {
			<-got
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
