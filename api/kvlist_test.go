package api

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// keysOf decodes a list answer as "ns/key" (or "key" without a namespace).
func keysOf(t *testing.T, r response) []string {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("list = %d %s", r.Status, r.Body)
	}
	var es []Entry
	if err := json.Unmarshal([]byte(r.Body), &es); err != nil {
		t.Fatalf("list body %s: %v", r.Body, err)
	}
	out := []string{}
	for _, e := range es {
		if e.Namespace != "" {
			out = append(out, e.Namespace+"/"+e.Key)
		} else {
			out = append(out, e.Key)
		}
	}
	return out
}

// The namespace's list finds keys containing a text, ignoring case on
// request, pages by offset with a total, and keeps its cursor paging.
func TestListKV_SearchAnywhereOffsetTotal(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{})
		ctx := context.Background()
		for _, k := range []string{"app_Config", "db.config", "config", "other", "x_CONFIG_y"} {
			if _, err := pair.Store.Set(ctx, "s.ns", k, str(k), setOpts); err != nil {
				t.Fatal(err)
			}
		}
		base := ts.URL + "/api/v1/namespaces/s.ns/kv"
		if got, want := strings.Join(keysOf(t, do(t, "GET", base+"?q=config", "")), " "), "config db.config"; got != want {
			t.Errorf("q=config = %s, want %s", got, want)
		}
		r := do(t, "GET", base+"?q=CONFIG&ci=true&limit=2&offset=1&total=true", "")
		if got, want := strings.Join(keysOf(t, r), " "), "config db.config"; got != want {
			t.Errorf("ci page 2 = %s, want %s", got, want)
		}
		if got := r.Header.Get(TotalCountHeader); got != "4" {
			t.Errorf("X-Total-Count = %q, want 4", got)
		}
		if next := r.Header.Get(NextCursorHeader); next != "db.config" || !strings.Contains(r.Header.Get("Link"), "q=CONFIG") {
			t.Errorf("next cursor %q, link %q", next, r.Header.Get("Link"))
		}
		r = do(t, "GET", base+"?q=CONFIG&ci=true&limit=2&cursor=db.config", "")
		if got, want := strings.Join(keysOf(t, r), " "), "x_CONFIG_y"; got != want || r.Header.Get(TotalCountHeader) != "" {
			t.Errorf("cursor page = %s (total %q), want %s and no total unless asked", got, r.Header.Get(TotalCountHeader), want)
		}
		for _, q := range []string{"ci=yes", "offset=-1", "offset=x", "limit=0"} {
			if r := do(t, "GET", base+"?"+q, ""); r.Status != 422 {
				t.Errorf("%s = %d %s, want 422", q, r.Status, r.Body)
			}
		}
	})
}

// The global list spans namespaces, filters by namespace (and below) and key,
// pages across namespace boundaries with a total, and never shows a
// namespace outside the server's scope.
func TestListAllKV_AcrossNamespacesWithinScope(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ctx := context.Background()
		for _, kv := range [][2]string{{"team.a", "k1"}, {"team.a", "k2"}, {"team.a.sub", "k3"}, {"team.b", "k4"}, {"secret", "k5"}, {"teamx", "K6"}} {
			if _, err := pair.Store.Set(ctx, kv[0], kv[1], str(kv[0]), setOpts); err != nil {
				t.Fatal(err)
			}
		}
		exp := storage.SetOptions{TTL: time.Second}
		if _, err := pair.Store.Set(ctx, "team.a", "k0", str("gone"), exp); err != nil {
			t.Fatal(err)
		}
		c.Advance(2 * time.Second)
		ts := startServer(t, pair, Config{})
		list := func(ts *testServer, q url.Values) (string, string) {
			t.Helper()
			r := do(t, "GET", ts.URL+"/api/v1/kv?"+q.Encode(), "")
			return strings.Join(keysOf(t, r), " "), r.Header.Get(TotalCountHeader)
		}
		if got, total := list(ts, nil); got != "secret/k5 team.a/k1 team.a/k2 team.a.sub/k3 team.b/k4 teamx/K6" || total != "6" {
			t.Errorf("all = %s (total %s)", got, total)
		}
		// A page that starts in one namespace and ends in the next.
		if got, total := list(ts, url.Values{"limit": {"2"}, "offset": {"2"}}); got != "team.a/k2 team.a.sub/k3" || total != "6" {
			t.Errorf("page offset 2 = %s (total %s)", got, total)
		}
		if got, total := list(ts, url.Values{"namespace": {"team.a"}}); got != "team.a/k1 team.a/k2 team.a.sub/k3" || total != "3" {
			t.Errorf("namespace=team.a = %s (total %s): want it and below, not teamx", got, total)
		}
		if got, total := list(ts, url.Values{"q": {"k"}, "ci": {"true"}, "limit": {"1"}, "offset": {"5"}}); got != "teamx/K6" || total != "6" {
			t.Errorf("q=k ci page 6 = %s (total %s)", got, total)
		}
		if got, total := list(ts, url.Values{"q": {"K"}}); got != "teamx/K6" || total != "1" {
			t.Errorf("q=K = %s (total %s)", got, total)
		}

		// A server limited to team.a.* sees nothing else, whatever it asks.
		scoped := startServer(t, pair, Config{Namespaces: []string{"team.a.*"}})
		if got, total := list(scoped, nil); got != "team.a/k1 team.a/k2 team.a.sub/k3" || total != "3" {
			t.Errorf("scoped all = %s (total %s)", got, total)
		}
		if got, total := list(scoped, url.Values{"q": {"k"}, "offset": {"2"}}); got != "team.a.sub/k3" || total != "3" {
			t.Errorf("scoped search = %s (total %s)", got, total)
		}
		for _, ns := range []string{"secret", "team", "team.b"} {
			if r := do(t, "GET", scoped.URL+"/api/v1/kv?namespace="+ns, ""); r.Status != 403 || strings.Contains(r.Body, "k5") {
				t.Errorf("scoped namespace=%s = %d %s, want 403", ns, r.Status, r.Body)
			}
		}
	})
}

