package s3_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvflow/kvflow/storage/s3/s3test"
)

// BenchmarkPutConcurrent is MinIO's ceiling for small values: 20-byte
// objects written through the Bucket by 16 to 256 goroutines at once.
// Beside it, read the MinIO process's CPU time (BENCHMARKS.md, issue 12):
//
//	go run ./internal/testsvc/cmd/testsvc run -- go test ./storage/s3 -run '^$' -bench PutConcurrent -benchtime 5000x
func BenchmarkPutConcurrent(b *testing.B) {
	bucket := s3test.NewBucket(b)
	ctx := context.Background()
	val := strings.Repeat("x", 20)
	for _, conc := range []int{16, 64, 128, 256} {
		b.Run(fmt.Sprint(conc), func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if err := bucket.Put(ctx, fmt.Sprintf("put/%d/%d", conc, i), strings.NewReader(val), int64(len(val))); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
