package s3_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/storage/s3"
	"github.com/kvflow/kvflow/storage/storagetest"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }

func TestBucket_Acceptance(t *testing.T) {
	storagetest.BucketAcceptance(t, openURL(t, testsvc.S3URL(t), nil))
}

// With 5 MiB parts the suite's 6 MiB streams go as multipart uploads.
func TestBucket_Acceptance_SmallParts(t *testing.T) {
	storagetest.BucketAcceptance(t, openURL(t, testsvc.S3URL(t), func(c *s3.Config) { c.PartSize = 5 << 20 }))
}

func TestBucket_Acceptance_NoPrefix(t *testing.T) {
	storagetest.BucketAcceptance(t, openURL(t, testsvc.S3URL(t), func(c *s3.Config) { c.Prefix = "" }))
}

func TestPut_Prefix_ObjectLivesUnderPrefix(t *testing.T) {
	url := testsvc.S3URL(t)
	prefixed := openURL(t, url, func(c *s3.Config) { c.Prefix = "kv/data/" })
	whole := openURL(t, url, func(c *s3.Config) { c.Prefix = "" })
	ctx := context.Background()
	if err := prefixed.Put(ctx, "ns/_kv/k.ion", strings.NewReader("1"), 1); err != nil {
		t.Fatal(err)
	}
	if got := names(t, whole, ""); fmt.Sprint(got) != "[kv/data/ns/_kv/k.ion]" {
		t.Fatalf("bucket holds %v, want [kv/data/ns/_kv/k.ion]", got)
	}
	if got := names(t, prefixed, ""); fmt.Sprint(got) != "[ns/_kv/k.ion]" {
		t.Fatalf("prefixed Iter = %v, want [ns/_kv/k.ion]", got)
	}
}

func TestGet_Missing_NotFoundCode(t *testing.T) {
	b := openURL(t, testsvc.S3URL(t), nil)
	_, err := b.Get(context.Background(), "no/such/object")
	if !errors.Is(err, fs.ErrNotExist) || kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Fatalf("Get missing = %v (code %q), want fs.ErrNotExist with code %q", err, kvflow.ErrorCode(err), kvflow.ENOTFOUND)
	}
	if !strings.Contains(err.Error(), "no/such/object") {
		t.Fatalf("error %q does not name the object", err)
	}
}

func TestPut_ReaderFails_ReturnsReaderError(t *testing.T) {
	b := openURL(t, testsvc.S3URL(t), nil)
	boom := errors.New("client went away")
	for _, size := range []int64{-1, 100} {
		r := io.MultiReader(strings.NewReader("partial"), errReader{boom})
		err := b.Put(context.Background(), "k", r, size)
		if !errors.Is(err, boom) {
			t.Fatalf("Put(size %d) with a failing reader = %v, want the reader's error", size, err)
		}
		if kvflow.ErrorCode(err) == kvflow.EUNAVAILABLE {
			t.Fatalf("Put(size %d): reader failure reported as the store being unavailable: %v", size, err)
		}
	}
	if _, err := b.Get(context.Background(), "k"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get after failed Puts = %v, want not exist", err)
	}
}

func TestPut_ShortReader_Invalid(t *testing.T) {
	b := openURL(t, testsvc.S3URL(t), nil)
	err := b.Put(context.Background(), "k", struct{ io.Reader }{strings.NewReader("four")}, 10)
	if kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "10") {
		t.Fatalf("Put of 4 bytes announced as 10 = %v, want EINVALID naming the size", err)
	}
}

func TestPut_BadName_Invalid(t *testing.T) {
	b := openURL(t, testsvc.S3URL(t), nil)
	for _, name := range []string{"", "/abs", "a//b", "a/../b", `a\b`, "a/"} {
		if err := b.Put(context.Background(), name, strings.NewReader("x"), 1); kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("Put(%q) = %v, want EINVALID", name, err)
		}
	}
}

