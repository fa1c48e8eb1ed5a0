package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
)

// With a token, every API route and /metrics need it; health checks do not.
func TestAuth_TokenRequired(t *testing.T) {
	ts := startServer(t, testpair.Local(t, noOpts), Config{Token: "s3cret-token"})
	kv := ts.URL + "/api/v1/namespaces/company.team/kv/k"
	for _, tc := range []struct {
		name, method, url string
		headers           []string
		status            int
	}{
		{"NoHeader", "PUT", kv, nil, 401},
		{"WrongToken", "PUT", kv, []string{"Authorization: Bearer nope"}, 401},
		{"PrefixOfToken", "PUT", kv, []string{"Authorization: Bearer s3cret"}, 401},
		{"Basic", "PUT", kv, []string{"Authorization: Basic czNjcmV0LXRva2Vu"}, 401},
		{"RightToken", "PUT", kv, []string{"Authorization: Bearer s3cret-token"}, 200},
		{"GetRightToken", "GET", kv, []string{"Authorization: Bearer s3cret-token"}, 200},
		{"GetNoHeader", "GET", kv, nil, 401},
		{"ListNoHeader", "GET", ts.URL + "/api/v1/namespaces", nil, 401},
		{"UnknownRouteNoHeader", "GET", ts.URL + "/api/v1/whatever", nil, 401},
		{"OpenAPINoHeader", "GET", ts.URL + "/api/v1/openapi.json", nil, 401},
		{"MetricsNoHeader", "GET", ts.URL + "/metrics", nil, 401},
		{"MetricsRightToken", "GET", ts.URL + "/metrics", []string{"Authorization: Bearer s3cret-token"}, 200},
		{"Healthz", "GET", ts.URL + "/healthz", nil, 200},
		{"Readyz", "GET", ts.URL + "/readyz", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, tc.url, "1", tc.headers...)
			if r.Status != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.url, r.Status, r.Body, tc.status)
			}
			if tc.status == 401 {
				if r.Header.Get("WWW-Authenticate") == "" || !strings.Contains(r.Body, "Authorization: Bearer") {
					t.Fatalf("401 without a challenge or an explanation: %v %s", r.Header, r.Body)
				}
			}
		})
	}
	ctx := context.Background()
	if _, _, err := ts.Client.Get(ctx, "company.team", "k"); err != nil {
		t.Fatalf("client with the token: %v", err)
	}
	if _, _, err := client.NewClient(ts.URL, "wrong").Get(ctx, "company.team", "k"); kvflow.ErrorCode(err) != kvflow.EUNAUTHORIZED {
		t.Fatalf("client with a wrong token: %v, want EUNAUTHORIZED", err)
	}
}

// Without a token, no header is needed.
func TestAuth_NoToken_Open(t *testing.T) {
	ts := startServer(t, testpair.Local(t, noOpts), Config{})
	if r := do(t, "PUT", ts.URL+"/api/v1/namespaces/ns/kv/k", "1"); r.Status != 200 {
		t.Fatalf("PUT without a token configured = %d %s", r.Status, r.Body)
	}
	if r := do(t, "GET", ts.URL+"/metrics", ""); r.Status != 200 {
		t.Fatalf("GET /metrics = %d", r.Status)
	}
}

