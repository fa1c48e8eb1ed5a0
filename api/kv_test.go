package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/s3/s3test"
)

// The seed's curl session, call for call, with byte-exact answers.
func TestSeedCurlSession_AnswersAsDocumented(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/company.team/kv"
		json := "Content-Type: application/json"

		// Times as in the seed's list output.
		c.Set(time.Date(2024, 7, 15, 4, 37, 18, 196_000_000, time.UTC))
		if r := do(t, "PUT", base+"/test_key", `"Hello"`, json); r.Status != 200 || r.Body != "" {
			t.Fatalf("PUT test_key = %d %q, want 200 and an empty body", r.Status, r.Body)
		}
		c.Set(time.Date(2024, 7, 15, 6, 10, 33, 422_000_000, time.UTC))
		if r := do(t, "PUT", base+"/my_key", `"Hi"`, json); r.Status != 200 || r.Body != "" {
			t.Fatalf("PUT my_key = %d %q, want 200 and an empty body", r.Status, r.Body)
		}
		c.Set(time.Date(2024, 7, 15, 6, 11, 8, 911_000_000, time.UTC))
		// curl -X PUT -H "Content-Type: application/json" http://localhost:8080/api/v1/namespaces/company.team/kv/my_key -d '"Hello World"'
		if r := do(t, "PUT", base+"/my_key", `"Hello World"`, json); r.Status != 200 || r.Body != "" {
			t.Fatalf("PUT my_key = %d %q, want 200 and an empty body", r.Status, r.Body)
		}

		// curl -X GET -H "Content-Type: application/json" http://localhost:8080/api/v1/namespaces/company.team/kv/my_key
		r := do(t, "GET", base+"/my_key", "", json)
		if got, want := r.Body, `{"type":"STRING","value":"Hello World"}`; r.Status != 200 || got != want {
			t.Fatalf("GET my_key = %d %s, want 200 %s", r.Status, got, want)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET Content-Type = %q, want application/json", ct)
		}

		// curl -X GET -H "Content-Type: application/json" http://localhost:8080/api/v1/namespaces/company.team/kv
		r = do(t, "GET", base, "", json)
		want := `[{"key":"my_key","type":"STRING","version":2,"creationDate":"2024-07-15T06:10:33.422Z","updateDate":"2024-07-15T06:11:08.911Z"},` +
			`{"key":"test_key","type":"STRING","version":1,"creationDate":"2024-07-15T04:37:18.196Z","updateDate":"2024-07-15T04:37:18.196Z"}]`
		if r.Status != 200 || r.Body != want {
			t.Fatalf("GET list = %d\n%s\nwant\n%s", r.Status, r.Body, want)
		}

		// curl -X DELETE -H "Content-Type: application/json" http://localhost:8080/api/v1/namespaces/company.team/kv/my_key
		if r := do(t, "DELETE", base+"/my_key", "", json); r.Status != 200 || r.Body != "true" {
			t.Fatalf("DELETE my_key = %d %q, want 200 true", r.Status, r.Body)
		}
		if r := do(t, "DELETE", base+"/my_key", "", json); r.Status != 200 || r.Body != "false" {
			t.Fatalf("second DELETE my_key = %d %q, want 200 false", r.Status, r.Body)
		}
		r = do(t, "GET", base+"/my_key", "", json)
		if want := `{"message":"No value found for key 'my_key' in namespace 'company.team'."}`; r.Status != 404 || r.Body != want {
			t.Fatalf("GET after DELETE = %d %s, want 404 %s", r.Status, r.Body, want)
		}
	})
}