// Memory for an upload of unknown size stays near two parts however large
// the value is.
func TestPut_UnknownSize_MemoryBoundedByPartSize(t *testing.T) {
	const partSize, total = 5 << 20, 96 << 20
	b := openURL(t, testsvc.S3URL(t), func(c *s3.Config) { c.PartSize = partSize })
	// Collect often so the heap tracks what is live, not garbage.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := sampleHeap(t)
	src := io.LimitReader(zeros{}, total)
	if err := b.Put(context.Background(), "big", struct{ io.Reader }{src}, -1); err != nil {
		t.Fatal(err)
	}
	grew := int64(peak()) - int64(before.HeapInuse)
	t.Logf("heap grew by %d MiB at most for a %d MiB upload with %d MiB parts", grew>>20, total>>20, partSize>>20)
	if grew > 8*partSize {
		t.Fatalf("heap grew by %d MiB for a %d MiB upload; want it bounded by a few %d MiB parts", grew>>20, total>>20, partSize>>20)
	}
	rc, err := b.Get(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if n, err := io.Copy(io.Discard, rc); err != nil || n != total {
		t.Fatalf("read back %d bytes, %v; want %d", n, err, total)
	}
}

func TestBucket_StoreStopped_UnavailableThenRecovers(t *testing.T) {
	m := testsvc.NewMinIO(t)
	b := openURL(t, m.S3URL(), nil)
	ctx := context.Background()
	if err := b.Put(ctx, "before", strings.NewReader("kept"), 4); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	err := b.Put(ctx, "during", strings.NewReader("v"), 1)
	took := time.Since(start)
	checkUnreachable(t, "Put", err, m.Endpoint())
	if took > 10*time.Second {
		t.Errorf("Put against a stopped store took %s; it must fail within seconds", took)
	}
	t.Logf("Put against the stopped store failed in %s: %v", took.Round(time.Millisecond), err)
	_, err = b.Get(ctx, "before")
	checkUnreachable(t, "Get", err, m.Endpoint())
	if errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get against a stopped store reports a missing object: %v", err)
	}
	checkUnreachable(t, "Delete", b.Delete(ctx, "before"), m.Endpoint())
	checkUnreachable(t, "Iter", b.Iter(ctx, "", func(string, time.Time) error { return nil }), m.Endpoint())
	checkUnreachable(t, "Ping", b.Ping(ctx), m.Endpoint())

	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "after", strings.NewReader("v"), 1); err != nil {
		t.Fatalf("Put after the store came back: %v", err)
	}
	rc, err := b.Get(ctx, "before")
	if err != nil {
		t.Fatalf("Get after the store came back: %v", err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); string(got) != "kept" {
		t.Fatalf("object written before the outage = %q, want %q", got, "kept")
	}
}

func TestNew_NothingListening_UnavailableFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = s3.New(context.Background(), s3.Config{Endpoint: addr, Bucket: "kvflow", AccessKey: "a", SecretKey: "b"})
	checkUnreachable(t, "New", err, addr)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("New against a closed port took %s", took)
	}
}

func TestNew_WrongSecret_Unavailable(t *testing.T) {
	cfg, err := s3.ParseURL(testsvc.S3URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SecretKey = "not-the-secret"
	_, err = s3.New(context.Background(), cfg)
	if kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("New with a wrong secret = %v, want EUNAVAILABLE saying the store refused", err)
	}
	if strings.Contains(err.Error(), "not-the-secret") {
		t.Fatalf("error leaks the secret: %v", err)
	}
}

