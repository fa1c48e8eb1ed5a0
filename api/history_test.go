package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/sqldb"
	"github.com/kvflow/kvflow/storage/storagetest"
)

func TestKVHistory_VersionsReadRestore(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		base := ts.URL + "/api/v1/namespaces/company.team/kv"
		js := "Content-Type: application/json"
		do(t, "PUT", base+"/k", `"a"`, js)
		do(t, "PUT", base+"/k", `987654`, js)
		do(t, "DELETE", base+"/k", "")

		var vs []Version
		r := do(t, "GET", base+"/k/versions", "")
		if err := json.Unmarshal([]byte(r.Body), &vs); r.Status != 200 || err != nil || len(vs) != 3 {
			t.Fatalf("versions = %d %s", r.Status, r.Body)
		}
		if vs[0].Version != 3 || vs[0].Change != "DELETE" || vs[1].Type != "NUMBER" || vs[2].Type != "STRING" || vs[2].Writer != WriterAPI || vs[2].Size == 0 {
			t.Errorf("versions = %+v", vs)
		}
		r = do(t, "GET", base+"/k/versions?limit=2", "")
		if json.Unmarshal([]byte(r.Body), &vs); len(vs) != 2 || r.Header.Get(NextCursorHeader) != "2" {
			t.Fatalf("page 1 = %s, next %q", r.Body, r.Header.Get(NextCursorHeader))
		}
		r = do(t, "GET", base+"/k/versions?limit=2&cursor=2", "")
		if json.Unmarshal([]byte(r.Body), &vs); len(vs) != 1 || vs[0].Version != 1 || r.Header.Get(NextCursorHeader) != "" {
			t.Fatalf("page 2 = %s", r.Body)
		}
		if r := do(t, "GET", base+"/nope/versions", ""); r.Status != 404 || !strings.Contains(r.Message(), "'nope'") {
			t.Errorf("versions of a key never written = %d %s, want 404 naming it", r.Status, r.Body)
		}
		// A bad page size names the range the routes accept.
		for _, u := range []string{"/k/versions?limit=0", "/k/versions?limit=5000", "/changes?limit=0", "/changes?limit=5000"} {
			if r := do(t, "GET", base+u, ""); r.Status != 422 || !strings.Contains(r.Message(), "'limit'") || !strings.Contains(r.Message(), "from 1 to 1000") {
				t.Errorf("GET %s = %d %s, want 422 naming 1 to 1000", u, r.Status, r.Body)
			}
		}
		if r := do(t, "GET", base+"/k?version=1", ""); r.Status != 200 || r.Body != `{"type":"STRING","value":"a"}` || r.Header.Get("ETag") != `"1"` {
			t.Errorf("GET ?version=1 = %d %s", r.Status, r.Body)
		}
		if r := do(t, "GET", base+"/k?version=3", ""); r.Status != 404 || !strings.Contains(r.Message(), "deletion") {
			t.Errorf("GET ?version=3 (a tombstone) = %d %s", r.Status, r.Body)
		}
		if r := do(t, "GET", base+"/k?version=x", ""); r.Status != 422 {
			t.Errorf("GET ?version=x = %d %s", r.Status, r.Body)
		}

		// Restore honours If-Match: stale is 412, current (the tombstone) works.
		// The 412 carries the current version as PUT's does: here the tombstone.
		var pre PreconditionBody
		r = do(t, "POST", base+"/k/restore", `{"version":1}`, js, "If-Match: 2")
		if json.Unmarshal([]byte(r.Body), &pre); r.Status != 412 || !strings.Contains(r.Message(), "'k'") || pre.Version == nil || *pre.Version != 3 {
			t.Errorf("restore with a stale If-Match = %d %s, want 412 with version 3", r.Status, r.Body)
		}
		r = do(t, "POST", base+"/k/restore", `{"version":1}`, js, `If-Match: "3"`)
		var e Entry
		if json.Unmarshal([]byte(r.Body), &e); r.Status != 200 || e.Version != 4 || e.Type != "STRING" || r.Header.Get("ETag") != `"4"` {
			t.Fatalf("restore = %d %s (ETag %s)", r.Status, r.Body, r.Header.Get("ETag"))
		}
		if r := do(t, "GET", base+"/k", ""); r.Body != `{"type":"STRING","value":"a"}` {
			t.Errorf("GET after restore = %s", r.Body)
		}
		pre = PreconditionBody{}
		r = do(t, "POST", base+"/k/restore", `{"version":2}`, js, "If-Match: 3")
		if json.Unmarshal([]byte(r.Body), &pre); r.Status != 412 || pre.Version == nil || *pre.Version != 4 {
			t.Errorf("restore at a version the key left = %d %s, want 412 with version 4", r.Status, r.Body)
		}
		if r := do(t, "POST", base+"/k/restore", `{"version":2}`, js); r.Status != 200 {
			t.Errorf("unconditional restore = %d %s", r.Status, r.Body)
		}
		for body, want := range map[string]string{
			`{"versoin":2}`:          "'versoin'",
			`{"version":2,"x":true}`: "'x'",
			`{"version":"2"}`:        "'version'",
			`{"version":1.5}`:        "'version'",
			`{"version":0}`:          "'version'",
			`{"version":2} trailing`: "one JSON object",
			`[{"version":2}]`:        "one JSON object",
		} {
			if r := do(t, "POST", base+"/k/restore", body, js); r.Status != 422 || !strings.Contains(r.Message(), want) {
				t.Errorf("restore with body %s = %d %s, want 422 naming %s", body, r.Status, r.Body, want)
			}
		}
		// A version purged by retention is 404 and says so.
		if _, _, err := pair.Store.PruneHistory(context.Background(), storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil {
			t.Fatal(err)
		}
		if r := do(t, "GET", base+"/k?version=1", ""); r.Status != 404 || !strings.Contains(r.Message(), "Version 1") || !strings.Contains(r.Message(), "purged") {
			t.Errorf("GET a purged version = %d %s", r.Status, r.Body)
		}

		// The audit feed: who changed what, when, never a value.
		var cs []Change
		r = do(t, "GET", ts.URL+"/api/v1/namespaces/company.team/kv/changes?since=2", "")
		if json.Unmarshal([]byte(r.Body), &cs); r.Status != 200 || len(cs) != 3 || cs[0].Seq != 3 || cs[0].Change != "DELETE" || cs[1].Writer != WriterAPI {
			t.Errorf("changes since 2 = %d %s", r.Status, r.Body)
		}
		if strings.Contains(r.Body, `"a"`) || strings.Contains(r.Body, "987654") {
			t.Errorf("changes hold a value: %s", r.Body)
		}
		r = do(t, "GET", ts.URL+"/api/v1/namespaces/company.team/kv/changes?limit=2", "")
		if json.Unmarshal([]byte(r.Body), &cs); len(cs) != 2 || r.Header.Get(NextCursorHeader) != "2" {
			t.Errorf("changes page = %s, next %q", r.Body, r.Header.Get(NextCursorHeader))
		}
		if r := do(t, "GET", ts.URL+"/api/v1/namespaces/company.team/kv/changes?since=-1", ""); r.Status != 422 {
			t.Errorf("changes?since=-1 = %d", r.Status)
		}
		if r := do(t, "POST", base+"/k/restore", `{"version":5}`, js, "If-Match: *"); r.Status != 200 { // 5: the one retention kept
			t.Errorf("restore with If-Match: * on a live key = %d %s", r.Status, r.Body)
		}
		if r := do(t, "POST", base+"/k/restore", `{"version":2}`, js, "If-Match: nope"); r.Status != 422 || !strings.Contains(r.Message(), "If-Match") {
			t.Errorf("restore with If-Match: nope = %d %s, want 422", r.Status, r.Body)
		}

	})
}