// Each error code's status, with a message naming what went wrong.
func TestKV_StatusCodes(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{Namespaces: []string{"company.*"}, MaxBodyBytes: 1024})
		base := ts.URL + "/api/v1/namespaces/company.team/kv"
		do(t, "PUT", base+"/present", "1")
		do(t, "PUT", base+"/short", "1", "ttl: PT1M")
		c.Advance(time.Minute)
		for _, tc := range []struct {
			name         string
			method, path string
			body         string
			headers      []string
			status       int
			msgHas       []string
		}{
			{"OK", "GET", "/present", "", nil, 200, nil},
			{"NotFound", "GET", "/missing", "", nil, 404, []string{"'missing'", "'company.team'"}},
			{"Expired", "GET", "/short", "", nil, 410, []string{"expired", "'short'", "'company.team'"}},
			{"BadKey", "GET", "/bad$key", "", nil, 422, []string{`"bad$key"`, "'company.team'"}},
			{"BadKeyPut", "PUT", "/bad$key", "1", nil, 422, []string{`"bad$key"`, "'company.team'"}},
			{"BadKeyDelete", "DELETE", "/bad$key", "", nil, 422, []string{`"bad$key"`}},
			{"Conflict", "PUT", "/present", "2", []string{"overwrite: false"}, 409, []string{"'present'", "'company.team'", "overwrite"}},
			{"ConflictQuery", "PUT", "/present?overwrite=false", "2", nil, 409, []string{"'present'"}},
			{"TooLarge", "PUT", "/big", strings.Repeat("x", 1025), nil, 413, []string{"'big'", "'company.team'", "1024"}},
			{"BadTTL", "PUT", "/k", "1", []string{"ttl: 30 days"}, 422, []string{"30 days", "'k'", "'company.team'"}},
			{"InvalidJSON", "PUT", "/k", "{bad", []string{"Content-Type: application/json"}, 422, []string{"JSON", "'k'", "'company.team'"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := do(t, tc.method, base+tc.path, tc.body, tc.headers...)
				if r.Status != tc.status {
					t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, r.Status, r.Body, tc.status)
				}
				for _, s := range tc.msgHas {
					if !strings.Contains(r.Message(), s) {
						t.Errorf("%s %s: message %s does not contain %s", tc.method, tc.path, r.Body, s)
					}
				}
			})
		}
		t.Run("BadNamespace", func(t *testing.T) {
			r := do(t, "GET", ts.URL+"/api/v1/namespaces/Company/kv/k", "")
			if r.Status != 422 || !strings.Contains(r.Message(), `"Company"`) {
				t.Fatalf("GET in namespace Company = %d %s, want 422 naming it", r.Status, r.Body)
			}
		})
		t.Run("Forbidden", func(t *testing.T) {
			r := do(t, "PUT", ts.URL+"/api/v1/namespaces/other/kv/k", "1")
			if r.Status != 403 || !strings.Contains(r.Body, "'other'") {
				t.Fatalf("PUT in namespace other = %d %s, want 403 naming it", r.Status, r.Body)
			}
		})
		t.Run("UnknownRoute", func(t *testing.T) {
			r := do(t, "GET", ts.URL+"/api/v1/nothing", "")
			if r.Status != 404 || !strings.HasPrefix(r.Body, `{"message":`) {
				t.Fatalf("GET /api/v1/nothing = %d %s, want a JSON 404", r.Status, r.Body)
			}
		})
	})
}

// statusOf is the one code-to-status map; client.CodeOf reads it back.
func TestStatusOf_EveryCode(t *testing.T) {
	for code, status := range map[string]int{
		kvflow.EINVALID: 422, kvflow.ENOTFOUND: 404, kvflow.EEXPIRED: 410, kvflow.ECONFLICT: 409, kvflow.EPRECONDITION: 412,
		kvflow.EFORBIDDEN: 403, kvflow.EUNAUTHORIZED: 401, kvflow.ETOOLARGE: 413,
		kvflow.EUNAVAILABLE: 503, kvflow.EINTERNAL: 500, kvflow.ETIMEOUT: 504, "something else": 500,
	} {
		if got := statusOf(code); got != status {
			t.Errorf("statusOf(%q) = %d, want %d", code, got, status)
		}
		if code != "something else" {
			if got := client.CodeOf(status); got != code {
				t.Errorf("client.CodeOf(%d) = %q, want %q", status, got, code)
			}
		}
	}
}

