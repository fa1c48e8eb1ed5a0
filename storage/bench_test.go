package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/s3"
	"github.com/kvflow/kvflow/storage/s3/s3test"
	"github.com/kvflow/kvflow/storage/sqldb/sqldbtest"
)

// Benchmarks of the store beside a floor: the same database and object store
// calls made directly, in the same run. Values are 1 KiB.
//
//	go run ./internal/testsvc/cmd/testsvc run -- go test ./storage -run '^$' -bench . -benchtime 2000x

var value1K = strings.Repeat("abcdefghijklmnop", 64)

type benchPair struct {
	testpair.Pair
	floor floor
}

// floor makes a pair's raw calls: a value write and an upsert; a select and a
// value read. Objects are named as the store names them (the same depth of
// directories in MinIO and on disk), so the comparison is of the calls alone.
type floor interface {
	put(ctx context.Context, name string, data []byte) error
	get(ctx context.Context, name string) ([]byte, error)
}

func benchPairs(b *testing.B) []benchPair {
	local := testpair.Local(b, storage.Options{CacheSize: -1})
	dir := filepath.Join(b.TempDir(), "floor")
	os.MkdirAll(dir, 0o755)
	url := testsvc.S3URL(b)
	cfg, err := s3.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""), Secure: cfg.Secure})
	if err != nil {
		b.Fatal(err)
	}
	db := sqldbtest.OpenURL(b, testsvc.PostgresURL(b))
	svc := testpair.New("postgres+minio", db, s3test.Open(b, url), storage.Options{CacheSize: -1})
	pairs := []benchPair{
		{local, &fileFloor{dir: dir}},
		{svc, &minioFloor{client: client, bucket: cfg.Bucket}},
	}
	// Warm both paths (connections, region lookup, the object store's first
	// writes), so neither side of a comparison pays for a cold start.
	ctx := context.Background()
	for _, p := range pairs {
		for i := 0; i < 50; i++ {
			if _, err := p.Store.Set(ctx, "bench.warm", "k"+strconv.Itoa(i), storage.String(value1K), storage.SetOptions{}); err != nil {
				b.Fatal(err)
			}
			if err := p.floor.put(ctx, storage.ObjectName("bench.warm"), []byte(value1K)); err != nil {
				b.Fatal(err)
			}
		}
	}
	return pairs
}

type fileFloor struct{ dir string }

// put writes the file as durably as the fs bucket does: temp, fsync, rename, fsync dir.
func (f *fileFloor) put(_ context.Context, name string, data []byte) error {
	path := filepath.Join(f.dir, name)
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	tmp.Close()
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (f *fileFloor) get(_ context.Context, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(f.dir, name))
}

type minioFloor struct {
	client *minio.Client
	bucket string
}

func (m *minioFloor) put(ctx context.Context, name string, data []byte) error {
	// Unsigned with a CRC32C trailer, as the s3 bucket writes.
	_, err := m.client.PutObject(ctx, m.bucket, "objects/"+name, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{DisableContentSha256: true})
	return err
}