// watch reads a watch stream's events until n arrived or the context ends.
func watch(ctx context.Context, t *testing.T, url string, n int, headers ...string) ([]Change, int) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, resp.StatusCode
	}
	var got []Change
	sc := bufio.NewScanner(resp.Body)
	for len(got) < n && sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var c Change
			if err := json.Unmarshal([]byte(data), &c); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			got = append(got, c)
		}
	}
	return got, resp.StatusCode
}

func TestKVWatch_ResumesFromSinceNothingMissed(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		wurl := ts.URL + "/api/v1/namespaces/company.team/kv/watch"
		const n = 60
		done := make(chan error, 1)
		go func() { // a writer running while the watchers come and go
			for i := 0; i < n; i++ {
				key := fmt.Sprintf("k%d", i%4)
				var err error
				if i%5 == 4 {
					_, err = pair.Store.Delete(ctx, "company.team", key)
				} else {
					_, err = pair.Store.Set(ctx, "company.team", key, str("v"), storage.SetOptions{})
				}
				if err != nil {
					done <- err
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
			done <- nil
		}()
		var all []Change
		var last int64
		for len(all) < n {
			// Each connection takes a few events, then drops; the next resumes.
			hdr := []string{}
			u := fmt.Sprintf("%s?since=%d", wurl, last)
			if len(all)%2 == 1 {
				u, hdr = wurl, []string{fmt.Sprintf("Last-Event-ID: %d", last)}
			}
			got, status := watch(ctx, t, u, min(7, n-len(all)), hdr...)
			if status != 200 || ctx.Err() != nil {
				t.Fatalf("watch = %d, %v", status, ctx.Err())
			}
			all = append(all, got...)
			last = all[len(all)-1].Seq
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want, err := pair.Store.Changes(ctx, "company.team", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(want) {
			t.Fatalf("watched %d changes, the feed has %d", len(all), len(want))
		}
		for i, c := range all {
			if w := want[i]; c.Seq != int64(i+1) || c.Key != w.Key || c.Version != w.Version || c.Change != string(w.Change) || c.Type != string(w.Type) {
				t.Errorf("event %d = %+v, feed has %+v", i, c, w)
			}
		}

		// A prefix keeps only its keys; no since starts at the current end.
		go func() {
			time.Sleep(200 * time.Millisecond)
			pair.Store.Set(ctx, "company.team", "other", str("x"), storage.SetOptions{})
			pair.Store.Set(ctx, "company.team", "k9", str("x"), storage.SetOptions{})
		}()
		got, _ := watch(ctx, t, wurl+"?prefix=k", 1)
		if len(got) != 1 || got[0].Key != "k9" || got[0].Seq != int64(n+2) {
			t.Errorf("prefix watch = %+v", got)
		}

		// Past the feed's retention: 410, so the client resyncs.
		c.Advance(30 * 24 * time.Hour)
		if _, _, err := pair.Store.PruneHistory(ctx, storage.HistoryPolicy{}, 0); err != nil {
			t.Fatal(err)
		}
		if _, status := watch(ctx, t, wurl+"?since=3", 1); status != 410 {
			t.Errorf("watch past retention = %d, want 410", status)
		}
	})
}

// The sweeper applies the configured retention, then collects the objects.
func TestSweep_PrunesHistoryByRetention(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{History: storage.HistoryPolicy{Default: storage.Retention{Versions: 2}}})
		ctx := context.Background()
		var first string
		for i := 0; i < 4; i++ {
			e, err := pair.Store.Set(ctx, "company.team", "k", str(fmt.Sprint(i)), storage.SetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = e.Object
			}
		}
		if _, err := ts.Server.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if p, _ := pair.Store.History(ctx, "company.team", "k", storage.HistoryOptions{}); len(p.Versions) != 2 || p.Versions[1].Version != 3 {
			t.Errorf("kept %d versions, want 4 and 3", len(p.Versions))
		}
		if ref, err := pair.DB.Referenced(ctx, []string{first}); err != nil || ref[first] != true {
			t.Errorf("version 1's object is not queued as garbage: %v, %v", ref, err)
		}
	})
}

