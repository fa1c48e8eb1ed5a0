package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// startScopedServer serves with an engine whose policy has grants (source →
// targets, as allowedNamespaces), and a token.
func startScopedServer(t *testing.T, pair testpair.Pair, namespaces []string, grants map[string][]string) *testServer {
	t.Helper()
	eng := engine.New(engine.Options{Store: pair.Store, Repo: pair.DB, Policy: storage.NewPolicy(grants), FlushInterval: 20 * time.Millisecond})
	return startServer(t, pair, Config{Engine: eng, Token: "t0k", Namespaces: namespaces})
}

// runFlow deploys a flow of one task through ts and runs it to its end.
func runFlow(t *testing.T, ts *testServer, ns, id, task string) *client.Execution {
	t.Helper()
	ctx := context.Background()
	src := "id: " + id + "\nnamespace: " + ns + "\ntasks:\n  - " + task + "\n"
	if _, err := ts.Client.CreateFlow(ctx, src); err != nil {
		t.Fatalf("deploying %s: %v", id, err)
	}
	ex, err := ts.Client.Execute(ctx, ns, id, nil, true)
	if err != nil {
		t.Fatalf("running %s: %v", id, err)
	}
	return ex
}

func seed(t *testing.T, s *storage.Store, ns, key string, v storage.Value) {
	t.Helper()
	if _, err := s.Set(context.Background(), ns, key, v, storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
}

// wantValue checks that ns/key still holds want.
func wantValue(t *testing.T, s *storage.Store, ns, key string, want any) {
	t.Helper()
	_, v, err := s.Get(context.Background(), ns, key)
	if err != nil || v.V != want {
		t.Errorf("%s/%s = %v, %v; want %v untouched", ns, key, v.V, err, want)
	}
}

// A caller the API limits to team.a.* cannot reach team through a flow: not
// with a task naming it, not with kv(), not through kv() inheritance, not
// with PurgeKV, and not later, when the stored flow runs on its own.
func TestFlows_CannotEscapeTheAPIScope(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ctx := context.Background()
	seed(t, pair.Store, "team", "secret", str("s3cr3t"))
	seed(t, pair.Store, "team", "n", storage.Value{Type: storage.NUMBER, V: int64(1)})
	ts := startScopedServer(t, pair, []string{"team.a.*"}, nil)

	if r := do(t, "GET", ts.URL+"/api/v1/namespaces/team/kv/secret", "", "Authorization: Bearer t0k"); r.Status != 403 {
		t.Fatalf("GET team/secret through the API = %d %s, want 403", r.Status, r.Body)
	}
	escapes := []struct{ name, task string }{
		{"Get", "{id: t, type: io.kestra.plugin.core.kv.Get, key: secret, namespace: team}"},
		{"KVFunctionWithNamespace", `{id: t, type: io.kestra.plugin.core.log.Log, message: "{{ kv('secret', 'team') }}"}`},
		{"Set", "{id: t, type: io.kestra.plugin.core.kv.Set, key: secret, value: pwned, namespace: team}"},
		{"Delete", "{id: t, type: io.kestra.plugin.core.kv.Delete, key: secret, namespace: team}"},
		{"Increment", "{id: t, type: io.kvflow.kv.Increment, key: n, namespace: team}"},
		{"GetKeys", "{id: t, type: io.kestra.plugin.core.kv.GetKeys, namespace: team}"},
		{"PurgeKV", "{id: t, type: io.kestra.plugin.core.kv.PurgeKV, namespaces: [team], expiredOnly: false}"},
		{"PurgeKVPattern", "{id: t, type: io.kestra.plugin.core.kv.PurgeKV, namespacePattern: 'te*', expiredOnly: false}"},
		{"PurgeKVEverything", "{id: t, type: io.kestra.plugin.core.kv.PurgeKV, expiredOnly: false}"},
		{"SetTemplatedNamespace", "{id: t, type: io.kestra.plugin.core.kv.Set, key: secret, value: pwned, namespace: \"{{ 'team' }}\"}"},
	}
	for i, tc := range escapes {
		t.Run(tc.name, func(t *testing.T) {
			ex := runFlow(t, ts, "team.a", "escape"+string(rune('a'+i)), tc.task)
			if ex.State != client.FAILED || !strings.Contains(ex.Error, "Access to 'team' namespace is not allowed from 'team.a'") ||
				!strings.Contains(ex.Error, "outside the scope of whoever deployed or started this execution (team.a.*)") {
				t.Fatalf("state %s, error %q; want FAILED, refused for team", ex.State, ex.Error)
			}
			if strings.Contains(ex.Error+logLines(ex.Logs), "s3cr3t") {
				t.Errorf("the secret leaked: %s %s", ex.Error, logLines(ex.Logs))
			}
		})
	}
	wantValue(t, pair.Store, "team", "secret", "s3cr3t")
	wantValue(t, pair.Store, "team", "n", int64(1))

	t.Run("Inheritance", func(t *testing.T) {
		ex := runFlow(t, ts, "team.a", "inherit", `{id: t, type: io.kestra.plugin.core.log.Log, message: "{{ kv('secret') }}"}`)
		if ex.State != client.FAILED || !strings.Contains(ex.Error, "The key 'secret' does not exist in the namespace 'team.a'") {
			t.Fatalf("inheritance past the scope: state %s, error %q; want FAILED, key missing", ex.State, ex.Error)
		}
		ex = runFlow(t, ts, "team.a", "inherit_soft", `{id: t, type: io.kestra.plugin.core.log.Log, message: "got {{ kv('secret', errorOnMissing=false) | default('nothing') }}"}`)
		if ex.State != client.SUCCESS || !strings.Contains(logLines(ex.Logs), "got nothing") {
			t.Fatalf("inheritance past the scope, errorOnMissing false: %s %q %s", ex.State, ex.Error, logLines(ex.Logs))
		}
		inherited, err := ts.Client.Inherited(ctx, "team.a")
		if err != nil || len(inherited) != 0 {
			t.Fatalf("inheritance API from team.a = %+v, %v; want nothing from team", inherited, err)
		}
	})

	t.Run("OwnNamespaceWorks", func(t *testing.T) {
		for i, task := range []string{
			"{id: t, type: io.kestra.plugin.core.kv.Set, key: mine, value: hello}",
			"{id: t, type: io.kestra.plugin.core.kv.Set, key: mine2, value: hello, namespace: team.a}",
			`{id: t, type: io.kestra.plugin.core.log.Log, message: "{{ kv('mine') }} {{ kv('mine2', 'team.a') }}"}`,
			"{id: t, type: io.kvflow.kv.Increment, key: count}",
			"{id: t, type: io.kestra.plugin.core.kv.GetKeys}",
			"{id: t, type: io.kestra.plugin.core.kv.PurgeKV, namespaces: [team.a], includeChildNamespaces: false, keyPattern: 'mine2'}",
			"{id: t, type: io.kestra.plugin.core.kv.Delete, key: mine}",
		} {
			if ex := runFlow(t, ts, "team.a", "own"+string(rune('a'+i)), task); ex.State != client.SUCCESS {
				t.Fatalf("%s: state %s, error %q", task, ex.State, ex.Error)
			}
		}
		wantValue(t, pair.Store, "team.a", "count", int64(1))
	})

	t.Run("StoredFlowKeepsItsDeployersScope", func(t *testing.T) {
		rec, err := pair.DB.GetFlow(ctx, "team.a", "escapea")
		if err != nil || rec.Scope.String() != "team.a.*" {
			t.Fatalf("stored flow scope = %s, %v; want team.a.*", rec.Scope, err)
		}
		// A trigger or a worker runs the stored flow with no caller: the
		// deployer's scope, kept with the flow, still holds.
		f, err := engine.Parse("escapea.yaml", []byte(rec.Source), plugin.Default)
		if err != nil {
			t.Fatal(err)
		}
		f.Scope = rec.Scope
		eng := engine.New(engine.Options{Store: pair.Store, Repo: pair.DB})
		ex, err := eng.Run(ctx, f, nil, engine.RunOptions{})
		if err != nil || ex.State != engine.FAILED || !strings.Contains(ex.Error, "Access to 'team' namespace is not allowed") {
			t.Fatalf("stored flow run by a trigger: %v, %s %q; want FAILED", err, ex.State, ex.Error)
		}
		stored, err := pair.DB.GetExecution(ctx, ex.ID)
		if err != nil || stored.Scope.String() != "team.a.*" {
			t.Fatalf("stored execution scope = %v, %v; want team.a.*", stored, err)
		}
	})

	t.Run("StarterNarrowsTheDeployersScope", func(t *testing.T) {
		// Deployed by an unrestricted caller, the flow may read its ancestor;
		// started by a caller limited to team.a.*, it may not.
		open := startScopedServer(t, pair, nil, nil)
		ex := runFlow(t, open, "team.a", "reader", "{id: t, type: io.kestra.plugin.core.kv.Get, key: secret, namespace: team, errorOnMissing: true}")
		if ex.State != client.SUCCESS {
			t.Fatalf("unrestricted run: %s %q", ex.State, ex.Error)
		}
		ex, err := ts.Client.Execute(ctx, "team.a", "reader", nil, true)
		if err != nil || ex.State != client.FAILED || !strings.Contains(ex.Error, "Access to 'team' namespace is not allowed") {
			t.Fatalf("run started by a limited caller: %v, %s %q; want FAILED", err, ex.State, ex.Error)
		}
	})
}

// Inside the scope, ancestors and granted children stay reachable; granted
// children outside the scope are not, and PurgeKV does not touch them.
func TestFlows_ScopeKeepsAncestorsAndGrantedChildren(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	seed(t, pair.Store, "team", "secret", str("s3cr3t"))
	grants := map[string][]string{"team.a": {"team.a.*"}}

	wide := startScopedServer(t, pair, []string{"team.*"}, grants)
	ex := runFlow(t, wide, "team.a", "ancestors", `{id: t, type: io.kestra.plugin.core.log.Log, message: "{{ kv('secret') }} {{ kv('secret', 'team') }}"}`)
	if ex.State != client.SUCCESS || !strings.Contains(logLines(ex.Logs), "s3cr3t s3cr3t") {
		t.Fatalf("ancestor in scope: %s %q %s", ex.State, ex.Error, logLines(ex.Logs))
	}
	if ex := runFlow(t, wide, "team.a", "child", "{id: t, type: io.kestra.plugin.core.kv.Set, key: k, value: v, namespace: team.a.child}"); ex.State != client.SUCCESS {
		t.Fatalf("granted child in scope: %s %q", ex.State, ex.Error)
	}

	narrow := startScopedServer(t, pair, []string{"team.a", "team.a.pub.*"}, grants)
	if ex := runFlow(t, narrow, "team.a", "pub", "{id: t, type: io.kestra.plugin.core.kv.Set, key: k, value: v, namespace: team.a.pub.x}"); ex.State != client.SUCCESS {
		t.Fatalf("granted child in scope: %s %q", ex.State, ex.Error)
	}
	if ex := runFlow(t, narrow, "team.a", "priv", "{id: t, type: io.kestra.plugin.core.kv.Set, key: k, value: w, namespace: team.a.child}"); ex.State != client.FAILED ||
		!strings.Contains(ex.Error, "Access to 'team.a.child' namespace is not allowed") {
		t.Fatalf("granted child outside the scope: %s %q; want FAILED", ex.State, ex.Error)
	}
	seed(t, pair.Store, "team.a", "k", str("own"))
	ex = runFlow(t, narrow, "team.a", "purge_children", "{id: t, type: io.kestra.plugin.core.kv.PurgeKV, namespaces: [team.a], expiredOnly: false}")
	if ex.State != client.FAILED || !strings.Contains(ex.Error, "Access to 'team.a.child' namespace is not allowed") {
		t.Fatalf("PurgeKV over children outside the scope: %s %q; want FAILED", ex.State, ex.Error)
	}
	wantValue(t, pair.Store, "team.a.child", "k", "v")
	wantValue(t, pair.Store, "team.a.pub.x", "k", "v")
	wantValue(t, pair.Store, "team.a", "k", "own")
	ex = runFlow(t, narrow, "team.a", "purge_pattern", "{id: t, type: io.kestra.plugin.core.kv.PurgeKV, namespacePattern: 'team.a.*', expiredOnly: false}")
	if ex.State != client.FAILED || !strings.Contains(ex.Error, "'team.a.child'") {
		t.Fatalf("PurgeKV by pattern over children outside the scope: %s %q; want FAILED", ex.State, ex.Error)
	}
	wantValue(t, pair.Store, "team.a.child", "k", "v")
	ex = runFlow(t, narrow, "team.a", "purge_own", "{id: t, type: io.kestra.plugin.core.kv.PurgeKV, namespaces: [team.a, team.a.pub.x], includeChildNamespaces: false, expiredOnly: false}")
	if ex.State != client.SUCCESS {
		t.Fatalf("PurgeKV inside the scope: %s %q", ex.State, ex.Error)
	}
	for _, ns := range []string{"team.a", "team.a.pub.x"} {
		if _, _, err := pair.Store.Get(context.Background(), ns, "k"); err == nil {
			t.Errorf("%s/k survived the purge", ns)
		}
	}
	wantValue(t, pair.Store, "team.a.child", "k", "v")
}

// A caller limited to team.a.* cannot deploy a trigger that reads past that
// scope: a KV trigger on team, a Flow trigger on team's executions (their
// outputs become its variables). Each is a 422 naming the field.
func TestFlows_TriggersOutsideTheScopeAreRefusedAtDeploy(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ts := startScopedServer(t, pair, []string{"team.a.*"}, nil)
	for _, tc := range []struct{ trigger, field string }{
		{"{id: t, type: io.kvflow.kv.Trigger, namespace: team}", "triggers[0].namespace"},
		{"{id: t, type: io.kestra.plugin.core.trigger.Flow, conditions: [{type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: team, flowId: src}]}",
			"triggers[0].conditions[0].namespace"},
	} {
		src := "id: trig\nnamespace: team.a\ntasks:\n  - {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\ntriggers:\n  - " + tc.trigger + "\n"
		for _, method := range []string{"POST", "PUT"} {
			path := "/api/v1/flows"
			if method == "PUT" {
				path += "/team.a/trig"
			}
			r := do(t, method, ts.URL+path, src, "Authorization: Bearer t0k", "Content-Type: application/x-yaml")
			if r.Status != 422 || !strings.Contains(r.Body, tc.field) || !strings.Contains(r.Body, "never fire") {
				t.Errorf("%s %s = %d %s; want 422 naming %s", method, tc.trigger, r.Status, r.Body, tc.field)
			}
		}
	}
	// Within the scope, both deploy.
	src := "id: ok\nnamespace: team.a\ntasks:\n  - {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\ntriggers:\n" +
		"  - {id: k, type: io.kvflow.kv.Trigger, namespace: team.a}\n" +
		"  - {id: f, type: io.kestra.plugin.core.trigger.Flow, conditions: [{type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: team.a.b, flowId: src}]}\n"
	if r := do(t, "POST", ts.URL+"/api/v1/flows", src, "Authorization: Bearer t0k", "Content-Type: application/x-yaml"); r.Status != 201 {
		t.Fatalf("deploy within the scope = %d %s", r.Status, r.Body)
	}
}

// /metrics on a server limited to team.a.* shows no series of a namespace
// outside it (the sweeper purges every namespace), and keeps the others.
func TestMetrics_LeaveOutNamespacesOutsideTheScope(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ts := startScopedServer(t, pair, []string{"team.a.*"}, nil)
	ts.Server.metrics.purged.WithLabelValues("hidden.payroll").Add(6)
	ts.Server.metrics.purged.WithLabelValues("team.a.b").Add(2)
	ts.Server.metrics.deleted.WithLabelValues("hidden.payroll").Add(1)
	r := do(t, "GET", ts.URL+"/metrics", "", "Authorization: Bearer t0k")
	if r.Status != 200 || strings.Contains(r.Body, "hidden.payroll") || !strings.Contains(r.Body, `kvflow_kv_keys_expired_purged_total{namespace="team.a.b"} 2`) ||
		!strings.Contains(r.Body, "go_goroutines") {
		t.Fatalf("/metrics = %d\n%s", r.Status, r.Body)
	}
}

// Malformed requests get a JSON 422 naming what is wrong: an empty path
// segment (net/http would redirect //), a query flag that is not a boolean.
func TestRequests_EmptySegmentAndBadFlag_422(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ts := startServer(t, pair, Config{})
	for _, path := range []string{"/api/v1/namespaces//team/kv/secret", "/api/v1/namespaces/team/kv//k", "/api/v1/namespaces/team/kv?limit=5&total=maybe"} {
		r := do(t, "GET", ts.URL+path, "")
		if r.Status != 422 || !strings.HasPrefix(r.Body, `{"message":`) {
			t.Errorf("GET %s = %d %s, want a JSON 422", path, r.Status, r.Body)
		}
	}
}
