package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

func TestCAS_ETagIfMatchIfNoneMatch_200Or412(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		url := ts.URL + "/api/v1/namespaces/company.team/kv/k"
		// Each step runs on the state the previous ones left; "k" starts missing.
		steps := []struct {
			method, body string
			headers      []string
			status       int
			etag         string // the ETag answered, "" for none
			version      string // the version in a 412 body
		}{
			{"PUT", "1", []string{"If-Match: \"1\""}, 412, "", "null"},
			{"PUT", "1", []string{"If-Match: *"}, 412, "", "null"},
			{"DELETE", "", []string{"If-Match: \"1\""}, 412, "", "null"},
			{"PUT", "1", []string{"If-None-Match: *"}, 200, `"1"`, ""},
			{"PUT", "2", []string{"If-None-Match: *"}, 412, "", "1"},
			{"GET", "", nil, 200, `"1"`, ""},
			{"PUT", "2", []string{"If-Match: \"1\""}, 200, `"2"`, ""},
			{"PUT", "3", []string{"If-Match: \"1\""}, 412, "", "2"},
			{"PUT", "3", []string{"If-Match: W/\"2\""}, 200, `"3"`, ""},
			{"PUT", "4", []string{"If-Match: *"}, 200, `"4"`, ""},
			{"PUT", "5", nil, 200, `"5"`, ""},
			{"GET", "", nil, 200, `"5"`, ""},
			{"DELETE", "", []string{"If-Match: \"4\""}, 412, "", "5"},
			{"PUT", "x", []string{"If-Match: three"}, 422, "", ""},
			{"DELETE", "", []string{"If-Match: \"5\""}, 200, "", ""},
			{"GET", "", nil, 404, "", ""},
		}
		for i, st := range steps {
			r := do(t, st.method, url, st.body, st.headers...)
			if r.Status != st.status || r.Header.Get("ETag") != st.etag {
				t.Fatalf("step %d %s %v = %d ETag %q %s; want %d ETag %q", i, st.method, st.headers, r.Status, r.Header.Get("ETag"), r.Body, st.status, st.etag)
			}
			if st.status == 412 {
				var body struct {
					Message string          `json:"message"`
					Version json.RawMessage `json:"version"`
				}
				if err := json.Unmarshal([]byte(r.Body), &body); err != nil || string(body.Version) != st.version || !strings.Contains(body.Message, "'k'") {
					t.Fatalf("step %d: 412 body %s, want version %s", i, r.Body, st.version)
				}
			}
		}
		// The value written last before the delete was 5: nothing else leaked in.
		do(t, "PUT", url, "7")
		if _, v, err := pair.Store.Get(context.Background(), "company.team", "k"); err != nil || v.V != int64(7) {
			t.Fatalf("after the table: %v, %v", v.V, err)
		}
		// An expired entry counts as missing for If-Match.
		do(t, "PUT", url+"2", "1", "ttl: 60")
		c.Advance(time.Minute)
		if r := do(t, "PUT", url+"2", "2", "If-Match: \"1\""); r.Status != 412 {
			t.Fatalf("If-Match on an expired entry = %d %s, want 412", r.Status, r.Body)
		}
		if r := do(t, "PUT", url+"2", "2", "If-None-Match: *"); r.Status != 200 {
			t.Fatalf("If-None-Match on an expired entry = %d %s, want 200", r.Status, r.Body)
		}
		// The client reports a failed If-Match as EPRECONDITION.
		err := ts.Client.Set(context.Background(), "company.team", "k", "8", client.SetOptions{IfVersion: 99})
		if kvflow.ErrorCode(err) != kvflow.EPRECONDITION {
			t.Fatalf("client Set with a stale version = %v, want EPRECONDITION", err)
		}
	})
}