// With the object store down, writes and readiness answer 503 and say why.
func TestKV_ObjectStoreDown_Unavailable(t *testing.T) {
	m := testsvcMinIO(t)
	pair := testpair.New("sqlite+private-minio", testpair.Local(t, noOpts).DB, s3test.Open(t, m.S3URL()), noOpts)
	ts := startServer(t, pair, Config{})
	if r := do(t, "GET", ts.URL+"/readyz", ""); r.Status != 200 {
		t.Fatalf("readyz with services up = %d %s", r.Status, r.Body)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Start() })
	r := do(t, "PUT", ts.URL+"/api/v1/namespaces/ns/kv/k", "1")
	if r.Status != 503 || !strings.Contains(r.Body, "object store") {
		t.Fatalf("PUT with MinIO down = %d %s, want 503 about the object store", r.Status, r.Body)
	}
	if r := do(t, "GET", ts.URL+"/readyz", ""); r.Status != 503 || !strings.Contains(r.Body, "object store") {
		t.Fatalf("readyz with MinIO down = %d %s, want 503", r.Status, r.Body)
	}
	if r := do(t, "GET", ts.URL+"/healthz", ""); r.Status != 200 {
		t.Fatalf("healthz with MinIO down = %d, want 200 (the process is alive)", r.Status)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if r := do(t, "PUT", ts.URL+"/api/v1/namespaces/ns/kv/k", "1"); r.Status != 200 {
		t.Fatalf("PUT after MinIO is back = %d %s", r.Status, r.Body)
	}
}

