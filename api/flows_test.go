package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/plugin"
	_ "github.com/kvflow/kvflow/tasks/all"
)

const helloFlow = `id: hello
namespace: company.team
description: Greets and remembers it
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: greeting
    value: "Hello {{ inputs.name }}"
  - id: get
    type: io.kestra.plugin.core.kv.Get
    key: greeting
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "said {{ outputs.get.value }}"
outputs:
  - id: said
    value: "{{ outputs.get.value }}"
`

// startFlowServer serves with an engine on the pair.
func startFlowServer(t *testing.T, pair testpair.Pair, cfg Config) *testServer {
	t.Helper()
	cfg.Engine = engine.New(engine.Options{Store: pair.Store, Bucket: pair.Bucket, Repo: pair.DB, FlushInterval: 20 * time.Millisecond})
	return startServer(t, pair, cfg)
}

// Flows: create, refuse duplicates and invalid YAML (every error with its
// line), read, list, update, delete.
func TestFlows_CRUD(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startFlowServer(t, pair, Config{})
		base := ts.URL + "/api/v1/flows"
		r := do(t, "POST", base, helloFlow, "Content-Type: application/x-yaml")
		if r.Status != 201 {
			t.Fatalf("POST flow = %d %s", r.Status, r.Body)
		}
		var f Flow
		json.Unmarshal([]byte(r.Body), &f)
		if f.ID != "hello" || f.Namespace != "company.team" || f.Revision != 1 || len(f.Tasks) != 3 || f.Tasks[0].Type != "io.kestra.plugin.core.kv.Set" ||
			len(f.Inputs) != 1 || f.Inputs[0].Defaults != "world" || f.Source != helloFlow || f.Description != "Greets and remembers it" {
			t.Fatalf("POST flow answered %+v", f)
		}
		if r := do(t, "POST", base, helloFlow); r.Status != 409 || !strings.Contains(r.Message(), "'hello'") {
			t.Fatalf("POST the same flow = %d %s, want 409", r.Status, r.Body)
		}
		bad := "id: broken\nnamespace: company.team\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n  - id: b\n    type: no.such.Task\n"
		r = do(t, "POST", base, bad)
		var body ErrorBody
		json.Unmarshal([]byte(r.Body), &body)
		if r.Status != 422 || len(body.Errors) < 2 {
			t.Fatalf("POST an invalid flow = %d %s, want 422 with each error", r.Status, r.Body)
		}
		lines := map[int]bool{}
		for _, e := range body.Errors {
			lines[e.Line] = true
			if e.Message == "" || e.Field == "" {
				t.Errorf("validation error without field or message: %+v", e)
			}
		}
		if !lines[4] || !lines[7] {
			t.Errorf("validation errors %+v do not point at lines 4 and 7", body.Errors)
		}
		_, err := ts.Client.CreateFlow(context.Background(), bad)
		var ve client.FieldErrors
		if !errors.As(err, &ve) || len(ve) != len(body.Errors) || kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Fatalf("Client.CreateFlow(invalid) = %v, want client.FieldErrors", err)
		}

		if r := do(t, "GET", base+"/company.team/hello", ""); r.Status != 200 || !strings.Contains(r.Body, `"revision":1`) {
			t.Fatalf("GET flow = %d %s", r.Status, r.Body)
		}
		if r := do(t, "GET", base+"/company.team/nope", ""); r.Status != 404 || r.Message() != "Flow 'nope' does not exist in namespace 'company.team'." {
			t.Fatalf("GET missing flow = %d %s", r.Status, r.Body)
		}
		flows, err := ts.Client.Flows(context.Background(), "company.team")
		if err != nil || len(flows) != 1 || flows[0].ID != "hello" {
			t.Fatalf("Client.Flows = %+v, %v", flows, err)
		}
		if r := do(t, "GET", ts.URL+"/api/v1/namespaces", ""); r.Body != `[{"id":"company","flows":0,"keys":0,"keyCount":0,"totalKeyCount":0,"implicit":true},{"id":"company.team","flows":1,"keys":0,"keyCount":0,"totalKeyCount":0,"parent":"company"}]` {
			t.Fatalf("namespaces with a flow = %s", r.Body)
		}

		updated := strings.Replace(helloFlow, "Greets and remembers it", "Greets", 1)
		f, err = ts.Client.UpdateFlow(context.Background(), "company.team", "hello", updated)
		if err != nil || f.Revision != 2 || f.Description != "Greets" {
			t.Fatalf("UpdateFlow = %+v, %v; want revision 2", f, err)
		}
		if r := do(t, "PUT", base+"/company.team/other", updated); r.Status != 422 || !strings.Contains(r.Message(), "do not match") {
			t.Fatalf("PUT with a mismatched id = %d %s, want 422", r.Status, r.Body)
		}
		moved := strings.Replace(helloFlow, "id: hello", "id: ghost", 1)
		if r := do(t, "PUT", base+"/company.team/ghost", moved); r.Status != 404 {
			t.Fatalf("PUT a flow that does not exist = %d %s, want 404", r.Status, r.Body)
		}
		if r := do(t, "DELETE", base+"/company.team/hello", ""); r.Status != 204 {
			t.Fatalf("DELETE flow = %d %s", r.Status, r.Body)
		}
		if err := ts.Client.DeleteFlow(context.Background(), "company.team", "hello"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
			t.Fatalf("DeleteFlow twice = %v, want ENOTFOUND", err)
		}
	})
}