// A watch sends values only when asked: a SET's typed value, a sensitive one
// masked unless revealed, a delete none.
func TestKVWatch_ValuesWhenAsked(t *testing.T) {
	pair := testpair.Local(t, storage.Options{Keys: storagetest.TestKeys(t)})
	ts := startServer(t, pair, Config{})
	kv := ts.URL + "/api/v1/namespaces/company.team/kv/"
	do(t, "PUT", kv+"n", `12345678901234567890`, "Content-Type: application/json")
	do(t, "PUT", kv+"pw?sensitive=true", "s3cret", "Content-Type: text/plain")
	do(t, "DELETE", kv+"n", "")
	events := func(q string) []string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", kv+"watch?since=0"+q, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got []string
		for sc := bufio.NewScanner(resp.Body); len(got) < 3 && sc.Scan(); {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				got = append(got, data)
			}
		}
		return got
	}
	if got := events(""); len(got) != 3 || strings.Contains(strings.Join(got, ""), "value") {
		t.Errorf("watch = %q, want no values", got)
	}
	got := events("&values=true")
	if len(got) != 3 || got[0] != `{"seq":1,"key":"n","change":"SET","version":1,"type":"NUMBER","value":12345678901234567890}` ||
		got[1] != `{"seq":2,"key":"pw","change":"SET","version":1,"type":"STRING","value":"******","sensitive":true}` ||
		got[2] != `{"seq":3,"key":"n","change":"DELETE","version":2,"type":"NUMBER"}` {
		t.Errorf("watch with values = %q", got)
	}
	if got := events("&values=true&reveal=true"); len(got) != 3 || !strings.Contains(got[1], `"value":"s3cret"`) {
		t.Errorf("watch with values revealed = %q", got)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(kv + "watch?values=maybe"); err != nil || resp.StatusCode != 422 {
		t.Errorf("watch ?values=maybe = %v %v, want 422", resp, err)
	} else {
		resp.Body.Close()
	}
}