// PUT bodies × content types × explicit types → the stored type and value.
func TestPut_BodiesAndContentTypes_StoredType(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		const js, text, form = "application/json", "text/plain", "application/x-www-form-urlencoded"
		for i, tc := range []struct {
			contentType string
			typ         string // "?type=X", "kv-type: X" or "type: X"
			body        string
			want        string // GET body
		}{
			{js, "", `"Hello World"`, `{"type":"STRING","value":"Hello World"}`},
			{js, "", `42`, `{"type":"NUMBER","value":42}`},
			{js, "", `123.45`, `{"type":"NUMBER","value":123.45}`},
			{js, "", `-7e2`, `{"type":"NUMBER","value":-700}`},
			{js, "", `true`, `{"type":"BOOLEAN","value":true}`},
			{js, "", `{"name":"John Doe","age":32,"address":{"city":"Paris"}}`, `{"type":"JSON","value":{"address":{"city":"Paris"},"age":32,"name":"John Doe"}}`},
			{js, "", `[1,"x",null]`, `{"type":"JSON","value":[1,"x",null]}`},
			{js, "", `"2024-07-15"`, `{"type":"STRING","value":"2024-07-15"}`},
			{js, "", `"<a&b>"`, `{"type":"STRING","value":"<a&b>"}`},
			{"application/json; charset=utf-8", "", `"é"`, `{"type":"STRING","value":"é"}`},
			{text, "", `Hello World`, `{"type":"STRING","value":"Hello World"}`},
			{text, "", `42`, `{"type":"NUMBER","value":42}`},
			{text, "", `-1.5`, `{"type":"NUMBER","value":-1.5}`},
			{text, "", `true`, `{"type":"BOOLEAN","value":true}`},
			{text, "", `2024-07-15`, `{"type":"DATE","value":"2024-07-15"}`},
			{text, "", `2024-07-15T06:10:33.422Z`, `{"type":"DATETIME","value":"2024-07-15T06:10:33.422Z"}`},
			{text, "", `PT5S`, `{"type":"DURATION","value":"PT5S"}`},
			{text, "", `{"a":1}`, `{"type":"JSON","value":{"a":1}}`},
			{text, "", `[1,2]`, `{"type":"JSON","value":[1,2]}`},
			{text, "", `"quoted"`, `{"type":"STRING","value":"quoted"}`},
			{text, "", `1.2.3`, `{"type":"STRING","value":"1.2.3"}`},
			{text, "", `line1` + "\n" + `"line2"`, `{"type":"STRING","value":"line1\n\"line2\""}`},
			{"", "", `P1DT5S`, `{"type":"DURATION","value":"P1DT5S"}`},
			{"", "", `Hello Woprld`, `{"type":"STRING","value":"Hello Woprld"}`},
			{form, "", `42`, `{"type":"NUMBER","value":42}`},
			{text, "?type=STRING", `42`, `{"type":"STRING","value":"42"}`},
			{text, "kv-type: STRING", `true`, `{"type":"STRING","value":"true"}`},
			{js, "type: STRING", `"P1D"`, `{"type":"STRING","value":"P1D"}`},
			{js, "?type=DATE", `"2024-07-15"`, `{"type":"DATE","value":"2024-07-15"}`},
			{js, "kv-type: number", `"123.45"`, `{"type":"NUMBER","value":123.45}`},
			{js, "?type=STRING", `42`, `{"type":"STRING","value":"42"}`},
			{text, "?type=JSON", `[1,2]`, `{"type":"JSON","value":[1,2]}`},
			{text, "type: BOOLEAN", `TRUE`, `{"type":"BOOLEAN","value":true}`},
			{text, "type: DURATION", `PT1H30M`, `{"type":"DURATION","value":"PT1H30M"}`},
			{text, "?type=DATETIME", `2024-07-15T08:10:33+02:00`, `{"type":"DATETIME","value":"2024-07-15T06:10:33Z"}`},
		} {
			name := fmt.Sprintf("%d_%s%s_%s", i, tc.contentType, tc.typ, tc.body)
			t.Run(name, func(t *testing.T) {
				path := fmt.Sprintf("%s/api/v1/namespaces/types/kv/k%d", ts.URL, i)
				var headers []string
				if tc.contentType != "" {
					headers = append(headers, "Content-Type: "+tc.contentType)
				}
				put := path
				if strings.HasPrefix(tc.typ, "?") {
					put += tc.typ
				} else if tc.typ != "" {
					headers = append(headers, tc.typ)
				}
				if r := doBody(t, "PUT", put, tc.body, tc.contentType == "", headers...); r.Status != 200 {
					t.Fatalf("PUT = %d %s", r.Status, r.Body)
				}
				if r := do(t, "GET", path, ""); r.Status != 200 || r.Body != tc.want {
					t.Fatalf("GET = %d %s, want %s", r.Status, r.Body, tc.want)
				}
			})
		}
		for i, tc := range []struct {
			contentType, typ, body, msgHas string
		}{
			{text, "?type=NUMBER", "abc", "Value (STRING, 3 bytes, sha256:ba7816bf) is not a valid NUMBER"},
			{text, "?type=BOGUS", "1", `"BOGUS" is unknown`},
			{js, "", "{bad", "not valid JSON"},
			{js, "", "null", "null"},
			{js, "", "", "not valid JSON"},
			{js, "", `"a" "b"`, "not valid JSON"},
			{js, "?type=DATE", `"2024-13-45"`, "not a valid DATE"},
			{"image/png", "", "x", `"image/png" is not supported`},
			{text, "", "\xff\xfe", "UTF-8"},
		} {
			t.Run(fmt.Sprintf("Refused_%d_%s", i, tc.msgHas), func(t *testing.T) {
				path := fmt.Sprintf("%s/api/v1/namespaces/types/kv/bad%d", ts.URL, i)
				r := do(t, "PUT", path+tc.typ, tc.body, "Content-Type: "+tc.contentType)
				if r.Status != 422 || !strings.Contains(r.Message(), tc.msgHas) || !strings.Contains(r.Message(), "'types'") {
					t.Fatalf("PUT %q as %s%s = %d %s, want 422 with %q and the namespace", tc.body, tc.contentType, tc.typ, r.Status, r.Body, tc.msgHas)
				}
				if r := do(t, "GET", path, ""); r.Status != 404 {
					t.Fatalf("GET after a refused PUT = %d %s, want 404", r.Status, r.Body)
				}
			})
		}
	})
}