// Executions: run with JSON or form inputs, wait or follow, read state,
// outputs and logs, list them.
func TestExecutions_RunAndFollow(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startFlowServer(t, pair, Config{})
		ctx := context.Background()
		if _, err := ts.Client.CreateFlow(ctx, helloFlow); err != nil {
			t.Fatal(err)
		}
		ex, err := ts.Client.Execute(ctx, "company.team", "hello", map[string]any{"name": "Ada"}, true)
		if err != nil || ex.State != client.SUCCESS || ex.Outputs["said"] != "Hello Ada" || len(ex.TaskRuns) != 3 {
			t.Fatalf("Execute wait=true = %+v, %v", ex, err)
		}
		if typ, raw, err := ts.Client.Get(ctx, "company.team", "greeting"); err != nil || typ != "STRING" || string(raw) != `"Hello Ada"` {
			t.Fatalf("the flow's KV write = %s %s %v", typ, raw, err)
		}

		// Form fields, no wait: follow the execution until it ends.
		r := do(t, "POST", ts.URL+"/api/v1/executions/company.team/hello", "name=Bob", "Content-Type: application/x-www-form-urlencoded")
		var started engine.Execution
		if err := json.Unmarshal([]byte(r.Body), &started); r.Status != 200 || err != nil || started.ID == "" {
			t.Fatalf("POST execution = %d %s", r.Status, r.Body)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := ts.Client.Execution(ctx, started.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State.Terminated() {
				if got.State != client.SUCCESS || got.Outputs["said"] != "Hello Bob" {
					t.Fatalf("execution ended %s with outputs %v", got.State, got.Outputs)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("execution still %s after 30s", got.State)
			}
			time.Sleep(20 * time.Millisecond)
		}
		logs, err := ts.Client.ExecutionLogs(ctx, started.ID)
		if err != nil || !strings.Contains(logLines(logs), "said Hello Bob") {
			t.Fatalf("ExecutionLogs = %v, %v", logs, err)
		}
		list, err := ts.Client.Executions(ctx, "company.team", "hello")
		if err != nil || len(list) != 2 || list[0].ID != started.ID {
			t.Fatalf("Executions = %d, %v; want 2, newest first", len(list), err)
		}

		for _, tc := range []struct {
			name, path, body string
			status           int
		}{
			{"MissingFlow", "/api/v1/executions/company.team/nope", "", 404},
			{"BadInputsJSON", "/api/v1/executions/company.team/hello", "[1]", 422},
			{"BadWait", "/api/v1/executions/company.team/hello?wait=later", "", 422},
			{"MissingExecution", "/api/v1/executions/nope", "", 404},
		} {
			method := "POST"
			if tc.name == "MissingExecution" {
				method = "GET"
			}
			if r := do(t, method, ts.URL+tc.path, tc.body, "Content-Type: application/json"); r.Status != tc.status {
				t.Errorf("%s: %s %s = %d %s, want %d", tc.name, method, tc.path, r.Status, r.Body, tc.status)
			}
		}
		if r := do(t, "GET", ts.URL+"/api/v1/executions?flowId=hello", ""); r.Status != 422 {
			t.Errorf("executions by flowId without namespace = %d, want 422", r.Status)
		}
		// The end counter is bumped as the execution ends: wait for it.
		m := do(t, "GET", ts.URL+"/metrics", "").Body
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) &&
			!strings.Contains(m, `kvflow_executions_finished_total{namespace="company.team",state="SUCCESS"} 2`); {
			time.Sleep(20 * time.Millisecond)
			m = do(t, "GET", ts.URL+"/metrics", "").Body
		}
		for _, want := range []string{`kvflow_executions_started_total{namespace="company.team"} 2`, `kvflow_executions_finished_total{namespace="company.team",state="SUCCESS"} 2`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "executions"))
			}
		}
	})
}

