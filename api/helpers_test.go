package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/storage"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }

// clock is a settable clock for the store.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2024, 7, 15, 6, 10, 33, 422_000_000, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testServer is a Server listening on a random loopback port.
type testServer struct {
	URL    string
	Server *Server
	Client *client.Client
	Pair   testpair.Pair
	Clock  *clock // nil unless the store runs on a fake clock
	Logs   *syncBuffer

	stop func() error
}

// startServer serves cfg (Store and DB taken from pair) on 127.0.0.1:0
// until the test ends.
func startServer(tb testing.TB, pair testpair.Pair, cfg Config) *testServer {
	tb.Helper()
	ts := &testServer{Pair: pair, Logs: &syncBuffer{}}
	cfg.Store, cfg.DB = pair.Store, pair.DB
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(ts.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = -1 // tests call Sweep themselves
	}
	ts.Server = New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ts.URL = "http://" + l.Addr().String()
	ts.Client = client.NewClient(ts.URL, cfg.Token)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Server.Serve(ctx, l) }()
	var once sync.Once
	var stopErr error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(time.Minute):
				stopErr = errors.New("server did not stop within a minute")
			}
		})
		return stopErr
	}
	tb.Cleanup(func() {
		if err := ts.stop(); err != nil {
			tb.Errorf("stopping the server: %v", err)
		}
	})
	return ts
}

// onLocal runs fn on a fresh store on the embedded default, SQLite + a local
// directory, with a fake clock: the conformance suite (storagetest) covers
// every backend pair, so API tests need only this one.
func onLocal(t *testing.T, fn func(t *testing.T, pair testpair.Pair, c *clock)) {
	c := newClock()
	fn(t, testpair.Local(t, storage.Options{Now: c.Now}), c)
}

// onBothPairs runs fn on a fresh store of each backend pair, with a fake
// clock: only for a test of a PostgreSQL behaviour, which says which.
func onBothPairs(t *testing.T, fn func(t *testing.T, pair testpair.Pair, c *clock)) {
	for _, mk := range []struct {
		name string
		open func(testing.TB, storage.Options) testpair.Pair
	}{{"sqlite+dir", testpair.Local}, {"postgres+minio", testpair.Service}} {
		t.Run(mk.name, func(t *testing.T) {
			c := newClock()
			fn(t, mk.open(t, storage.Options{Now: c.Now}), c)
		})
	}
}

// response is what a raw request got back.
type response struct {
	Status int
	Header http.Header
	Body   string
}

// Message is the message of a JSON error body, or "" when there is none.
func (r response) Message() string {
	var body ErrorBody
	json.Unmarshal([]byte(r.Body), &body)
	return body.Message
}

// do sends a raw request with headers given as "Name: value" pairs.
func do(tb testing.TB, method, url, body string, headers ...string) response {
	tb.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		tb.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	noOpts  = storage.Options{}
	setOpts = storage.SetOptions{}
)

func str(s string) storage.Value { return storage.String(s) }

// newStore is a store on the pair's database and bucket.
func newStore(p testpair.Pair) *storage.Store { return storage.New(p.DB, p.Bucket, noOpts) }

// testsvcMinIO is a private MinIO the test may stop and start.
func testsvcMinIO(t *testing.T) *testsvc.MinIO { return testsvc.NewMinIO(t) }

// newStoreWithClock is a store on the pair's database and bucket with a fake clock.
func newStoreWithClock(p testpair.Pair, c *clock) *storage.Store {
	return storage.New(p.DB, p.Bucket, storage.Options{Now: c.Now})
}