// doBody is do, optionally without any Content-Type header (Go's client adds none).
func doBody(tb testing.TB, method, url, body string, noContentType bool, headers ...string) response {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if noContentType {
		req.Header.Del("Content-Type")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// A ttl header sets the expiration; past it the key answers 410, leaves the
// list, and the sweeper purges it.
func TestPut_TTL_ExpiresThenGone(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/company.team/kv"
		if r := do(t, "PUT", base+"/session", `"abc"`, "Content-Type: application/json", "ttl: PT5M", "description: a session"); r.Status != 200 {
			t.Fatalf("PUT with ttl = %d %s", r.Status, r.Body)
		}
		do(t, "PUT", base+"/forever", "1")
		r := do(t, "GET", base+"/session/detail", "")
		want := `{"namespace":"company.team","key":"session","type":"STRING","description":"a session","version":1,` +
			`"creationDate":"2024-07-15T06:10:33.422Z","updateDate":"2024-07-15T06:10:33.422Z","expirationDate":"2024-07-15T06:15:33.422Z","value":"abc"}`
		if r.Status != 200 || r.Body != want {
			t.Fatalf("GET detail = %d\n%s\nwant\n%s", r.Status, r.Body, want)
		}
		if !strings.Contains(do(t, "GET", base, "").Body, `"expirationDate":"2024-07-15T06:15:33.422Z"`) {
			t.Fatal("list does not show the expiration date")
		}
		c.Advance(5*time.Minute - time.Millisecond)
		if r := do(t, "GET", base+"/session", ""); r.Status != 200 {
			t.Fatalf("GET just before expiry = %d %s", r.Status, r.Body)
		}
		c.Advance(time.Millisecond)
		r = do(t, "GET", base+"/session", "")
		if want := `{"message":"The requested value for key 'session' in namespace 'company.team' has expired."}`; r.Status != 410 || r.Body != want {
			t.Fatalf("GET at expiry = %d %s, want 410 %s", r.Status, r.Body, want)
		}
		if r := do(t, "GET", base, ""); !strings.HasPrefix(r.Body, `[{"key":"forever"`) || strings.Contains(r.Body, "session") {
			t.Fatalf("list after expiry = %s, want only forever", r.Body)
		}
		purged, err := ts.Server.Sweep(context.Background())
		if err != nil || purged["company.team"] != 1 {
			t.Fatalf("Sweep = %v, %v; want company.team: 1", purged, err)
		}
		if r := do(t, "GET", base+"/session", ""); r.Status != 404 {
			t.Fatalf("GET after the sweep = %d %s, want 404", r.Status, r.Body)
		}
		if m := do(t, "GET", ts.URL+"/metrics", "").Body; !strings.Contains(m, `kvflow_kv_keys_expired_purged_total{namespace="company.team"} 1`) {
			t.Fatalf("metrics lack the purge count:\n%s", grepLines(m, "kvflow_kv"))
		} else if !strings.Contains(m, "kvflow_db_deadlocks_total 0") {
			t.Errorf("metrics lack the deadlock count at 0:\n%s", grepLines(m, "kvflow_db"))
		}
		for _, ttl := range []string{"30 days", "-PT5M", "PT0S", "P1Y"} {
			if r := do(t, "PUT", base+"/badttl", "1", "ttl: "+ttl); r.Status != 422 || !strings.Contains(r.Body, "TTL") {
				t.Errorf("PUT with ttl %q = %d %s, want 422 about the TTL", ttl, r.Status, r.Body)
			}
		}
		if r := do(t, "GET", base+"/badttl", ""); r.Status != 404 {
			t.Fatalf("GET after refused ttls = %d, want 404", r.Status)
		}
	})
}

