package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// BenchmarkKV measures GET and PUT through the server on PostgreSQL + MinIO
// at concurrency 1 and 32, beside the storage floor: the same Store.Get and
// Store.Set called directly, in the same run. Values are 1 KiB strings.
// Custom metrics: req/s, p50-ms, p99-ms.
//
//	go test -run '^$' -bench BenchmarkKV -benchtime 2000x ./api/
func BenchmarkKV(b *testing.B) {
	pair := testpair.Service(b, storage.Options{})
	ctx := context.Background()
	const ns, keys = "bench", 1000
	value := strings.Repeat("v", 1024)
	for i := range keys {
		if _, err := pair.Store.Set(ctx, ns, fmt.Sprintf("k%04d", i), storage.String(value), storage.SetOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range keys { // every run reads from a warm cache
		if _, _, err := pair.Store.Get(ctx, ns, fmt.Sprintf("k%04d", i)); err != nil {
			b.Fatal(err)
		}
	}
	srv := New(Config{Store: pair.Store, DB: pair.DB, SweepInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}) // request logs formatted, then dropped
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, l) }()
	b.Cleanup(func() { stop(); <-done })
	base := "http://" + l.Addr().String() + "/api/v1/namespaces/" + ns + "/kv/"
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	body := `"` + value + `"`

	httpGet := func(worker, i int) error {
		resp, err := hc.Get(base + fmt.Sprintf("k%04d", (worker*7919+i)%keys))
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET answered %d", resp.StatusCode)
		}
		return err
	}
	storeGet := func(worker, i int) error {
		_, _, err := pair.Store.Get(ctx, ns, fmt.Sprintf("k%04d", (worker*7919+i)%keys))
		return err
	}
	httpPut := func(worker, i int) error {
		req, _ := http.NewRequest("PUT", base+fmt.Sprintf("w%02d-%02d", worker, i%50), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("PUT answered %d", resp.StatusCode)
		}
		return nil
	}
	storePut := func(worker, i int) error {
		_, err := pair.Store.Set(ctx, ns, fmt.Sprintf("s%02d-%02d", worker, i%50), storage.String(value), storage.SetOptions{})
		return err
	}

	for _, op := range []struct {
		name        string
		http, floor func(worker, i int) error
	}{{"GET", httpGet, storeGet}, {"PUT", httpPut, storePut}} {
		for _, conc := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/c%d/http", op.name, conc), func(b *testing.B) { load(b, conc, op.http) })
			b.Run(fmt.Sprintf("%s/c%d/store", op.name, conc), func(b *testing.B) { load(b, conc, op.floor) })
		}
		b.Run(op.name+"/c1/paired", func(b *testing.B) { paired(b, op.http, op.floor) })
	}
}

// paired alternates an HTTP call and the same store call in one loop, so
// drift in the machine's speed hits both alike, and reports their means and
// the HTTP layer's share: http/store.
func paired(b *testing.B, httpOp, storeOp func(worker, i int) error) {
	var th, ts time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := httpOp(0, i); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := storeOp(0, i); err != nil {
			b.Fatal(err)
		}
		th, ts = th+t1.Sub(t0), ts+time.Since(t1)
	}
	b.ReportMetric(float64(th.Nanoseconds())/float64(b.N), "http-ns/op")
	b.ReportMetric(float64(ts.Nanoseconds())/float64(b.N), "store-ns/op")
	b.ReportMetric(float64(th)/float64(ts), "http/store")
}

// load runs b.N calls of fn from conc goroutines and reports throughput and
// latency percentiles.
func load(b *testing.B, conc int, fn func(worker, i int) error) {
	lat := make([][]time.Duration, conc)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := fn(w, i); err != nil {
					failed.Store(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
