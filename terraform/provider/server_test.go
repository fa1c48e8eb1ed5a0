package provider

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
)

// testServer is a kvflow API server on a random loopback port, on SQLite
// and a local directory, with a fake clock.
type testServer struct {
	URL    string
	Client *client.Client // with the server's token
	Clock  *storagetest.Clock
}

// startServer serves the API until the test ends. token, when set, is
// required; namespaces, when given, limit what the API may reach.
func startServer(t *testing.T, token string, namespaces ...string) *testServer {
	t.Helper()
	c := storagetest.NewClock()
	pair := testpair.Local(t, storage.Options{Now: c.Now, Keys: storagetest.TestKeys(t)})
	srv := api.New(api.Config{
		Store: pair.Store, DB: pair.DB, Token: token, Namespaces: namespaces,
		SweepInterval: -1,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{URL: "http://" + l.Addr().String(), Clock: c}
	ts.Client = client.NewClient(ts.URL, token)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stopping the server: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("the server did not stop within a minute")
		}
	})
	return ts
}

// closedURL is an http:// URL where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}