// expirationDate sets an absolute expiry, kept as given: a client that
// keeps a key's expiry across writes does not move it.
func TestPut_ExpirationDate_KeptAsGiven(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/company.team/kv"
		if r := do(t, "PUT", base+"/k", "1", "expirationDate: 2024-07-15T07:00:00.123Z"); r.Status != 200 {
			t.Fatalf("PUT with expirationDate = %d %s", r.Status, r.Body)
		}
		if r := do(t, "PUT", base+"/q?expirationDate=2024-07-16T00:00:00%2B02:00", "1"); r.Status != 200 {
			t.Fatalf("PUT with ?expirationDate = %d %s", r.Status, r.Body)
		}
		for key, want := range map[string]string{"k": "2024-07-15T07:00:00.123Z", "q": "2024-07-15T22:00:00.000Z"} {
			if r := do(t, "GET", base+"/"+key+"/detail", ""); !strings.Contains(r.Body, `"expirationDate":"`+want+`"`) {
				t.Errorf("%s detail = %s, want expirationDate %s", key, r.Body, want)
			}
		}
		for _, bad := range []struct{ hdr, want string }{
			{"expirationDate: tomorrow", "RFC 3339"},
			{"expirationDate: 2024-07-16", "RFC 3339"},
		} {
			if r := do(t, "PUT", base+"/bad", "1", bad.hdr); r.Status != 422 || !strings.Contains(r.Body, bad.want) || !strings.Contains(r.Body, "'bad'") {
				t.Errorf("PUT with %s = %d %s, want 422 about %s", bad.hdr, r.Status, r.Body, bad.want)
			}
		}
		if r := do(t, "PUT", base+"/bad", "1", "ttl: PT1H", "expirationDate: 2024-07-16T00:00:00Z"); r.Status != 422 || !strings.Contains(r.Body, "not both") {
			t.Errorf("PUT with ttl and expirationDate = %d %s, want 422", r.Status, r.Body)
		}
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Bulk delete answers the keys that existed; a bad key refuses the whole call.
func TestBulkDelete_ReturnsDeletedKeys(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/company.team/kv"
		for _, k := range []string{"a", "b", "c"} {
			do(t, "PUT", base+"/"+k, "1")
		}
		r := do(t, "DELETE", base, `{"keys":["a","bad$key"]}`, "Content-Type: application/json")
		if r.Status != 422 || !strings.Contains(r.Body, "bad$key") {
			t.Fatalf("bulk delete with a bad key = %d %s, want 422", r.Status, r.Body)
		}
		r = do(t, "DELETE", base, `{"keys":["a","c","zz"]}`, "Content-Type: application/json")
		if r.Status != 200 || r.Body != `{"keys":["a","c"]}` {
			t.Fatalf("bulk delete = %d %s, want 200 {\"keys\":[\"a\",\"c\"]}", r.Status, r.Body)
		}
		if r := do(t, "GET", base, ""); !strings.HasPrefix(r.Body, `[{"key":"b"`) || strings.Count(r.Body, `"key"`) != 1 {
			t.Fatalf("list after bulk delete = %s, want only b", r.Body)
		}
		if r := do(t, "DELETE", base, `{"keys":[]}`); r.Status != 200 || r.Body != `{"keys":[]}` {
			t.Fatalf("bulk delete of nothing = %d %s", r.Status, r.Body)
		}
		for _, body := range []string{"", "[]", `{"key":["b"]}`, "{"} {
			if r := do(t, "DELETE", base, body); r.Status != 422 {
				t.Errorf("bulk delete with body %q = %d %s, want 422", body, r.Status, r.Body)
			}
		}
	})
}

// List: sorted, by prefix, one page at a time with a cursor.
func TestList_PrefixLimitCursor(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/ns/kv"
		for _, k := range []string{"b2", "a1", "test_3", "test_1", "test_2", "c"} {
			do(t, "PUT", base+"/"+k, "1")
		}
		keys := func(body string) string {
			var out []string
			for _, part := range strings.Split(body, `"key":"`)[1:] {
				out = append(out, part[:strings.IndexByte(part, '"')])
			}
			return strings.Join(out, ",")
		}
		if got := keys(do(t, "GET", base, "").Body); got != "a1,b2,c,test_1,test_2,test_3" {
			t.Fatalf("list = %s", got)
		}
		if got := keys(do(t, "GET", base+"?prefix=test_", "").Body); got != "test_1,test_2,test_3" {
			t.Fatalf("list by prefix = %s", got)
		}
		var pages []string
		url := base + "?prefix=test_&limit=2"
		for url != "" {
			r := do(t, "GET", url, "")
			if r.Status != 200 {
				t.Fatalf("GET %s = %d %s", url, r.Status, r.Body)
			}
			pages = append(pages, keys(r.Body))
			url = ""
			if link := r.Header.Get("Link"); link != "" {
				url = ts.URL + link[1:strings.Index(link, ">")]
				if r.Header.Get(NextCursorHeader) == "" {
					t.Fatal("Link without X-Next-Cursor")
				}
			}
		}
		if got := strings.Join(pages, " | "); got != "test_1,test_2 | test_3" {
			t.Fatalf("pages = %s, want test_1,test_2 | test_3", got)
		}
		if r := do(t, "GET", base+"?limit=0", ""); r.Status != 422 {
			t.Fatalf("limit=0 = %d, want 422", r.Status)
		}
		if r := do(t, "GET", ts.URL+"/api/v1/namespaces/empty/kv", ""); r.Status != 200 || r.Body != "[]" {
			t.Fatalf("empty namespace list = %d %q, want []", r.Status, r.Body)
		}
	})
}