// Without a token the server refuses a non-loopback address unless insecure.
func TestListen_NonLoopbackWithoutToken_Refused(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	s := New(Config{Store: pair.Store, DB: pair.DB, SweepInterval: -1})
	err := s.ListenAndServe(context.Background(), "0.0.0.0:0")
	if kvflow.ErrorCode(err) != kvflow.EFORBIDDEN || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("ListenAndServe(0.0.0.0:0) without a token = %v, want EFORBIDDEN mentioning --insecure", err)
	}
	for _, addr := range []string{":8080", "0.0.0.0:8080", "[::]:8080", "192.0.2.1:80"} {
		if err := s.checkExposure(addr); kvflow.ErrorCode(err) != kvflow.EFORBIDDEN {
			t.Errorf("checkExposure(%s) = %v, want EFORBIDDEN", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2:1"} {
		if err := s.checkExposure(addr); err != nil {
			t.Errorf("checkExposure(%s) = %v, want nil", addr, err)
		}
	}
	for _, cfg := range []Config{{Token: "t"}, {Insecure: true}} {
		if err := New(cfg).checkExposure("0.0.0.0:8080"); err != nil {
			t.Errorf("checkExposure with %+v = %v, want nil", cfg, err)
		}
	}
}

// Request logs carry method, path, status and duration, never a value.
func TestRequestLog_NeverHoldsValues(t *testing.T) {
	ts := startServer(t, testpair.Local(t, noOpts), Config{})
	const marker = "VALUE-MARKER-7f3a9c"
	do(t, "PUT", ts.URL+"/api/v1/namespaces/ns/kv/k?type=STRING", marker, "description: desc-"+marker)
	do(t, "PUT", ts.URL+"/api/v1/namespaces/ns/kv/j", `{"x":"`+marker+`"}`, "Content-Type: application/json")
	do(t, "GET", ts.URL+"/api/v1/namespaces/ns/kv/k", "")
	do(t, "GET", ts.URL+"/api/v1/namespaces/ns/kv/j/detail", "")
	do(t, "PUT", ts.URL+"/api/v1/namespaces/ns/kv/bad", `{"x":"`+marker, "Content-Type: application/json")
	logs := ts.Logs.String()
	if strings.Contains(logs, marker) {
		t.Fatalf("a value reached the request log:\n%s", logs)
	}
	for _, want := range []string{"method=PUT", "path=/api/v1/namespaces/ns/kv/k", "status=200", "status=422", "duration="} {
		if !strings.Contains(logs, want) {
			t.Errorf("request log lacks %q:\n%s", want, logs)
		}
	}
}

// On shutdown, a request already in flight finishes and is answered.
func TestServe_Shutdown_InFlightRequestFinishes(t *testing.T) {
	ts := startServer(t, testpair.Local(t, noOpts), Config{})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", ts.URL+"/api/v1/namespaces/ns/kv/slow", pr)
	req.Header.Set("Content-Type", "text/plain")
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{0, err}
			return
		}
		resp.Body.Close()
		done <- result{resp.StatusCode, nil}
	}()
	io.WriteString(pw, "hello ")
	time.Sleep(200 * time.Millisecond) // the request is being read
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	time.Sleep(200 * time.Millisecond) // shutdown has begun
	select {
	case err := <-stopped:
		t.Fatalf("the server stopped with a request in flight: %v", err)
	default:
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.URL, "http://"), time.Second); err == nil {
		t.Error("the server still accepts connections while shutting down")
	}
	io.WriteString(pw, "world")
	pw.Close()
	if r := <-done; r.err != nil || r.status != 200 {
		t.Fatalf("in-flight PUT = %d, %v; want 200", r.status, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve returned %v after a graceful shutdown", err)
	}
	_, v, err := ts.Pair.Store.Get(context.Background(), "ns", "slow")
	if err != nil || v.V != "hello world" {
		t.Fatalf("stored value = %v, %v; want hello world", v, err)
	}
}