func TestHead_MetadataAsHeaders_200_404_410(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/company.team/kv/"
		do(t, "PUT", base+"h", "42", "ttl: 3600", "description: the answer")
		r := do(t, "HEAD", base+"h", "")
		if r.Status != 200 || r.Body != "" || r.Header.Get("ETag") != `"1"` || r.Header.Get("KV-Type") != "NUMBER" ||
			r.Header.Get("KV-Description") != "the%20answer" || r.Header.Get("KV-Expires") != "2024-07-15T07:10:33.422Z" {
			t.Fatalf("HEAD = %d %q %v", r.Status, r.Body, r.Header)
		}
		if r := do(t, "HEAD", base+"nope", ""); r.Status != 404 {
			t.Fatalf("HEAD missing = %d", r.Status)
		}
		c.Advance(time.Hour)
		if r := do(t, "HEAD", base+"h", ""); r.Status != 410 {
			t.Fatalf("HEAD expired = %d", r.Status)
		}
	})
}

func TestIncrement_ConcurrentClients_ExactSum(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		const clients, each = 8, 15
		var wg sync.WaitGroup
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				cl := client.NewClient(ts.URL, "")
				for j := 0; j < each; j++ {
					by := storage.Value{Type: storage.NUMBER, V: int64(i + 1)}
					if _, _, err := cl.Increment(context.Background(), "company.team", "hits", by, "", ""); err != nil {
						t.Errorf("client %d: %v", i, err)
						return
					}
				}
			}(i)
		}
		wg.Wait()
		want := int64(each * clients * (clients + 1) / 2)
		e, v, err := pair.Store.Get(context.Background(), "company.team", "hits")
		if err != nil || v.V != want || e.Version != clients*each {
			t.Fatalf("hits = %v (version %d), %v; want %d at version %d", v.V, e.Version, err, want, clients*each)
		}
		base := ts.URL + "/api/v1/namespaces/company.team/kv/"
		r := do(t, "POST", base+"hits/increment", `{"by": -0.5}`)
		if want := fmt.Sprintf(`{"value":%d.5,"version":%d}`, want-1, clients*each+1); r.Status != 200 || r.Body != want {
			t.Fatalf("increment by -0.5 = %d %s, want %s", r.Status, r.Body, want)
		}
		if r := do(t, "POST", base+"fresh/increment", ""); r.Status != 200 || r.Body != `{"value":1,"version":1}` || r.Header.Get("ETag") != `"1"` {
			t.Fatalf("increment of a missing key = %d %s", r.Status, r.Body)
		}
		do(t, "PUT", base+"name", `"bob"`, "Content-Type: application/json")
		if r := do(t, "POST", base+"name/increment", `{"by": 1}`); r.Status != 409 || !strings.Contains(r.Message(), "STRING") {
			t.Fatalf("increment of a STRING = %d %s, want 409 naming STRING", r.Status, r.Body)
		}
		do(t, "PUT", base+"max", "9223372036854775807")
		if r := do(t, "POST", base+"max/increment", `{"by": 1}`); r.Status != 422 || !strings.Contains(r.Message(), "overflow") {
			t.Fatalf("increment past 64 bits = %d %s, want 422 overflow", r.Status, r.Body)
		}
		if r := do(t, "POST", base+"hits/increment", `{"by": "lots"}`); r.Status != 422 || !strings.Contains(r.Message(), "'by'") {
			t.Fatalf("increment by text = %d %s", r.Status, r.Body)
		}
		// ttl (whole seconds) and description apply on each increment that gives them.
		if r := do(t, "POST", base+"fresh/increment", `{"by": 2, "ttl": 60, "description": "two"}`); r.Status != 200 || r.Body != `{"value":3,"version":2}` {
			t.Fatalf("increment with ttl = %d %s", r.Status, r.Body)
		}
		if e, err := pair.Store.Stat(context.Background(), "company.team", "fresh"); err != nil || e.Description != "two" || e.Expires == nil || !e.Expires.Equal(c.Now().Add(time.Minute).Truncate(time.Microsecond)) {
			t.Fatalf("after increment with ttl: %+v, %v", e, err)
		}
	})
}

