package api

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// BenchmarkHandlerGET is the server's own cost for a GET, without network:
// the handler called in-process, beside the Store.Get it makes.
func BenchmarkHandlerGET(b *testing.B) {
	pair := testpair.Local(b, storage.Options{})
	ctx := context.Background()
	if _, err := pair.Store.Set(ctx, "bench", "k", storage.String(strings.Repeat("v", 1024)), storage.SetOptions{}); err != nil {
		b.Fatal(err)
	}
	h := New(Config{Store: pair.Store, DB: pair.DB, SweepInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler()
	b.Run("handler", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/namespaces/bench/kv/k", nil))
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
		}
	})
	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := pair.Store.Get(ctx, "bench", "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