// A namespace with more keys than one storage page lists them all.
func TestList_ManyKeys_AllStreamed(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ts := startServer(t, pair, Config{})
	ctx := context.Background()
	const n = 1003 // more than one storage page of 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if _, err := pair.Store.Set(ctx, "many", fmt.Sprintf("k%05d", i), str("v"), setOpts); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries, next, err := ts.Client.List(ctx, "many", client.ListOptions{})
	if err != nil || next != "" {
		t.Fatalf("List = %v, next %q", err, next)
	}
	if len(entries) != n || entries[0].Key != "k00000" || entries[n-1].Key != fmt.Sprintf("k%05d", n-1) {
		t.Fatalf("List returned %d entries, want %d in order", len(entries), n)
	}
}

// Inheritance lists ancestors' entries, nearest first; the nearer one wins.
func TestInheritance_NearestFirst(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ts := startServer(t, pair, Config{})
	ctx := context.Background()
	for _, kv := range [][2]string{{"a", "shared"}, {"a", "top"}, {"a.b", "shared"}, {"a.b", "mid"}, {"a.b.c", "own"}, {"ab", "other"}} {
		if _, err := pair.Store.Set(ctx, kv[0], kv[1], str(kv[0]), setOpts); err != nil {
			t.Fatal(err)
		}
	}
	r := do(t, "GET", ts.URL+"/api/v1/namespaces/a.b.c/kv/inheritance", "")
	got := []string{}
	for _, part := range strings.Split(r.Body, `"namespace":"`)[1:] {
		ns := part[:strings.IndexByte(part, '"')]
		key := strings.Split(strings.Split(part, `"key":"`)[1], `"`)[0]
		got = append(got, ns+"/"+key)
	}
	if want := "a.b/mid a.b/shared a/top"; strings.Join(got, " ") != want {
		t.Fatalf("inheritance = %v (%s), want %s", got, r.Body, want)
	}
	entries, err := ts.Client.Inherited(ctx, "a.b.c")
	if err != nil || len(entries) != 3 || entries[0].Namespace != "a.b" {
		t.Fatalf("Client.Inherited = %v, %v", entries, err)
	}
	// With an allow-list, ancestors the API may not reach are left out.
	ts2 := startServer(t, pair, Config{Namespaces: []string{"a.b.*"}})
	r = do(t, "GET", ts2.URL+"/api/v1/namespaces/a.b.c/kv/inheritance", "")
	if strings.Contains(r.Body, `"namespace":"a"`) || !strings.Contains(r.Body, `"namespace":"a.b"`) {
		t.Fatalf("restricted inheritance = %s, want a.b only", r.Body)
	}
}

