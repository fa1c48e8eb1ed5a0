package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// wantJSONError checks a 4xx/5xx answered as a JSON error whose message
// holds every part.
func wantJSONError(t *testing.T, what string, r response, status int, parts ...string) {
	t.Helper()
	if r.Status != status || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || r.Message() == "" {
		t.Errorf("%s = %d %q (%s), want %d with a JSON message", what, r.Status, r.Body, r.Header.Get("Content-Type"), status)
		return
	}
	for _, p := range parts {
		if !strings.Contains(r.Message(), p) {
			t.Errorf("%s: message %q lacks %q", what, r.Message(), p)
		}
	}
}

// Bad input is refused at the edge with 422 JSON naming the field, on both
// backend pairs: bytes PostgreSQL refuses (invalid UTF-8, NUL), path segments
// ServeMux would redirect (. and ..), namespaces with empty parts, long
// descriptions, silent changes (invalid UTF-8 in JSON, +00:60).
func TestEdge_BadInputIs422JSONNamingTheField(t *testing.T) {
	// Both pairs: PostgreSQL refuses text with invalid UTF-8 or NUL where
	// SQLite stores it, so a byte that slipped past the edge would be a 500
	// there only.
	onBothPairs(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		kv := ts.URL + "/api/v1/namespaces/company.team/kv/"

		wantJSONError(t, "description with an invalid UTF-8 byte", do(t, "PUT", kv+"k", "v", "Description: bad \xff byte"), 422, "'description'", "UTF-8", "key 'k'")
		wantJSONError(t, "description query with an invalid UTF-8 byte", do(t, "PUT", kv+"k?description=%FF", "v"), 422, "'description'")
		wantJSONError(t, "description with a NUL byte", do(t, "PUT", kv+"k?description=a%00b", "v"), 422, "'description'", "NUL")
		wantJSONError(t, "description of 1,001 characters", do(t, "PUT", kv+"k", "v", "description: "+strings.Repeat("d", 1001)), 422, "'description'", "1001 characters", "limit is 1000")
		if r := do(t, "PUT", kv+"k", "v", "description: "+strings.Repeat("d", 1000)); r.Status != 200 {
			t.Errorf("description of 1,000 characters = %d %s", r.Status, r.Body)
		}

		wantJSONError(t, "GET /api/v1/executions/%00", do(t, "GET", ts.URL+"/api/v1/executions/%00", ""), 422, "'id'", "NUL")
		wantJSONError(t, "GET /api/v1/executions/%FF/logs", do(t, "GET", ts.URL+"/api/v1/executions/%FF/logs", ""), 422, "'id'", "UTF-8")
		wantJSONError(t, "list with prefix %00", do(t, "GET", kv[:len(kv)-1]+"?prefix=%00", ""), 422, "'prefix'")
		for _, p := range []struct{ method, path, field string }{
			{"GET", "/api/v1/namespaces/company.team/kv/..", "'key'"},
			{"PUT", "/api/v1/namespaces/company.team/kv/.", "'key'"},
			{"DELETE", "/api/v1/namespaces/company.team/kv/..", "'key'"},
			{"GET", "/api/v1/namespaces/company.team/kv/../detail", "'key'"},
			{"GET", "/api/v1/namespaces/../kv/x", "'namespace'"},
			{"GET", "/api/v1/executions/..", "'id'"},
			{"GET", "/api/v1/executions/../logs", "'id'"},
		} {
			wantJSONError(t, p.method+" "+p.path, do(t, p.method, ts.URL+p.path, "v"), 422, p.field)
		}
		for _, ns := range []string{"a..b", "x."} {
			wantJSONError(t, "namespace "+ns, do(t, "PUT", ts.URL+"/api/v1/namespaces/"+ns+"/kv/k", "v"), 422, "non-empty parts")
		}

		wantJSONError(t, "JSON string with invalid UTF-8", do(t, "PUT", kv+"j", "\"a\xffb\"", "Content-Type: application/json"), 422, "UTF-8")
		wantJSONError(t, "text with invalid UTF-8", do(t, "PUT", kv+"j", "\"a\xffb\"", "Content-Type: text/plain"), 422, "UTF-8")
		wantJSONError(t, "DATETIME at +00:60", do(t, "PUT", kv+"d?type=DATETIME", "2024-07-15T06:10:33+00:60"), 422, "DATETIME")
		if r := do(t, "GET", kv+"j", ""); r.Status != 404 {
			t.Errorf("refused value was stored: %d %s", r.Status, r.Body)
		}
		if r := do(t, "PUT", kv+"z", "-0", "Content-Type: application/json"); r.Status != 200 {
			t.Fatalf("PUT -0 = %d %s", r.Status, r.Body)
		}
		if r := do(t, "GET", kv+"z", ""); r.Body != `{"type":"NUMBER","value":-0}` {
			t.Errorf("GET -0 = %s", r.Body)
		}
	})
}

