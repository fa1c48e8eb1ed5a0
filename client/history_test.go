package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kvflow/kvflow"
)

// A watch whose server dies mid-stream (the connection dropped without the
// stream's end) is an error naming the last change seen; one the server
// ends is not.
func TestWatch_CutStream_IsAnError(t *testing.T) {
	for _, cut := range []bool{true, false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("event: change\nid: 7\ndata: {\"seq\":7,\"key\":\"a\",\"change\":\"SET\",\"version\":1,\"type\":\"STRING\"}\n\n"))
			w.(http.Flusher).Flush()
			if cut { // as a SIGKILL: no terminating chunk
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
			}
		}))
		var seen []int64
		err := NewClient(srv.URL, "").Watch(context.Background(), "company.team", "", 0, func(c Change) error {
			seen = append(seen, c.Seq)
			return nil
		})
		srv.Close()
		if len(seen) != 1 {
			t.Fatalf("cut=%v: saw %v, want change 7", cut, seen)
		}
		if cut && (kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE || !strings.Contains(err.Error(), "cut after change 7")) {
			t.Errorf("cut stream: %v, want EUNAVAILABLE naming change 7", err)
		}
		if !cut && err != nil {
			t.Errorf("stream ended by the server: %v, want nil", err)
		}
	}
}
