package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

const mergePatch = "Content-Type: application/merge-patch+json"

func TestPatch_JSONMergePatch_IfMatchAndTypes(t *testing.T) {
	ts := startServer(t, testpair.Local(t, storage.Options{}), Config{})
	url := ts.URL + "/api/v1/namespaces/company.team/kv/cfg"
	// Created when missing, nulls dropped.
	r := do(t, "PATCH", url, `{"a":{"x":1},"n":null}`, mergePatch)
	if r.Status != 200 || r.Header.Get("ETag") != `"1"` || strings.TrimSpace(r.Body) != `{"type":"JSON","value":{"a":{"x":1}},"version":1}` {
		t.Fatalf("PATCH creating = %d %s ETag %s", r.Status, r.Body, r.Header.Get("ETag"))
	}
	r = do(t, "PATCH", url, `{"a":{"y":12345678901234567890,"x":null},"d":0.1}`, mergePatch, `If-Match: "1"`)
	if r.Status != 200 || r.Header.Get("ETag") != `"2"` {
		t.Fatalf("PATCH with If-Match = %d %s", r.Status, r.Body)
	}
	if g := do(t, "GET", url, ""); strings.TrimSpace(g.Body) != `{"type":"JSON","value":{"a":{"y":12345678901234567890},"d":0.1}}` {
		t.Errorf("GET after PATCH = %s", g.Body)
	}
	r = do(t, "PATCH", url, `{"a":1}`, mergePatch, `If-Match: "1"`)
	var pre PreconditionBody
	if json.Unmarshal([]byte(r.Body), &pre); r.Status != 412 || pre.Version == nil || *pre.Version != 2 {
		t.Errorf("PATCH at a stale version = %d %s, want 412 with version 2", r.Status, r.Body)
	}
	if r := do(t, "PATCH", ts.URL+"/api/v1/namespaces/company.team/kv/none", `{"a":1}`, mergePatch, `If-Match: *`); r.Status != 412 {
		t.Errorf("PATCH If-Match * on a missing key = %d %s, want 412", r.Status, r.Body)
	}
	for _, bad := range []struct{ body, ct string }{{`{"a":`, mergePatch}, {`null`, mergePatch}, {`{"a":1}`, "Content-Type: text/plain"}} {
		if r := do(t, "PATCH", url, bad.body, bad.ct); r.Status != 422 || r.Message() == "" {
			t.Errorf("PATCH %s (%s) = %d %s, want 422 with a message", bad.body, bad.ct, r.Status, r.Body)
		}
	}
	// A scalar patch replaces (RFC 7386), through the client too.
	v, w, err := ts.Client.Patch(t.Context(), "company.team", "cfg", "text", 2)
	if err != nil || v.V != "text" || w.Version != 3 || w.Sensitive {
		t.Errorf("client Patch = %v, %+v, %v", v, w, err)
	}
}

func TestPatch_ConcurrentDistinctFields_AllLand(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		url := ts.URL + "/api/v1/namespaces/company.team/kv/shared"
		const n = 8
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := do(t, "PATCH", url, fmt.Sprintf(`{"f%d":%d}`, i, i), mergePatch); r.Status != 200 {
					t.Errorf("PATCH f%d = %d %s", i, r.Status, r.Body)
				}
			}()
		}
		wg.Wait()
		var got struct {
			Value map[string]int `json:"value"`
		}
		r := do(t, "GET", url, "")
		json.Unmarshal([]byte(r.Body), &got)
		for i := 0; i < n; i++ {
			if v, ok := got.Value[fmt.Sprintf("f%d", i)]; !ok || v != i {
				t.Errorf("after %d concurrent PATCHes, field f%d is missing: %s", n, i, r.Body)
			}
		}
		if r.Header.Get("ETag") != fmt.Sprintf(`"%d"`, n) {
			t.Errorf("ETag = %s, want version %d", r.Header.Get("ETag"), n)
		}
	})
}