// Oversized, invalid JSON, bad keys, bad TTLs: a 4xx and nothing written.
func TestBadInput_NothingStored(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{MaxBodyBytes: 4096})
		base := ts.URL + "/api/v1/namespaces/bad.input/kv"
		big := strings.Repeat("x", 4097)
		for _, tc := range []struct {
			name    string
			req     func() (*http.Request, error)
			status  int
			checkNS bool
		}{
			{"Oversized", func() (*http.Request, error) { return http.NewRequest("PUT", base+"/k", strings.NewReader(big)) }, 413, true},
			{"OversizedChunked", func() (*http.Request, error) {
				// io.MultiReader hides the length, so the body goes chunked.
				return http.NewRequest("PUT", base+"/k", io.MultiReader(strings.NewReader(big)))
			}, 413, true},
			{"InvalidJSON", func() (*http.Request, error) {
				r, err := http.NewRequest("PUT", base+"/k", strings.NewReader(`{"a":`))
				if err == nil {
					r.Header.Set("Content-Type", "application/json")
				}
				return r, err
			}, 422, true},
			{"BadKey", func() (*http.Request, error) { return http.NewRequest("PUT", base+"/-k", strings.NewReader("1")) }, 422, true},
			{"LongKey", func() (*http.Request, error) {
				return http.NewRequest("PUT", base+"/"+strings.Repeat("k", 351), strings.NewReader("1"))
			}, 422, true},
			{"BadTTL", func() (*http.Request, error) {
				r, err := http.NewRequest("PUT", base+"/k", strings.NewReader("1"))
				if err == nil {
					r.Header.Set("ttl", "P30X")
				}
				return r, err
			}, 422, true},
			{"BadOverwrite", func() (*http.Request, error) {
				return http.NewRequest("PUT", base+"/k?overwrite=maybe", strings.NewReader("1"))
			}, 422, true},
			{"BulkOversized", func() (*http.Request, error) {
				return http.NewRequest("DELETE", base, strings.NewReader(`{"keys":["`+big+`"]}`))
			}, 413, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, err := tc.req()
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status || !strings.HasPrefix(string(b), `{"message":"`) {
					t.Fatalf("= %d %s, want %d with a message", resp.StatusCode, b, tc.status)
				}
				if tc.checkNS && !strings.Contains(string(b), "'bad.input'") {
					t.Errorf("message %s does not name the namespace", b)
				}
			})
		}
		if r := do(t, "GET", base, ""); r.Body != "[]" {
			t.Fatalf("list after bad input = %s, want []", r.Body)
		}
		var objects []string
		pair.Bucket.Iter(context.Background(), "", func(name string, _ time.Time) error {
			objects = append(objects, name)
			return nil
		})
		if len(objects) != 0 {
			t.Fatalf("objects written by refused requests: %v", objects)
		}
	})
}

// The streaming escaper writes JSON string contents that decode back to the text.
func TestJSONStringWriter_DecodesBack(t *testing.T) {
	for _, text := range []string{"", "plain", `quote " and \ backslash`, "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f", "é ü 日本 😀", "</script>&", "\u2028\u2029"} {
		var b strings.Builder
		(&jsonStringWriter{w: &b}).Write([]byte(text))
		var got string
		if err := json.Unmarshal([]byte(`"`+b.String()+`"`), &got); err != nil || got != text {
			t.Errorf("escape(%q) = %q, decodes to %q, %v", text, b.String(), got, err)
		}
	}
}

// A STRING too large to hold whole is streamed as the same JSON.
func TestGet_HugeString_Streamed(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ts := startServer(t, pair, Config{})
	ctx := context.Background()
	line := strings.Repeat("x", 1023) + "\n"
	n := storage.MaxValueSize/len(line) + 2
	if _, err := pair.Store.SetStream(ctx, "big", "huge", strings.NewReader(strings.Repeat(line, n)), setOpts); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.URL + "/api/v1/namespaces/big/kv/huge")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET huge = %d, %v", resp.StatusCode, err)
	}
	want := `{"type":"STRING","value":"` + strings.Repeat(strings.TrimSuffix(line, "\n")+`\n`, n) + `"}`
	if len(got) != len(want) || string(got) != want {
		t.Fatalf("GET huge answered %d bytes starting %.60q, want %d bytes", len(got), got, len(want))
	}
}

// A known path with another method answers 405 in JSON with Allow.
func TestWrongMethod_405WithAllow(t *testing.T) {
	ts := startServer(t, testpair.Local(t, noOpts), Config{})
	r := do(t, "POST", ts.URL+"/api/v1/namespaces/ns/kv/k", "1")
	if r.Status != 405 || r.Header.Get("Allow") != "GET, PUT, DELETE, PATCH" || !strings.Contains(r.Message(), "POST") {
		t.Fatalf("POST on a key = %d %v %s, want 405 with Allow: GET, PUT, DELETE, PATCH", r.Status, r.Header.Get("Allow"), r.Body)
	}
	if r := do(t, "GET", ts.URL+"/api/v1/namespaces/ns/kv/k/nothing", ""); r.Status != 404 {
		t.Fatalf("GET an unknown path = %d %s, want 404", r.Status, r.Body)
	}
}