func (m *minioFloor) get(ctx context.Context, name string) ([]byte, error) {
	obj, err := m.client.GetObject(ctx, m.bucket, "objects/"+name, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	return io.ReadAll(obj)
}

// floorUpsert writes the metadata row into a copy of kv_entries without its
// triggers: the floor pays for one upsert and nothing of the history
// (versions, change feed) the store's write records in the same statement.
const floorUpsert = `INSERT INTO floor_entries (namespace, key, type, object, version, size, hash, description, created_at, updated_at, expires_at)
VALUES (?, ?, 'STRING', ?, 1, ?, 'h', '', ?, ?, NULL)
ON CONFLICT (namespace, key) DO UPDATE SET object = excluded.object, version = floor_entries.version + 1, updated_at = excluded.updated_at`

// createFloorTable makes floor_entries: kv_entries' columns and indexes as
// issue 2 measured them, with no trigger.
func createFloorTable(b *testing.B, p testpair.Pair) {
	collate := ""
	if p.DB.Dialect == "postgres" {
		collate = `COLLATE "C"`
	}
	_, err := p.DB.X.Exec(`CREATE TABLE floor_entries (
	namespace TEXT ` + collate + ` NOT NULL, key TEXT ` + collate + ` NOT NULL, type TEXT NOT NULL, object TEXT NOT NULL, version BIGINT NOT NULL,
	size BIGINT NOT NULL, hash TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL, expires_at BIGINT, PRIMARY KEY (namespace, key))`)
	if err == nil {
		_, err = p.DB.X.Exec(`CREATE UNIQUE INDEX floor_entries_object ON floor_entries (object)`)
	}
	if err == nil {
		_, err = p.DB.X.Exec(`CREATE INDEX floor_entries_expires ON floor_entries (expires_at) WHERE expires_at IS NOT NULL`)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// paired runs store and floor operations alternately in one loop, so drift
// in the machine's speed (fsync, a busy neighbour) hits both alike, and
// reports each side's mean and their ratio.
func paired(b *testing.B, store, floor func(i int)) {
	var ts, tf time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		store(i)
		t1 := time.Now()
		floor(i)
		ts, tf = ts+t1.Sub(t0), tf+time.Since(t1)
	}
	b.ReportMetric(float64(ts.Nanoseconds())/float64(b.N), "store-ns/op")
	b.ReportMetric(float64(tf.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(ts)/float64(tf), "store/floor")
}

func BenchmarkSet(b *testing.B) {
	ctx := context.Background()
	for _, p := range benchPairs(b) {
		createFloorTable(b, p.Pair)
		upsert := mustPrepare(b, p, floorUpsert)
		b.Run(p.Name, func(b *testing.B) {
			paired(b, func(i int) {
				if _, err := p.Store.Set(ctx, "bench.set", "k"+strconv.Itoa(i%100), storage.String(value1K), storage.SetOptions{}); err != nil {
					b.Fatal(err)
				}
			}, func(i int) {
				name := storage.ObjectName("bench.floor")
				if err := p.floor.put(ctx, name, []byte(value1K)); err != nil {
					b.Fatal(err)
				}
				now := time.Now().UnixMicro()
				if _, err := upsert.ExecContext(ctx, "bench.floor", "k"+strconv.Itoa(i%100), name, len(value1K), now, now); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkSetConcurrent16 is 16 goroutines writing 1 KiB values at once,
// beside the floor: 16 goroutines making the same object writes and upserts
// directly. Store and floor alternate in rounds of 16×50 writes.
//
//	go run ./internal/testsvc/cmd/testsvc run -- go test ./storage -run '^$' -bench SetConcurrent16 -benchtime 4000x -count 3
func BenchmarkSetConcurrent16(b *testing.B) {
	ctx := context.Background()
	const writers, round = 16, 16 * 50
	for _, p := range benchPairs(b) {
		createFloorTable(b, p.Pair)
		upsert := mustPrepare(b, p, floorUpsert)
		store := func(w, i int) error {
			_, err := p.Store.Set(ctx, "bench.set16", fmt.Sprintf("w%02d-%02d", w, i%50), storage.String(value1K), storage.SetOptions{})
			return err
		}
		floor := func(w, i int) error {
			key := fmt.Sprintf("w%02d-%02d", w, i%50)
			name := storage.ObjectName("bench.floor16")
			if err := p.floor.put(ctx, name, []byte(value1K)); err != nil {
				return err
			}
			now := time.Now().UnixMicro()
			_, err := upsert.ExecContext(ctx, "bench.floor16", key, name, len(value1K), now, now)
			return err
		}
		// Each half of the floor alone, to see which bounds the writers.
		objects := func(w, i int) error {
			return p.floor.put(ctx, storage.ObjectName("bench.objects16"), []byte(value1K))
		}
		metadata := func(w, i int) error {
			now := time.Now().UnixMicro()
			_, err := upsert.ExecContext(ctx, "bench.meta16", fmt.Sprintf("w%02d-%02d", w, i%50), fmt.Sprintf("m-%d-%d-%d", w, i, now), len(value1K), now, now)
			return err
		}
		b.Run(p.Name, func(b *testing.B) {
			var ts, tf, to, tm time.Duration
			for done := 0; done < b.N; done += round {
				ts += concurrently(b, writers, round/writers, store)
				tf += concurrently(b, writers, round/writers, floor)
				to += concurrently(b, writers, round/writers, objects)
				tm += concurrently(b, writers, round/writers, metadata)
			}
			n := float64((b.N + round - 1) / round * round)
			b.ReportMetric(n/ts.Seconds(), "store-w/s")
			b.ReportMetric(n/tf.Seconds(), "floor-w/s")
			b.ReportMetric(n/to.Seconds(), "objects-only-w/s")
			b.ReportMetric(n/tm.Seconds(), "metadata-only-w/s")
			b.ReportMetric(tf.Seconds()/ts.Seconds(), "store/floor-rate")
		})
	}
}

// concurrently runs fn(worker, i) for i < each on every worker and returns
// the wall time.
func concurrently(b *testing.B, workers, each int, fn func(w, i int) error) time.Duration {
	errs := make(chan error, workers)
	start := time.Now()
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				if err := fn(w, i); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	for _, p := range benchPairs(b) {
		cached := storage.New(p.DB, p.Bucket, storage.Options{})
		floorNames := make([]string, 100)
		for i := range floorNames {
			key := "k" + strconv.Itoa(i)
			if _, err := p.Store.Set(ctx, "bench.get", key, storage.String(value1K), storage.SetOptions{}); err != nil {
				b.Fatal(err)
			}
			floorNames[i] = storage.ObjectName("bench.floor")
			if err := p.floor.put(ctx, floorNames[i], []byte(value1K)); err != nil {
				b.Fatal(err)
			}
		}
		q := mustPrepare(b, p, `SELECT `+entryColumns+` FROM kv_entries WHERE namespace = ? AND key = ?`)
		floor := func(i int) {
			var row metadataRow
			if err := q.GetContext(ctx, &row, "bench.get", "k"+strconv.Itoa(i%100)); err != nil {
				b.Fatal(err)
			}
			if _, err := p.floor.get(ctx, floorNames[i%100]); err != nil {
				b.Fatal(err)
			}
		}
		for _, s := range []struct {
			name  string
			store *storage.Store
		}{{"", p.Store}, {"-cached", cached}} {
			b.Run(p.Name+s.name, func(b *testing.B) {
				paired(b, func(i int) {
					if _, _, err := s.store.Get(ctx, "bench.get", "k"+strconv.Itoa(i%100)); err != nil {
						b.Fatal(err)
					}
				}, floor)
			})
		}
	}
}

// BenchmarkList lists 100 keys by prefix among 1,000 in a namespace (the
// floor asks for one more row, as the store does to know there is no next page).
func BenchmarkList(b *testing.B) {
	ctx := context.Background()
	for _, p := range benchPairs(b) {
		fillMetadata(b, p.Pair, "bench.list", 1000)
		q := mustPrepare(b, p, `SELECT `+entryColumns+`
			FROM kv_entries WHERE namespace = ? AND key >= ? AND key < ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT 101`)
		b.Run(p.Name, func(b *testing.B) {
			paired(b, func(i int) {
				page, err := p.Store.List(ctx, "bench.list", storage.ListOptions{Prefix: prefixFor(i), Limit: 100})
				if err != nil || len(page.Entries) != 100 {
					b.Fatalf("List: %d entries, %v", len(page.Entries), err)
				}
			}, func(i int) {
				var rows []metadataRow
				if err := q.SelectContext(ctx, &rows, "bench.list", prefixFor(i), prefixFor(i)+"~", time.Now().UnixMicro()); err != nil || len(rows) != 100 {
					b.Fatalf("floor listed %d, %v", len(rows), err)
				}
			})
		})
	}
}

// BenchmarkList_1MKeys_Postgres lists 100 keys by prefix among 1,000,000 in
// one namespace and reports the median.
func BenchmarkList_1MKeys_Postgres(b *testing.B) {
	ctx := context.Background()
	p := testpair.Service(b, storage.Options{})
	if _, err := p.DB.X.ExecContext(ctx, `INSERT INTO kv_entries (namespace, key, type, object, version, size, hash, description, created_at, updated_at)
		SELECT 'big.ns', 'key-' || lpad(i::text, 7, '0'), 'STRING', 'obj-' || i, 1, 3, 'h', '', 0, 0 FROM generate_series(0, 999999) AS i`); err != nil {
		b.Fatal(err)
	}
	p.DB.X.ExecContext(ctx, `ANALYZE kv_entries`)
	var times []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		prefix := fmt.Sprintf("key-%05d", (i*7919)%10000) // 100 keys each
		start := time.Now()
		page, err := p.Store.List(ctx, "big.ns", storage.ListOptions{Prefix: prefix, Limit: 100})
		times = append(times, time.Since(start))
		if err != nil || len(page.Entries) != 100 {
			b.Fatalf("List %s: %d, %v", prefix, len(page.Entries), err)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
}

// BenchmarkStream writes and reads a 256 MiB and a 1 GiB STRING value and
// reports the process's peak resident memory, which must not grow with the
// value's size.
func BenchmarkStream(b *testing.B) {
	ctx := context.Background()
	for _, p := range benchPairs(b) {
		for _, size := range []int64{256 << 20, 1 << 30} {
			b.Run(fmt.Sprintf("%s/%dMiB", p.Name, size>>20), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					resetPeakRSS()
					if _, err := p.Store.SetStream(ctx, "bench.stream", "big", io.LimitReader(textSource{}, size), storage.SetOptions{}); err != nil {
						b.Fatal(err)
					}
					_, rc, err := p.Store.Open(ctx, "bench.stream", "big")
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(io.Discard, rc)
					rc.Close()
					if err != nil || n != size {
						b.Fatalf("read %d bytes, %v", n, err)
					}
				}
				b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
				b.SetBytes(2 * size)
			})
		}
	}
}

// textSource yields printable ASCII, so the ION encoding is as large as the value.
type textSource struct{}

func (textSource) Read(p []byte) (int, error) {
	rand.Read(p)
	for i := range p {
		p[i] = 'a' + p[i]%26
	}
	return len(p), nil
}

func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakRSS() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// The floors select the same metadata the store needs.
const entryColumns = `namespace, key, type, object, version, size, hash, description, created_at, updated_at, expires_at`

type metadataRow struct {
	Namespace   string `db:"namespace"`
	Key         string `db:"key"`
	Type        string `db:"type"`
	Object      string `db:"object"`
	Version     int64  `db:"version"`
	Size        int64  `db:"size"`
	Hash        string `db:"hash"`
	Description string `db:"description"`
	Created     int64  `db:"created_at"`
	Updated     int64  `db:"updated_at"`
	Expires     *int64 `db:"expires_at"`
}

// mustPrepare prepares a floor statement, as the store prepares its own.
func mustPrepare(b *testing.B, p benchPair, query string) *sqlx.Stmt {
	st, err := p.DB.X.Preparex(p.DB.Rebind(query))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// prefixFor is one of ten prefixes that each match 100 of fillMetadata's keys.
func prefixFor(i int) string { return fmt.Sprintf("key-0%d", i%10) }

// fillMetadata writes n small entries key-0000 … through the store.
func fillMetadata(b *testing.B, p testpair.Pair, ns string, n int) {
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if _, err := p.Store.Set(ctx, ns, fmt.Sprintf("key-%04d", i), storage.String("v"), storage.SetOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