func TestExactNumbers_ThroughTheAPI(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/company.team/kv/"
		for i, n := range []string{"12345678901234567890", "0.1", "3.14159265358979323846264338327950288419716939937510", "-98765432109876543210.000000000000000000001"} {
			for _, ct := range []string{"text/plain", "application/json"} {
				key := fmt.Sprintf("n%d", i)
				if r := do(t, "PUT", base+key, n, "Content-Type: "+ct); r.Status != 200 {
					t.Fatalf("PUT %s (%s) = %d %s", n, ct, r.Status, r.Body)
				}
				if r := do(t, "GET", base+key, ""); r.Body != `{"type":"NUMBER","value":`+n+`}` {
					t.Errorf("GET %s (%s) = %s", n, ct, r.Body)
				}
				v, err := ts.Client.GetValue(context.Background(), "company.team", key)
				if err != nil || v.Text() != n {
					t.Errorf("client GetValue %s = %q, %v", n, v.Text(), err)
				}
			}
		}
		do(t, "PUT", base+"doc", `{"id": 12345678901234567890, "rate": 0.1}`, "Content-Type: application/json")
		if r := do(t, "GET", base+"doc", ""); r.Body != `{"type":"JSON","value":{"id":12345678901234567890,"rate":0.1}}` {
			t.Errorf("GET JSON with a big id = %s", r.Body)
		}
	})
}

func TestSetMany_AllOrNothing_OverTheAPI(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/company.team/kv"
		bad := `[{"key":"a","value":1},{"key":"b","value":"x","ttl":"soon"},{"key":"c","value":true}]`
		if r := do(t, "PUT", base, bad, "Content-Type: application/json"); r.Status != 422 || !strings.Contains(r.Message(), "Entry 1 (key 'b')") || !strings.Contains(r.Message(), "TTL") {
			t.Fatalf("PUT a batch with a bad TTL = %d %s", r.Status, r.Body)
		}
		if r := do(t, "GET", base, ""); r.Body != "[]" {
			t.Fatalf("after a refused batch the namespace holds %s", r.Body)
		}
		good := `[{"key":"a","value":12345678901234567890,"ttl":3600},{"key":"b","value":"PT5M","type":"DURATION","description":"five"},{"key":"c","value":{"x":[1,2]}}]`
		if r := do(t, "PUT", base, good, "Content-Type: application/json"); r.Status != 200 || r.Body != `[{"key":"a","version":1},{"key":"b","version":1},{"key":"c","version":1}]` {
			t.Fatalf("PUT a good batch = %d %s", r.Status, r.Body)
		}
		for key, want := range map[string]string{"a": `{"type":"NUMBER","value":12345678901234567890}`, "b": `{"type":"DURATION","value":"PT5M"}`, "c": `{"type":"JSON","value":{"x":[1,2]}}`} {
			if r := do(t, "GET", base+"/"+key, ""); r.Body != want {
				t.Errorf("GET %s = %s, want %s", key, r.Body, want)
			}
		}
		if e, _ := pair.Store.Stat(context.Background(), "company.team", "a"); e == nil || e.Expires == nil || !e.Expires.Equal(c.Now().Add(time.Hour).Truncate(time.Microsecond)) {
			t.Errorf("a's expiry = %+v, want in an hour", e)
		}
		if r := do(t, "PUT", base, `{"a": 1, "b": null}`, "Content-Type: application/json"); r.Status != 422 || !strings.Contains(r.Message(), "'b'") {
			t.Fatalf("PUT a map batch with a null = %d %s", r.Status, r.Body)
		}
	})
}