// KV operations move the per-namespace counters and latency histograms.
func TestMetrics_CountKVOperations(t *testing.T) {
	ts := startServer(t, testpair.Local(t, noOpts), Config{})
	base := ts.URL + "/api/v1/namespaces/company.team/kv"
	do(t, "PUT", base+"/a", "1")
	do(t, "PUT", base+"/a", "2")
	do(t, "PUT", base+"/b", "3")
	do(t, "GET", base+"/a", "")
	do(t, "GET", base+"/missing", "")
	do(t, "DELETE", base+"/a", "")
	do(t, "DELETE", base+"/a", "")
	do(t, "DELETE", base, `{"keys":["b"]}`)
	m := do(t, "GET", ts.URL+"/metrics", "").Body
	for _, want := range []string{
		`kvflow_kv_keys_updated_total{namespace="company.team"} 3`,
		`kvflow_kv_keys_retrieved_total{namespace="company.team"} 1`,
		`kvflow_kv_keys_deleted_total{namespace="company.team"} 2`,
		`kvflow_kv_operation_duration_seconds_count{operation="kv_set"} 3`,
		`kvflow_kv_operation_duration_seconds_count{operation="kv_get"} 2`,
		`kvflow_http_request_duration_seconds_count{code="200",method="PUT",route="/api/v1/namespaces/{namespace}/kv/{key}"} 3`,
		`kvflow_http_request_duration_seconds_count{code="404",method="GET",route="/api/v1/namespaces/{namespace}/kv/{key}"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "kvflow_"))
		}
	}
}

// Namespaces come from KV entries and explicit creation; creating one twice conflicts.
func TestNamespaces_ListAndCreate(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		do(t, "PUT", ts.URL+"/api/v1/namespaces/company.team/kv/a", "1")
		do(t, "PUT", ts.URL+"/api/v1/namespaces/company.team/kv/b", "1")
		r := do(t, "POST", ts.URL+"/api/v1/namespaces", `{"id":"company.data"}`, "Content-Type: application/json")
		if r.Status != 201 || r.Body != `{"id":"company.data","flows":0,"keys":0,"keyCount":0,"totalKeyCount":0,"parent":"company"}` {
			t.Fatalf("POST namespace = %d %s", r.Status, r.Body)
		}
		if r := do(t, "POST", ts.URL+"/api/v1/namespaces", `{"id":"company.data"}`); r.Status != 409 || !strings.Contains(r.Body, "'company.data' already exists") {
			t.Fatalf("POST namespace twice = %d %s, want 409", r.Status, r.Body)
		}
		if r := do(t, "POST", ts.URL+"/api/v1/namespaces", "id=form.made", "Content-Type: application/x-www-form-urlencoded"); r.Status != 201 {
			t.Fatalf("POST namespace as a form = %d %s", r.Status, r.Body)
		}
		for _, body := range []string{`{"id":"Bad"}`, `{"id":""}`, `{}`, `nope`} {
			if r := do(t, "POST", ts.URL+"/api/v1/namespaces", body); r.Status != 422 {
				t.Errorf("POST namespace %s = %d %s, want 422", body, r.Status, r.Body)
			}
		}
		r = do(t, "GET", ts.URL+"/api/v1/namespaces", "")
		want := `[{"id":"company","flows":0,"keys":0,"keyCount":0,"totalKeyCount":2,"implicit":true},` +
			`{"id":"company.data","flows":0,"keys":0,"keyCount":0,"totalKeyCount":0,"parent":"company"},` +
			`{"id":"company.team","flows":0,"keys":2,"keyCount":2,"totalKeyCount":2,"parent":"company"},` +
			`{"id":"form","flows":0,"keys":0,"keyCount":0,"totalKeyCount":0,"implicit":true},` +
			`{"id":"form.made","flows":0,"keys":0,"keyCount":0,"totalKeyCount":0,"parent":"form"}]`
		if r.Status != 200 || r.Body != want {
			t.Fatalf("GET namespaces = %d %s, want %s", r.Status, r.Body, want)
		}
		// An allow-list hides and refuses the others.
		ts2 := startServer(t, pair, Config{Namespaces: []string{"company.team"}})
		if r := do(t, "GET", ts2.URL+"/api/v1/namespaces", ""); r.Body != `[{"id":"company.team","flows":0,"keys":2,"keyCount":2,"totalKeyCount":2,"parent":"company"}]` {
			t.Fatalf("restricted GET namespaces = %s", r.Body)
		}
		if r := do(t, "POST", ts2.URL+"/api/v1/namespaces", `{"id":"elsewhere"}`); r.Status != 403 {
			t.Fatalf("restricted POST namespace = %d %s, want 403", r.Status, r.Body)
		}
	})
}

// Purge removes expired entries, or all matching ones; restricted servers
// need named, allowed namespaces.
func TestPurge_ExpiredAndAll(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	c := newClock()
	pair.Store = newStoreWithClock(pair, c)
	ts := startServer(t, pair, Config{})
	ctx := context.Background()
	do(t, "PUT", ts.URL+"/api/v1/namespaces/p.one/kv/old", "1", "ttl: PT1M")
	do(t, "PUT", ts.URL+"/api/v1/namespaces/p.one/kv/keep", "1")
	do(t, "PUT", ts.URL+"/api/v1/namespaces/p.two/kv/old", "1", "ttl: PT1M")
	c.Advance(2 * time.Minute)
	res, err := ts.Client.Purge(ctx, PurgeRequest{Namespaces: []string{"p.one"}})
	if err != nil || res.Total != 1 || res.Purged["p.one"] != 1 {
		t.Fatalf("Purge p.one = %+v, %v; want 1", res, err)
	}
	res, err = ts.Client.Purge(ctx, PurgeRequest{})
	if err != nil || res.Total != 1 || res.Purged["p.two"] != 1 {
		t.Fatalf("Purge all namespaces = %+v, %v; want p.two: 1", res, err)
	}
	res, err = ts.Client.Purge(ctx, PurgeRequest{Namespaces: []string{"p"}, IncludeChildren: true, All: true})
	if err != nil || res.Total != 1 || res.Purged["p.one"] != 1 {
		t.Fatalf("Purge all of p.* = %+v, %v; want p.one: 1", res, err)
	}
	ts2 := startServer(t, pair, Config{Namespaces: []string{"p.one"}})
	for _, req := range []PurgeRequest{{}, {Namespaces: []string{"p.two"}}, {Namespaces: []string{"p.one"}, IncludeChildren: true}} {
		if _, err := ts2.Client.Purge(ctx, req); kvflow.ErrorCode(err) != kvflow.EFORBIDDEN {
			t.Errorf("restricted Purge %+v = %v, want EFORBIDDEN", req, err)
		}
	}
	if _, err := ts2.Client.Purge(ctx, PurgeRequest{Namespaces: []string{"p.one"}}); err != nil {
		t.Errorf("restricted Purge of an allowed namespace = %v", err)
	}
	if r := do(t, "POST", ts.URL+"/api/v1/kv/purge", `{"bogus":1}`); r.Status != 422 {
		t.Errorf("Purge with an unknown field = %d %s, want 422", r.Status, r.Body)
	}
}

// The sweeper runs on its own at the configured interval.
func TestSweeper_PurgesOnInterval(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	c := newClock()
	pair.Store = newStoreWithClock(pair, c)
	ts := startServer(t, pair, Config{SweepInterval: 20 * time.Millisecond, SweepBatch: 2})
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		do(t, "PUT", ts.URL+"/api/v1/namespaces/sweep/kv/"+k, "1", "ttl: PT1S")
	}
	c.Advance(time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := do(t, "GET", ts.URL+"/metrics", "").Body
		if strings.Contains(m, `kvflow_kv_keys_expired_purged_total{namespace="sweep"} 5`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweeper did not purge 5 entries in 10s:\n%s", grepLines(m, "purged"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := pair.DB.Namespaces(context.Background(), c.Now().Add(-time.Hour)); len(n) != 0 {
		t.Fatalf("entries left after the sweep: %v", n)
	}
}