func TestNew_CreatesMissingBucket(t *testing.T) {
	m := testsvc.NewMinIO(t)
	cfg, err := s3.ParseURL(m.S3URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Bucket = "made-by-new"
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s3.New(context.Background(), cfg)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent New on a missing bucket: %v", err)
		}
	}
	b, _ := s3.New(context.Background(), cfg)
	if err := b.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestParseURL_Valid(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "envkey")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	for raw, want := range map[string]s3.Config{
		"s3://values/kv/prod?endpoint=127.0.0.1:9000&secure=false&accessKey=ak&secretKey=sk&region=eu-west-1": {
			Endpoint: "127.0.0.1:9000", Bucket: "values", Prefix: "kv/prod/", AccessKey: "ak", SecretKey: "sk", Region: "eu-west-1",
		},
		"s3://values?endpoint=minio:9000&secure=false&partSize=8388608": {
			Endpoint: "minio:9000", Bucket: "values", AccessKey: "envkey", SecretKey: "envsecret", PartSize: 8 << 20,
		},
		"s3://values/": {
			Endpoint: "s3.amazonaws.com", Bucket: "values", AccessKey: "envkey", SecretKey: "envsecret", Secure: true,
		},
	} {
		got, err := s3.ParseURL(raw)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", raw, err)
		} else if got != want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", raw, got, want)
		}
	}
}

func TestParseURL_Invalid_NamesThePart(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	for raw, part := range map[string]string{
		"http://bucket/x":                                                        "scheme",
		"s3:///prefix?endpoint=h:1":                                              "no bucket",
		"s3://Bad_Bucket?endpoint=h:1":                                           "bucket",
		"s3://bkt?endpoint=h:1&secure=maybe":                                     "secure",
		"s3://bkt?endpoint=http://h:1":                                           "endpoint",
		"s3://bkt?endpoint=h:port":                                               "port",
		"s3://bkt?endpoint=h:1&colour=blue":                                      "colour",
		"s3://bkt?endpoint=h:1&partSize=1024":                                    "part size",
		"s3://bkt?endpoint=h:1&partSize=big":                                     "partSize",
		"s3://bkt?endpoint=h:1&accessKey=a":                                      "secret key",
		"s3://bkt?endpoint=h:1&endpoint=h:2":                                     "endpoint",
		"s3://user:topsecret@bkt?endpoint=h:1":                                   "credentials",
		"s3://bkt/a/../c?endpoint=h:1":                                           "prefix",
		"s3://bkt?endpoint=h:1&secretKey=topsecret%zz":                           "parsed",
		"s3://bkt?endpoint=h:1&accessKey=a&secure=sometimes&secretKey=topsecret": "secure",
	} {
		_, err := s3.ParseURL(raw)
		if kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("ParseURL(%q) = %v, want EINVALID", raw, err)
			continue
		}
		if !strings.Contains(err.Error(), part) {
			t.Errorf("ParseURL(%q) = %q, want it to mention %q", raw, err, part)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("ParseURL(%q) error leaks the secret: %q", raw, err)
		}
	}
}

func checkUnreachable(t *testing.T, op string, err error, endpoint string) {
	t.Helper()
	if kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE {
		t.Errorf("%s with the store down = %v (code %q), want %q", op, err, kvflow.ErrorCode(err), kvflow.EUNAVAILABLE)
		return
	}
	if msg := err.Error(); !strings.Contains(msg, "unreachable") || !strings.Contains(msg, endpoint) {
		t.Errorf("%s with the store down: %q does not say the store at %s is unreachable", op, msg, endpoint)
	}
}

func openURL(t *testing.T, url string, edit func(*s3.Config)) *s3.Bucket {
	t.Helper()
	cfg, err := s3.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&cfg)
	}
	b, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func names(t *testing.T, b *s3.Bucket, prefix string) []string {
	t.Helper()
	var out []string
	if err := b.Iter(context.Background(), prefix, func(name string, _ time.Time) error {
		out = append(out, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sampleHeap records the peak HeapInuse until the returned func is called.
func sampleHeap(t *testing.T) func() uint64 {
	var (
		mu   sync.Mutex
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	stop := sync.OnceFunc(func() { close(done); wg.Wait() })
	t.Cleanup(stop)
	return func() uint64 {
		stop()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
