package api

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testpair"
)

// loadOp is one request of the load test and what it got back.
type loadOp struct {
	client     int
	kind       string // PUT, GET, DELETE
	key        string
	value      string // PUT: the JSON string written; GET: the body read
	status     int
	start, end time.Time
}

// 32 clients mix PUT, GET and DELETE on keys of their own and on shared
// keys. No request may fail with a 5xx. Each client's own keys must read back
// its last write at every step and at the end. A shared key's reads and final
// value must be linearizable: they come from a write that was not certainly
// overwritten before the read began (a write w is certainly overwritten when
// another write started after w was acknowledged and was itself acknowledged
// before the read began).
func TestLoad_ConcurrentClients_LastAcknowledgedWriteWins(t *testing.T) {
	// Both pairs: only PostgreSQL runs writers' transactions concurrently
	// (SQLite takes one writer at a time), so only there can they interleave.
	onBothPairs(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		const clients, opsPerClient, ownKeys, sharedKeys = 32, 50, 2, 4
		ts := startServer(t, pair, Config{})
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute}
		base := ts.URL + "/api/v1/namespaces/load/kv/"

		call := func(op *loadOp) error {
			var body io.Reader
			if op.kind == "PUT" {
				body = strings.NewReader(op.value)
			}
			req, err := http.NewRequest(op.kind, base+op.key, body)
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			op.start = time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			op.end = time.Now()
			op.status = resp.StatusCode
			if op.kind != "PUT" {
				op.value = string(b)
			}
			return err
		}

		history := make([][]loadOp, clients)
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(cl), 42))
				for i := range opsPerClient {
					op := loadOp{client: cl}
					if rng.IntN(2) == 0 {
						op.key = fmt.Sprintf("own-%d-%d", cl, rng.IntN(ownKeys))
					} else {
						op.key = fmt.Sprintf("shared-%d", rng.IntN(sharedKeys))
					}
					switch n := rng.IntN(100); {
					case n < 45:
						op.kind, op.value = "PUT", fmt.Sprintf(`"c%d-op%d"`, cl, i)
					case n < 85:
						op.kind = "GET"
					default:
						op.kind = "DELETE"
					}
					if err := call(&op); err != nil {
						errs <- fmt.Errorf("client %d: %s %s: %v", cl, op.kind, op.key, err)
						return
					}
					history[cl] = append(history[cl], op)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}

		byKey := map[string][]loadOp{}
		total, fiveXX := 0, 0
		for _, ops := range history {
			for _, op := range ops {
				total++
				if op.status >= 500 {
					fiveXX++
					t.Errorf("%s %s answered %d: %s", op.kind, op.key, op.status, op.value)
				}
				ok := op.status == 200 || (op.kind == "GET" && op.status == 404)
				if !ok && op.status < 500 {
					t.Errorf("%s %s answered %d: %s", op.kind, op.key, op.status, op.value)
				}
				byKey[op.key] = append(byKey[op.key], op)
			}
		}
		if fiveXX > 0 {
			t.Fatalf("%d of %d requests answered 5xx", fiveXX, total)
		}
		t.Logf("%d requests from %d clients, no 5xx", total, clients)

		// What a GET would show for a write: the written JSON value, or a 404.
		shown := func(op loadOp) string {
			if op.kind == "PUT" {
				return `{"type":"STRING","value":` + op.value + `}`
			}
			return "404"
		}
		got := func(op loadOp) string {
			if op.status == 404 {
				return "404"
			}
			return op.value
		}

		// Own keys: one writer, so every read and the end state are exact.
		for cl, ops := range history {
			last := map[string]string{}
			for _, op := range ops {
				if !strings.HasPrefix(op.key, "own-") {
					continue
				}
				want := last[op.key]
				if want == "" {
					want = "404"
				}
				switch op.kind {
				case "GET":
					if got(op) != want {
						t.Errorf("client %d: GET %s = %s, want its last write %s", cl, op.key, got(op), want)
					}
				case "DELETE":
					if wantDel := fmt.Sprint(want != "404"); op.value != wantDel {
						t.Errorf("client %d: DELETE %s = %s, want %s", cl, op.key, op.value, wantDel)
					}
					last[op.key] = "404"
				case "PUT":
					last[op.key] = shown(op)
				}
			}
			for key, want := range last {
				final := do(t, "GET", base+key, "")
				if final.Status == 200 {
					if final.Body != want {
						t.Errorf("final %s = %s, want the last acknowledged write %s", key, final.Body, want)
					}
				} else if want != "404" {
					t.Errorf("final %s = %d, want %s", key, final.Status, want)
				}
			}
		}

		// Shared keys: linearizable reads and end state.
		for key, ops := range byKey {
			if !strings.HasPrefix(key, "shared-") {
				continue
			}
			var writes []loadOp
			for _, op := range ops {
				if op.kind != "GET" {
					writes = append(writes, op)
				}
			}
			// possible reports whether a read over [start, end] may show s.
			possible := func(s string, start, end time.Time) bool {
				overwritten := func(after time.Time, skip int) bool {
					for j, w2 := range writes {
						if j != skip && w2.start.After(after) && w2.end.Before(start) {
							return true
						}
					}
					return false
				}
				if s == "404" && !overwritten(time.Time{}, -1) {
					return true // still the initial absence
				}
				for i, w := range writes {
					if shown(w) == s && w.start.Before(end) && !overwritten(w.end, i) {
						return true
					}
				}
				return false
			}
			for _, op := range ops {
				if op.kind == "GET" && !possible(got(op), op.start, op.end) {
					t.Errorf("GET %s by client %d = %s: no write could be the latest then", key, op.client, got(op))
				}
			}
			final := do(t, "GET", base+key, "")
			f := "404"
			if final.Status == 200 {
				f = final.Body
			}
			now := time.Now()
			if !possible(f, now, now) {
				t.Errorf("final %s = %s, which is not the effect of a last acknowledged write", key, f)
			}
		}
	})
}