// A 350-character key (the documented limit) works;
// a value whose object went missing is a 500 naming the key, not a 404, and
// no message names a server path.
func TestEdge_LongKeysAndMissingObjects(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		kv := ts.URL + "/api/v1/namespaces/company.team/kv/"
		for _, n := range []int{231, 300, storage.MaxKeyLen} {
			key := strings.Repeat("k", n-1) + "Z"
			if r := do(t, "PUT", kv+key, `"long"`, "Content-Type: application/json"); r.Status != 200 {
				t.Fatalf("PUT of a %d-character key = %d %s", n, r.Status, r.Body)
			}
			if r := do(t, "GET", kv+key, ""); r.Body != `{"type":"STRING","value":"long"}` {
				t.Errorf("GET of a %d-character key = %d %s", n, r.Status, r.Body)
			}
		}
		if r := do(t, "GET", kv[:len(kv)-1], ""); strings.Count(r.Body, `"key"`) != 3 {
			t.Errorf("list = %s", r.Body)
		}

		e, err := pair.Store.Set(context.Background(), "company.team", "lost", storage.String("v"), storage.SetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := pair.Bucket.Delete(context.Background(), e.Object); err != nil {
			t.Fatal(err)
		}
		r := do(t, "GET", kv+"lost", "")
		wantJSONError(t, "GET of a key whose object is missing", r, 500, "'lost'", "'company.team'", "missing")
		if strings.Contains(r.Body, "/") {
			t.Errorf("message names a path: %s", r.Body)
		}
	})
}

// patternReader yields n bytes of printable ASCII without allocating.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	p.left -= int64(len(b))
	return len(b), nil
}

// heapPeak samples the heap until stop is called and returns the highest
// HeapAlloc seen above the starting one.
func heapPeak() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// With the body limit raised to 1 GiB, a large value is refused by the
// whole-value limit before it is read, and a STRING streams to the object
// store with memory that does not grow with its size.
func TestEdge_LargeBodies_RefusedBeforeBufferingOrStreamedFlat(t *testing.T) {
	const body = 96 << 20 // more than the 64 MiB whole-value limit
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{MaxBodyBytes: 1 << 30})
		kv := ts.URL + "/api/v1/namespaces/company.team/kv/"

		// Content-Length of 512 MiB, no body sent: refused at once.
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "PUT /api/v1/namespaces/company.team/kv/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 512<<20)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer before the body was sent: %v", err)
		}
		msg, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(msg), "whole value") {
			t.Errorf("512 MiB Content-Length = %d %s, want 413 naming the whole-value limit", resp.StatusCode, msg)
		}

		// Chunked: refused once it passes the limit, not read to the end.
		src := &patternReader{left: body}
		req, _ := http.NewRequest("PUT", kv+"big", io.NopCloser(src))
		req.Header.Set("Content-Type", "text/plain")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode != 413 {
				t.Errorf("chunked %d MiB = %d, want 413", body>>20, resp.StatusCode)
			}
		} // else the server closed the connection mid-body, which also refuses it
		if sent := body - src.left; sent > storage.MaxValueSize+(16<<20) {
			t.Errorf("the server read %d MiB of a refused body", sent>>20)
		}

		// A STRING streams: the heap does not grow with the value's size (MinIO
		// holds a few parts of 16 MiB in memory; reading the body whole would
		// take twice its size or more).
		var peaks []uint64
		for _, size := range []int64{body / 3, body} {
			stop := heapPeak()
			req, _ := http.NewRequest("PUT", kv+"big?type=STRING", io.NopCloser(&patternReader{left: size}))
			req.Header.Set("Content-Type", "text/plain")
			resp, err := http.DefaultClient.Do(req)
			peak := stop()
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("streamed PUT of %d MiB = %d %s", size>>20, resp.StatusCode, msg)
			}
			t.Logf("%s: PUT of a %d MiB STRING: heap peak +%.1f MiB", pair.Name, size>>20, float64(peak)/(1<<20))
			peaks = append(peaks, peak)
			e, err := pair.Store.Stat(context.Background(), "company.team", "big")
			if err != nil || e.Type != storage.STRING || e.Size < size {
				t.Errorf("stored %+v, %v", e, err)
			}
		}
		if peaks[1] > 128<<20 || peaks[1] > peaks[0]+32<<20 {
			t.Errorf("heap peaks %d MiB and %d MiB for STRINGs of %d and %d MiB: not flat", peaks[0]>>20, peaks[1]>>20, body/3>>20, body>>20)
		}

		// The body limit still holds for a streamed STRING.
		small := startServer(t, pair, Config{MaxBodyBytes: 1 << 20})
		req, _ = http.NewRequest("PUT", small.URL+"/api/v1/namespaces/company.team/kv/s?type=STRING", io.NopCloser(&patternReader{left: 2 << 20}))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 413 {
				t.Errorf("streamed STRING over the body limit = %d %s, want 413", resp.StatusCode, msg)
			}
		}
		if _, err := pair.Store.Stat(context.Background(), "company.team", "s"); err == nil {
			t.Error("a STRING over the body limit was stored")
		}
	})
}