// A flow's triggers come with the next schedule date and the webhook path.
func TestFlow_TriggersNextDateAndWebhookPath(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ts := startFlowServer(t, pair, Config{})
	src := `id: trig
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "30 2 * * *"
    timezone: Europe/Paris
  - id: off
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@hourly"
    disabled: true
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cr3t-key
`
	if r := do(t, "POST", ts.URL+"/api/v1/flows", src, "Content-Type: application/x-yaml"); r.Status != 201 {
		t.Fatalf("POST flow = %d %s", r.Status, r.Body)
	}
	before := time.Now()
	r := do(t, "GET", ts.URL+"/api/v1/flows/company.team/trig", "")
	var f Flow
	if err := json.Unmarshal([]byte(r.Body), &f); err != nil || len(f.Triggers) != 3 {
		t.Fatalf("GET flow = %s, %v", r.Body, err)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	next := f.Triggers[0].NextDate.Time
	local := next.In(paris)
	if f.Triggers[0].Cron != "30 2 * * *" || f.Triggers[0].Timezone != "Europe/Paris" || local.Hour() != 2 || local.Minute() != 30 ||
		!next.After(before) || next.Sub(before) > 25*time.Hour {
		t.Errorf("schedule trigger = %+v (next %s in Paris)", f.Triggers[0], local)
	}
	if off := f.Triggers[1]; !off.Disabled || !off.NextDate.IsZero() {
		t.Errorf("disabled schedule = %+v, want no next date", off)
	}
	hook := f.Triggers[2]
	if hook.WebhookPath != "/api/v1/executions/webhook/company.team/trig/s3cr3t-key" || hook.Type != "io.kestra.plugin.core.trigger.Webhook" {
		t.Fatalf("webhook trigger = %+v", hook)
	}
	if r := do(t, "POST", ts.URL+hook.WebhookPath, `{"a":1}`, "Content-Type: application/json"); r.Status >= 300 {
		t.Errorf("POST the webhook path = %d %s", r.Status, r.Body)
	}
}

// A KV trigger comes with what it watches, a Flow trigger with its conditions.
func TestFlow_KVAndFlowTriggersDescribed(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ts := startFlowServer(t, pair, Config{})
	src := `id: trig
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: on_config
    type: io.kvflow.kv.Trigger
    namespace: company
    prefix: config_
    on: [SET, DELETE]
  - id: any_key
    type: io.kvflow.kv.Trigger
  - id: after_etl
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: company.data, flowId: etl}
      - {type: io.kestra.plugin.core.condition.ExecutionNamespace, namespace: company, prefix: true}
      - {type: io.kestra.plugin.core.condition.ExecutionStatus, in: [SUCCESS, WARNING], notIn: [FAILED]}
`
	if r := do(t, "POST", ts.URL+"/api/v1/flows", src, "Content-Type: application/x-yaml"); r.Status != 201 {
		t.Fatalf("POST flow = %d %s", r.Status, r.Body)
	}
	r := do(t, "GET", ts.URL+"/api/v1/flows/company.team/trig", "")
	var f struct{ Triggers []json.RawMessage }
	if err := json.Unmarshal([]byte(r.Body), &f); err != nil || len(f.Triggers) != 3 {
		t.Fatalf("GET flow = %s, %v", r.Body, err)
	}
	for i, want := range []string{
		`{"id":"on_config","type":"io.kvflow.kv.Trigger","namespace":"company","prefix":"config_","on":["SET","DELETE"]}`,
		`{"id":"any_key","type":"io.kvflow.kv.Trigger","namespace":"company.team","on":["SET","DELETE","EXPIRE"]}`,
		`{"id":"after_etl","type":"io.kestra.plugin.core.trigger.Flow","conditions":[{"namespace":"company.data","flowId":"etl"},` +
			`{"namespace":"company","prefix":true},{"in":["SUCCESS","WARNING"],"notIn":["FAILED"]}]}`,
	} {
		if got := string(f.Triggers[i]); got != want {
			t.Errorf("trigger %d = %s\nwant %s", i, got, want)
		}
	}
}

// With ?shadowed=true the inheritance list also answers the entries a nearer
// namespace hides, marked with that namespace; without it nothing changes.
func TestInheritance_ShadowedMarked(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ts := startServer(t, pair, Config{})
	ctx := context.Background()
	for _, kv := range [][2]string{{"a", "shared"}, {"a", "top"}, {"a", "mine"}, {"a.b", "shared"}, {"a.b.c", "mine"}} {
		if _, err := pair.Store.Set(ctx, kv[0], kv[1], str(kv[0]), setOpts); err != nil {
			t.Fatal(err)
		}
	}
	r := do(t, "GET", ts.URL+"/api/v1/namespaces/a.b.c/kv/inheritance?shadowed=true", "")
	var es []Entry
	if err := json.Unmarshal([]byte(r.Body), &es); err != nil {
		t.Fatalf("%d %s: %v", r.Status, r.Body, err)
	}
	got := []string{}
	for _, e := range es {
		got = append(got, e.Namespace+"/"+e.Key+">"+e.ShadowedBy)
	}
	if want := "a.b/shared> a/mine>a.b.c a/shared>a.b a/top>"; strings.Join(got, " ") != want {
		t.Errorf("shadowed inheritance = %v, want %s", got, want)
	}
	if r := do(t, "GET", ts.URL+"/api/v1/namespaces/a.b.c/kv/inheritance", ""); strings.Contains(r.Body, "shadowedBy") || strings.Count(r.Body, `"key"`) != 3 {
		t.Errorf("plain inheritance = %s, want the 3 visible entries unmarked", r.Body)
	}
	if r := do(t, "GET", ts.URL+"/api/v1/namespaces/a.b.c/kv/inheritance?shadowed=maybe", ""); r.Status != 422 {
		t.Errorf("shadowed=maybe = %d, want 422", r.Status)
	}
}

// The Go client reaches the same searches and the global list, within scope.
func TestClient_SearchAndListAll(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ctx := context.Background()
	for _, kv := range [][2]string{{"team.a", "Cfg"}, {"team.a", "other"}, {"team.a.x", "my_cfg"}, {"secret", "cfg"}} {
		if _, err := pair.Store.Set(ctx, kv[0], kv[1], str(kv[0]), setOpts); err != nil {
			t.Fatal(err)
		}
	}
	ts := startServer(t, pair, Config{Namespaces: []string{"team.*"}})
	es, _, err := ts.Client.List(ctx, "team.a", client.ListOptions{Contains: "CFG", IgnoreCase: true})
	if err != nil || len(es) != 1 || es[0].Key != "Cfg" {
		t.Errorf("List q=CFG ci = %v, %v", es, err)
	}
	es, total, err := ts.Client.ListAll(ctx, "", client.ListOptions{Contains: "cfg", IgnoreCase: true, Limit: 1, Offset: 1})
	if err != nil || total != 2 || len(es) != 1 || es[0].Namespace != "team.a.x" || es[0].Key != "my_cfg" {
		t.Errorf("ListAll page 2 = %+v, total %d, %v; want team.a.x/my_cfg of 2 (secret out of scope)", es, total, err)
	}
	if _, _, err := ts.Client.ListAll(ctx, "secret", client.ListOptions{}); kvflow.ErrorCode(err) != kvflow.EFORBIDDEN {
		t.Errorf("ListAll namespace=secret: %v, want EFORBIDDEN", err)
	}
}