func TestDeleteAll_EveryKeyOfTheNamespace_BodyFormKept(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/company.team"
		for _, k := range []string{"a", "b", "c"} {
			do(t, "PUT", base+"/kv/"+k, "1")
		}
		do(t, "PUT", ts.URL+"/api/v1/namespaces/company.team.child/kv/keep", "1")
		if r := do(t, "DELETE", base+"/kv", `{"keys":["a","zz"]}`, "Content-Type: application/json"); r.Status != 200 || strings.TrimSpace(r.Body) != `{"keys":["a"]}` {
			t.Errorf("DELETE with a body = %d %s", r.Status, r.Body)
		}
		if r := do(t, "DELETE", base+"/kv?all=true", `{"keys":["b"]}`, "Content-Type: application/json"); r.Status != 422 || !strings.Contains(r.Message(), "all=true") {
			t.Errorf("DELETE ?all=true with a body = %d %s, want 422", r.Status, r.Body)
		}
		if r := do(t, "DELETE", base+"/kv?all=maybe", ""); r.Status != 422 || !strings.Contains(r.Message(), "'all'") {
			t.Errorf("DELETE ?all=maybe = %d %s, want 422 naming all", r.Status, r.Body)
		}
		if r := do(t, "DELETE", base+"/kv?all=true", ""); r.Status != 200 || strings.TrimSpace(r.Body) != `{"keys":["b","c"]}` {
			t.Errorf("DELETE ?all=true = %d %s", r.Status, r.Body)
		}
		if r := do(t, "GET", base+"/kv", ""); strings.TrimSpace(r.Body) != "[]" {
			t.Errorf("keys left: %s", r.Body)
		}
		if r := do(t, "GET", ts.URL+"/api/v1/namespaces/company.team.child/kv/keep", ""); r.Status != 200 {
			t.Errorf("child key after DELETE ?all=true = %d", r.Status)
		}
		if r := do(t, "GET", base+"/kv/c/versions", ""); !strings.Contains(r.Body, `"DELETE"`) {
			t.Errorf("history of c = %s, want a DELETE tombstone", r.Body)
		}
	})
}

func TestNamespaces_HierarchyWithImplicitParentsAndCounts_Scoped(t *testing.T) {
	pair := testpair.Local(t, storage.Options{})
	ts := startServer(t, pair, Config{})
	for _, nk := range []string{"co.team.a.b/k1", "co.team.a.b/k2", "co.team/k", "co.other/k", "co.team-x/k", "zz/k"} {
		ns, key, _ := strings.Cut(nk, "/")
		if r := do(t, "PUT", ts.URL+"/api/v1/namespaces/"+ns+"/kv/"+key, "1"); r.Status != 200 {
			t.Fatalf("PUT %s = %d", nk, r.Status)
		}
	}
	list := func(url string) string {
		nss, err := (&client.Client{BaseURL: url}).Namespaces(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, n := range nss {
			fmt.Fprintf(&b, "%s parent=%s own=%d/%d total=%d implicit=%v\n", n.ID, n.Parent, n.Keys, n.KeyCount, n.TotalKeyCount, n.Implicit)
		}
		return b.String()
	}
	want := `co parent= own=0/0 total=5 implicit=true
co.other parent=co own=1/1 total=1 implicit=false
co.team parent=co own=1/1 total=3 implicit=false
co.team.a parent=co.team own=0/0 total=2 implicit=true
co.team.a.b parent=co.team.a own=2/2 total=2 implicit=false
co.team-x parent=co own=1/1 total=1 implicit=false
zz parent= own=1/1 total=1 implicit=false
`
	if got := list(ts.URL); got != want {
		t.Errorf("namespaces:\n%s\nwant:\n%s", got, want)
	}
	// A scoped server lists what it may reach: parents outside its scope are
	// left out, and so are the keys of namespaces outside it.
	scoped := startServer(t, pair, Config{Namespaces: []string{"co.team.a.*", "co.team"}})
	want = `co.team parent=co own=1/1 total=3 implicit=false
co.team.a parent=co.team own=0/0 total=2 implicit=true
co.team.a.b parent=co.team.a own=2/2 total=2 implicit=false
`
	if got := list(scoped.URL); got != want {
		t.Errorf("scoped namespaces:\n%s\nwant:\n%s", got, want)
	}
}