// Changes another process makes reach the watches: each poll reads the
// heads of every watched feed in one statement and wakes the watches whose
// feed moved. On PostgreSQL 20 idle watches cost the server a few
// statements a second, where each watch reading its own feed every 250 ms
// made 80 or more.
func TestKVWatch_OtherProcessesChanges_OneHeadReadForAllWatches(t *testing.T) {
	onBothPairs(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		// Another process's store: its writes do not wake this server's watches.
		other := storage.New(pair.DB, pair.Bucket, storage.Options{Now: c.Now})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		type result struct {
			ns     string
			got    []Change
			status int
		}
		results := make(chan result, 20)
		for i := range 20 {
			ns := []string{"company.a", "company.b"}[i%2]
			go func() {
				got, status := watch(ctx, t, ts.URL+"/api/v1/namespaces/"+ns+"/kv/watch", 1)
				results <- result{ns, got, status}
			}()
		}
		time.Sleep(time.Second) // every watch waits
		if pair.DB.Dialect == sqldb.Postgres {
			commits := func() int64 {
				time.Sleep(1100 * time.Millisecond) // statistics are flushed about every second
				var n int64
				if _, err := pair.DB.X.Exec(`SELECT pg_stat_clear_snapshot()`); err != nil {
					t.Fatal(err)
				}
				if err := pair.DB.X.Get(&n, `SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`); err != nil {
					t.Fatal(err)
				}
				return n
			}
			before, start := commits(), time.Now()
			time.Sleep(2 * time.Second)
			rate := float64(commits()-before) / time.Since(start).Seconds()
			t.Logf("20 idle watches: %.1f transactions/s", rate)
			if rate > 30 {
				t.Errorf("20 idle watches: %.1f transactions/s; want their feeds' heads read once a poll (under 30/s)", rate)
			}
		}
		for i, ns := range []string{"company.a", "company.b"} {
			if _, err := other.Set(ctx, ns, "k", str(fmt.Sprint(i)), storage.SetOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.After(5 * time.Second) // the poll is 250 ms; a watch's 15 s ping would also wake it
		for range 20 {
			var r result
			select {
			case r = <-results:
			case <-deadline:
				t.Fatal("the watches did not see another process's changes within 5 s")
			}
			if r.status != 200 || len(r.got) != 1 || r.got[0].Key != "k" || r.got[0].Seq != 1 {
				t.Errorf("watch of %s = %d %+v; want its change seq 1", r.ns, r.status, r.got)
			}
		}
	})
}

// A since past the end of the feed is refused, for changes and watch alike:
// a watcher there would skip the changes up to it unseen.
func TestKVChanges_SincePastTheEnd_422(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		seed(t, pair.Store, "company.team", "a", str("x"))
		base := ts.URL + "/api/v1/namespaces/company.team/kv/"
		for _, u := range []string{base + "changes?since=5", base + "watch?since=5"} {
			if r := do(t, "GET", u, ""); r.Status != 422 || !strings.Contains(r.Body, "past the last change of namespace 'company.team' (1)") {
				t.Errorf("GET %s = %d %s, want 422", u, r.Status, r.Body)
			}
		}
		if r := do(t, "GET", base+"changes?since=1", ""); r.Status != 200 || r.Body != "[]" {
			t.Errorf("changes at the head = %d %s, want []", r.Status, r.Body)
		}
	})
}