func TestExportImport_OverTheAPI(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/company.team/kv"
		do(t, "PUT", base+"/big", "12345678901234567890", "ttl: PT1H", "description: big")
		do(t, "PUT", ts.URL+"/api/v1/namespaces/company.team.sub/kv/s", `"x"`, "Content-Type: application/json")
		r := do(t, "GET", base+"/export?includeChildren=true", "")
		if r.Status != 200 || r.Header.Get("Content-Type") != "application/x-ndjson" || strings.Count(r.Body, "\n") != 2 ||
			!strings.Contains(r.Body, `"value":12345678901234567890,"description":"big","expirationDate":"2024-07-15T07:10:33.422Z"`) {
			t.Fatalf("export = %d %s", r.Status, r.Body)
		}
		imp := do(t, "POST", ts.URL+"/api/v1/namespaces/other/kv/import?namespaceMap=company.team=other&namespaceMap=company.team.sub=other.sub", r.Body)
		if imp.Status != 200 || imp.Body != `{"written":2,"skipped":0,"expired":0}` {
			t.Fatalf("import = %d %s", imp.Status, imp.Body)
		}
		if g := do(t, "GET", ts.URL+"/api/v1/namespaces/other/kv/big", ""); g.Body != `{"type":"NUMBER","value":12345678901234567890}` {
			t.Errorf("imported big = %s", g.Body)
		}
		// Lines outside the namespace of the route are refused.
		bad := do(t, "POST", ts.URL+"/api/v1/namespaces/elsewhere/kv/import", r.Body)
		if bad.Status != 422 || !strings.Contains(bad.Body, "Line 1") {
			t.Errorf("import into another namespace = %d %s", bad.Status, bad.Body)
		}
	})
}

// An export that cannot read a value fails visibly: before any line is out,
// an error answer; after, a last line {"error": …} and a trailer, which the
// client (kvflow kv export --server) turns into an error.
func TestExport_UnreadableValue_FailsVisibly(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ctx := context.Background()
		ts := startServer(t, pair, Config{})
		breakKey := func(ns, key string) { // its object gone (metadata read: no value cached)
			page, err := pair.Store.List(ctx, ns, storage.ListOptions{Prefix: key})
			if err != nil || len(page.Entries) == 0 {
				t.Fatal(page, err)
			}
			if err := pair.Bucket.Delete(ctx, page.Entries[0].Object); err != nil {
				t.Fatal(err)
			}
		}
		seed(t, pair.Store, "small", "a", str("x"))
		seed(t, pair.Store, "small", "b", str("y"))
		breakKey("small", "b")
		r := do(t, "GET", ts.URL+"/api/v1/namespaces/small/kv/export", "")
		if r.Status < 400 || !strings.Contains(r.Body, `"message"`) {
			t.Fatalf("export with nothing out yet = %d %q, want an error answer", r.Status, r.Body)
		}

		big := strings.Repeat("v", 1000)
		for i := range 200 { // past the export's 64 KiB buffer
			seed(t, pair.Store, "large", fmt.Sprintf("k%03d", i), str(big))
		}
		breakKey("large", "k199")
		var out bytes.Buffer
		n, err := ts.Client.Export(ctx, "large", "", false, &out)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if err == nil || !strings.Contains(err.Error(), "stopped after 199 entries") || n != 199 || len(lines) != 200 || !strings.HasPrefix(lines[199], `{"error":`) {
			t.Fatalf("export cut by an error: %d entries, %d lines, %v; last line %.80q", n, len(lines), err, lines[len(lines)-1])
		}
		for i, l := range lines[:199] { // every entry before the unreadable one, each whole
			var e struct{ Key string }
			if json.Unmarshal([]byte(l), &e) != nil || e.Key != fmt.Sprintf("k%03d", i) {
				t.Fatalf("line %d: %.80q", i+1, l)
			}
		}
		if _, err := pair.Store.Import(ctx, &out, storage.ImportOptions{NamespaceMap: map[string]string{"large": "copy"}}); err == nil {
			t.Fatal("importing the cut export succeeded, want its error line refused")
		}
	})
}