func logLines(ls []client.LogLine) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Message + "\n")
	}
	return b.String()
}

// With an allow-list, flows and executions elsewhere are refused or hidden.
func TestFlows_NamespaceAllowList(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	open := startFlowServer(t, pair, Config{})
	if _, err := open.Client.CreateFlow(context.Background(), helloFlow); err != nil {
		t.Fatal(err)
	}
	ex, err := open.Client.Execute(context.Background(), "company.team", "hello", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	ts := startFlowServer(t, pair, Config{Namespaces: []string{"other.*"}})
	other := strings.Replace(helloFlow, "namespace: company.team", "namespace: other.team", 1)
	if r := do(t, "POST", ts.URL+"/api/v1/flows", strings.Replace(helloFlow, "id: hello", "id: x", 1)); r.Status != 403 {
		t.Fatalf("POST a flow in a denied namespace = %d %s, want 403", r.Status, r.Body)
	}
	if r := do(t, "POST", ts.URL+"/api/v1/flows", other); r.Status != 201 {
		t.Fatalf("POST a flow in an allowed namespace = %d %s", r.Status, r.Body)
	}
	for _, path := range []string{"/api/v1/flows/company.team/hello", "/api/v1/executions/" + ex.ID, "/api/v1/executions/" + ex.ID + "/logs", "/api/v1/executions?namespace=company.team"} {
		if r := do(t, "GET", ts.URL+path, ""); r.Status != 403 {
			t.Errorf("GET %s = %d, want 403", path, r.Status)
		}
	}
	if r := do(t, "POST", ts.URL+"/api/v1/executions/company.team/hello", ""); r.Status != 403 {
		t.Errorf("execute in a denied namespace = %d, want 403", r.Status)
	}
	flows, _ := ts.Client.Flows(context.Background(), "")
	if len(flows) != 1 || flows[0].Namespace != "other.team" {
		t.Fatalf("Flows seen through the allow-list = %+v", flows)
	}
	if list, _ := ts.Client.Executions(context.Background(), "", ""); len(list) != 0 {
		t.Fatalf("Executions seen through the allow-list = %d, want 0", len(list))
	}
}

// blockType is a test task that runs until its context ends.
const blockType = "kvflow.test.Block"

type blockTask struct{}

func (blockTask) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func init() {
	plugin.Default.MustRegister(plugin.Definition{Type: blockType, New: func() plugin.Task { return &blockTask{} }})
}

// Shutting down kills executions still running and marks them KILLED.
func TestServe_Shutdown_MarksRunningExecutions(t *testing.T) {
	pair := testpair.Local(t, noOpts)
	ts := startFlowServer(t, pair, Config{ShutdownTimeout: 2 * time.Second})
	slow := "id: slow\nnamespace: company.team\ntasks:\n  - id: wait\n    type: " + blockType + "\n"
	if _, err := ts.Client.CreateFlow(context.Background(), slow); err != nil {
		t.Fatal(err)
	}
	ex, err := ts.Client.Execute(context.Background(), "company.team", "slow", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	got, err := pair.DB.GetExecution(context.Background(), ex.ID)
	if err != nil || got.State != engine.KILLED {
		t.Fatalf("execution after shutdown = %+v, %v; want KILLED", got, err)
	}
}

// Two creates of the same flow at once: the database lets one in, the
// other gets 409 (no check-then-write window).
func TestFlows_ConcurrentCreate_OneConflict(t *testing.T) {
	// Both pairs: only PostgreSQL runs the two creates' transactions at once
	// (SQLite takes one writer at a time), so only there could a
	// check-then-write window let both in.
	onBothPairs(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startFlowServer(t, pair, Config{})
		for round := range 5 {
			src := strings.Replace(helloFlow, "id: hello", fmt.Sprintf("id: race%d", round), 1)
			statuses := make(chan int, 2)
			var start sync.WaitGroup
			start.Add(1)
			for range 2 {
				go func() {
					start.Wait()
					statuses <- do(t, "POST", ts.URL+"/api/v1/flows", src, "Content-Type: application/x-yaml").Status
				}()
			}
			start.Done()
			got := []int{<-statuses, <-statuses}
			sort.Ints(got)
			if got[0] != 201 || got[1] != 409 {
				t.Fatalf("round %d: two concurrent creates answered %v, want [201 409]", round, got)
			}
		}
	})
}

// A task that runs past its timeout fails with the timeout code, not as
// an unreachable service.
func TestExecutions_TaskTimeout_OwnCode(t *testing.T) {
	if got := statusOf(kvflow.ETIMEOUT); got != 504 {
		t.Fatalf("ETIMEOUT maps to %d, want 504", got)
	}
	if got := client.CodeOf(504); got != kvflow.ETIMEOUT {
		t.Fatalf("504 maps back to %q, want %q", got, kvflow.ETIMEOUT)
	}
}

// ?kvSnapshot=true pins one execution's KV reads to its start, though its
// flow does not ask for it; without it the same flow reads the new value.
func TestExecutions_KVSnapshotPerExecution(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startFlowServer(t, pair, Config{})
		ctx := context.Background()
		const src = `id: reader
namespace: company.team
tasks:
  - {id: pause, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.3S}
  - {id: read, type: io.kestra.plugin.core.kv.Get, key: k}
outputs:
  - {id: k, type: STRING, value: "{{ kv('k') }}"}
`
		if _, err := ts.Client.CreateFlow(ctx, src); err != nil {
			t.Fatal(err)
		}
		for _, snapshot := range []bool{true, false} {
			c.Set(time.Now()) // the store's clock, which dates versions, follows the engine's
			if r := do(t, "PUT", ts.URL+"/api/v1/namespaces/company.team/kv/k", `"before"`, "Content-Type: application/json"); r.Status != 200 {
				t.Fatalf("PUT k = %d %s", r.Status, r.Body)
			}
			ex, err := ts.Client.ExecuteWith(ctx, "company.team", "reader", nil, client.ExecuteOptions{KVSnapshot: snapshot})
			if err != nil {
				t.Fatal(err)
			}
			if (ex.KVSnapshot != nil) != snapshot {
				t.Fatalf("kvSnapshot=%v: execution's snapshot point = %v", snapshot, ex.KVSnapshot)
			}
			// Another writer changes k while the execution sleeps.
			c.Set(time.Now().Add(time.Millisecond))
			if r := do(t, "PUT", ts.URL+"/api/v1/namespaces/company.team/kv/k", `"after"`, "Content-Type: application/json"); r.Status != 200 {
				t.Fatalf("PUT k = %d %s", r.Status, r.Body)
			}
			deadline := time.Now().Add(30 * time.Second)
			for !ex.State.Terminated() {
				if time.Now().After(deadline) {
					t.Fatalf("execution still %s after 30s", ex.State)
				}
				time.Sleep(20 * time.Millisecond)
				if ex, err = ts.Client.Execution(ctx, ex.ID); err != nil {
					t.Fatal(err)
				}
			}
			want := "after"
			if snapshot {
				want = "before"
			}
			if ex.State != client.SUCCESS || ex.Outputs["k"] != want || ex.TaskRuns[1].Outputs["value"] != want {
				t.Errorf("kvSnapshot=%v: %s, outputs %v, Get %v; want %q", snapshot, ex.State, ex.Outputs, ex.TaskRuns[1].Outputs, want)
			}
			if (ex.KVSnapshot != nil) != snapshot || (snapshot && !ex.KVSnapshot.Equal(ex.Start)) {
				t.Errorf("kvSnapshot=%v: stored snapshot point = %v, start %v", snapshot, ex.KVSnapshot, ex.Start)
			}
		}
		if r := do(t, "POST", ts.URL+"/api/v1/executions/company.team/reader?kvSnapshot=maybe", "{}", "Content-Type: application/json"); r.Status != 422 || !strings.Contains(r.Message(), "kvSnapshot") {
			t.Errorf("kvSnapshot=maybe = %d %s, want 422 naming kvSnapshot", r.Status, r.Body)
		}
	})
}
