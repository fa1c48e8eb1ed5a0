package examples_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/config"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	_ "github.com/kvflow/kvflow/tasks/all"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }

const ordersCSV = "order_id,customer_name,total\n1,Kelly Olsen,212.5\n2,Derek Walker,54.1\n"

// TestExamples runs every example flow, in the order the docs show them,
// on SQLite + a directory and on PostgreSQL + MinIO, and checks their
// outputs, logs and the values left in the KV store.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) != 12 {
		t.Errorf("%d example flows, want 12: %v (add a check for a new one)", len(files), files)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/datasets/kestra/datasets/raw/main/csv/orders.csv" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		io.WriteString(w, ordersCSV)
	}))
	defer srv.Close()

	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			x := &examples{t: t, p: p, srv: srv.URL}
			cfg := config.Config{AllowedNamespaces: map[string][]string{"company.team.etl": {"company.shared"}},
				Download: config.Download{Allow: []string{"127.0.0.1"}}} // the test server
			x.eng = engine.New(engine.Options{Store: p.Store, Bucket: p.Bucket, Repo: p.DB, Policy: cfg.Policy(), HTTPClient: cfg.HTTPClient()})
			defer x.eng.Shutdown(context.Background())
			x.seedFlows()
			x.counter()
			x.atomicCounter()
			x.ttl()
			x.crossNamespace()
			x.errorsHandler()
			x.fanout()
		})
	}
}

type examples struct {
	t   *testing.T
	p   testpair.Pair
	eng *engine.Engine
	srv string
}

// run loads examples/<name>.yaml (the Download URI pointed at the test
// server) and runs it.
func (x *examples) run(name string, inputs map[string]any) *engine.Execution {
	return x.runOn(x.eng, name, inputs)
}

func (x *examples) runOn(eng *engine.Engine, name string, inputs map[string]any) *engine.Execution {
	t := x.t
	t.Helper()
	src, err := os.ReadFile(name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	src = []byte(strings.ReplaceAll(string(src), "https://huggingface.co", x.srv))
	flow, err := engine.Parse(name+".yaml", src, plugin.Default)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ex, err := eng.Run(context.Background(), flow, inputs, engine.RunOptions{})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// The records agree with what Run returned.
	stored, err := engine.New(engine.Options{Store: x.p.Store, Bucket: x.p.Bucket, Repo: x.p.DB}).Execution(context.Background(), ex.ID)
	if err != nil {
		t.Fatalf("%s: stored execution: %v", name, err)
	}
	if stored.State != ex.State || len(stored.TaskRuns) != len(ex.TaskRuns) || !reflect.DeepEqual(stored.Outputs, ex.Outputs) {
		t.Errorf("%s: stored execution %+v differs from %+v", name, stored, ex)
	}
	return ex
}

func (x *examples) want(ex *engine.Execution, state engine.State) {
	x.t.Helper()
	if ex.State != state {
		x.t.Fatalf("%s: state %s, want %s (%s)\n%s", ex.FlowID, ex.State, state, ex.Error, logs(ex))
	}
}

func logs(ex *engine.Execution) string {
	var b strings.Builder
	for _, l := range ex.Logs {
		fmt.Fprintf(&b, "%s %s %s\n", l.Level, l.TaskID, l.Message)
	}
	return b.String()
}

// messages returns the log messages of a task.
func messages(ex *engine.Execution, taskID string) []string {
	var out []string
	for _, l := range ex.Logs {
		if l.TaskID == taskID && l.Level != "DEBUG" {
			out = append(out, l.Message)
		}
	}
	return out
}

func output(ex *engine.Execution, taskID, name string) any {
	for _, tr := range ex.TaskRuns {
		if tr.TaskID == taskID {
			return tr.Outputs[name]
		}
	}
	return nil
}

func (x *examples) get(ns, key string) (*storage.Entry, any, error) {
	e, v, err := x.p.Store.Get(context.Background(), ns, key)
	return e, v.V, err
}

// seedFlows runs the flows of the KV Store docs in the docs' order.
func (x *examples) seedFlows() {
	t := x.t
	ctx := context.Background()

	ex := x.run("set_kv", nil)
	x.want(ex, engine.SUCCESS)
	uri, _ := output(ex, "query", "uri").(string)
	if !strings.HasPrefix(uri, "kestra:///_executions/company/team/set_kv/"+ex.ID+"/files/") || !strings.HasSuffix(uri, "orders.csv") {
		t.Errorf("set_kv: uri = %q", uri)
	}
	if code := output(ex, "query", "code"); code != int64(200) {
		t.Errorf("set_kv: code = %#v", code)
	}
	f, err := plugin.OpenFile(ctx, x.p.Bucket, uri)
	if err != nil {
		t.Fatalf("set_kv: open %s: %v", uri, err)
	}
	body, _ := io.ReadAll(f)
	f.Close()
	if string(body) != ordersCSV {
		t.Errorf("set_kv: file holds %q", body)
	}
	entry, v, err := x.get("company.team", "my_key")
	if err != nil || v != uri || entry.Type != storage.STRING {
		t.Fatalf("set_kv: my_key = %v (%v), %v", v, entry, err)
	}
	if entry.Expires == nil || entry.Expires.Sub(entry.Updated) != 30*24*time.Hour {
		t.Errorf("set_kv: my_key expires %v, updated %v; want P30D later", entry.Expires, entry.Updated)
	}

	ex = x.run("log_key", nil)
	x.want(ex, engine.SUCCESS)
	if got := messages(ex, "log_key"); !reflect.DeepEqual(got, []string{uri}) {
		t.Errorf("log_key: logged %q", got)
	}

	ex = x.run("get_value_by_key", nil)
	x.want(ex, engine.SUCCESS)
	if got := output(ex, "get_value_by_key", "value"); got != uri {
		t.Errorf("get_value_by_key: value = %#v", got)
	}
	if got := messages(ex, "log_key_get"); !reflect.DeepEqual(got, []string{uri}) {
		t.Errorf("get_value_by_key: logged %q", got)
	}

	ex = x.run("get_keys_by_prefix", nil)
	x.want(ex, engine.SUCCESS)
	if got := output(ex, "get_keys_by_prefix", "keys"); !reflect.DeepEqual(got, []string{}) && !reflect.DeepEqual(got, []any{}) {
		t.Errorf("get_keys_by_prefix: keys = %#v, want an empty list", got)
	}
	if got := messages(ex, "log_key_prefix"); !reflect.DeepEqual(got, []string{"[]"}) {
		t.Errorf("get_keys_by_prefix: logged %q", got)
	}
	for _, k := range []string{"test_b", "test_a", "other"} {
		if _, err := x.p.Store.Set(ctx, "company.team", k, storage.String(k), storage.SetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ex = x.run("get_keys_by_prefix", nil)
	x.want(ex, engine.SUCCESS)
	if got := messages(ex, "log_key_prefix"); !reflect.DeepEqual(got, []string{`["test_a","test_b"]`}) {
		t.Errorf("get_keys_by_prefix: logged %q", got)
	}

	ex = x.run("delete_kv_pair", nil)
	x.want(ex, engine.SUCCESS)
	if got := output(ex, "delete_kv_pair", "deleted"); got != true {
		t.Errorf("delete_kv_pair: deleted = %#v", got)
	}
	if got := messages(ex, "log_kv_deleted"); !reflect.DeepEqual(got, []string{"true"}) {
		t.Errorf("delete_kv_pair: logged %q", got)
	}
	if _, _, err := x.get("company.team", "my_key"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("delete_kv_pair: my_key still there: %v", err)
	}
	ex = x.run("delete_kv_pair", nil)
	x.want(ex, engine.SUCCESS)
	if got := messages(ex, "log_kv_deleted"); !reflect.DeepEqual(got, []string{"false"}) {
		t.Errorf("delete_kv_pair again: logged %q", got)
	}

	ex = x.run("kv_json_flow", nil)
	x.want(ex, engine.SUCCESS)
	if got := messages(ex, "get_json_kv_pebble"); !reflect.DeepEqual(got, []string{"Name: John Doe", "Age: 32", "City: Paris"}) {
		t.Errorf("kv_json_flow: logged %q", got)
	}
	if got := messages(ex, "get_json_kv_nested_value"); !reflect.DeepEqual(got, []string{"Country: France"}) {
		t.Errorf("kv_json_flow: logged %q", got)
	}
	if _, v, err := x.get("company.team", "my_json_key"); err != nil || !strings.Contains(fmt.Sprint(v), `"city": "Paris"`) {
		t.Errorf("kv_json_flow: my_json_key = %v, %v", v, err)
	}
}

func (x *examples) counter() {
	for n := int64(1); n <= 3; n++ {
		ex := x.run("counter", nil)
		x.want(ex, engine.SUCCESS)
		if got := ex.Outputs["count"]; got != n {
			x.t.Errorf("counter run %d: count = %#v", n, got)
		}
	}
	if e, v, err := x.get("company.team", "visits"); err != nil || v != int64(3) || e.Type != storage.NUMBER {
		x.t.Errorf("counter: visits = %#v (%v), %v", v, e, err)
	}
	ex := x.run("counter", map[string]any{"key": "other_counter"})
	x.want(ex, engine.SUCCESS)
	if got := ex.Outputs["count"]; got != int64(1) {
		x.t.Errorf("counter with key input: count = %#v", got)
	}
}

// atomicCounter runs the Increment example from several executions at
// once: no count is lost.
func (x *examples) atomicCounter() {
	const runs = 8
	done := make(chan *engine.Execution, runs)
	for i := 0; i < runs; i++ {
		go func() { done <- x.run("atomic_counter", nil) }()
	}
	for i := 0; i < runs; i++ {
		x.want(<-done, engine.SUCCESS)
	}
	if e, v, err := x.get("company.team", "page_hits"); err != nil || v != int64(runs) || e.Version != runs {
		x.t.Errorf("atomic_counter: page_hits = %#v (%+v), %v; want %d", v, e, err, runs)
	}
}

func (x *examples) ttl() {
	t := x.t
	ex := x.run("ttl", map[string]any{"ttl": "PT0.3S"})
	x.want(ex, engine.SUCCESS)
	e, v, err := x.get("company.team", "session_token")
	if err != nil || v != "token-"+ex.ID || e.Expires == nil || e.Expires.Sub(e.Updated) != 300*time.Millisecond || e.Description != "expires after PT0.3S" {
		t.Fatalf("ttl: session_token = %v (%+v), %v", v, e, err)
	}
	if got := messages(ex, "read_back"); !reflect.DeepEqual(got, []string{"token token-" + ex.ID + " lives for PT0.3S"}) {
		t.Errorf("ttl: logged %q", got)
	}
	time.Sleep(400 * time.Millisecond)
	if _, _, err := x.get("company.team", "session_token"); kvflow.ErrorCode(err) != kvflow.EEXPIRED {
		t.Errorf("ttl: after the TTL: %v, want expired", err)
	}
	ex = x.run("ttl", nil)
	x.want(ex, engine.SUCCESS)
	if e, _, err := x.get("company.team", "session_token"); err != nil || e.Expires.Sub(e.Updated) != time.Hour {
		t.Errorf("ttl: default TTL gives %+v, %v", e, err)
	}
}

func (x *examples) crossNamespace() {
	t := x.t
	ctx := context.Background()
	if _, err := x.p.Store.Set(ctx, "company.shared", "api_endpoint", storage.String("https://api.example.com"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	// Without the configuration, company.shared is out of reach.
	strict := engine.New(engine.Options{Store: x.p.Store, Bucket: x.p.Bucket, Repo: x.p.DB})
	ex := x.runOn(strict, "cross_namespace", nil)
	x.want(ex, engine.FAILED)
	if !strings.Contains(ex.Error, "Access to 'company.shared' namespace is not allowed from 'company.team.etl'") {
		t.Errorf("cross_namespace without permission: error %q", ex.Error)
	}
	ex = x.run("cross_namespace", nil)
	x.want(ex, engine.SUCCESS)
	if want := map[string]any{"endpoint": "https://api.example.com", "region": "eu-west-1"}; !reflect.DeepEqual(ex.Outputs, want) {
		t.Errorf("cross_namespace: outputs %v", ex.Outputs)
	}
	if got := messages(ex, "inherited"); !reflect.DeepEqual(got, []string{"region from the parent namespace: eu-west-1"}) {
		t.Errorf("cross_namespace: logged %q", got)
	}
	if _, v, err := x.get("company", "region"); err != nil || v != "eu-west-1" {
		t.Errorf("cross_namespace: company/region = %v, %v", v, err)
	}
}

func (x *examples) errorsHandler() {
	t := x.t
	ex := x.run("errors_handler", nil)
	x.want(ex, engine.FAILED)
	if output(ex, "never", "x") != nil || len(messages(ex, "never")) != 0 {
		t.Error("errors_handler: a task after the failure ran")
	}
	if _, v, err := x.get("company.team", "last_failure"); err != nil || v != ex.ID {
		t.Errorf("errors_handler: last_failure = %v, %v; want %s", v, err, ex.ID)
	}
	want := "execution " + ex.ID + " failed: Task 'config': "
	if got := messages(ex, "alert"); len(got) != 1 || !strings.HasPrefix(got[0], want) || !strings.Contains(got[0], "required_config") {
		t.Errorf("errors_handler: alert logged %q", got)
	}
	if _, err := x.p.Store.Set(context.Background(), "company.team", "required_config", storage.String("ok"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	ex = x.run("errors_handler", nil)
	x.want(ex, engine.SUCCESS)
	if len(messages(ex, "alert")) != 0 {
		t.Error("errors_handler: the errors branch ran on success")
	}
}

func (x *examples) fanout() {
	t := x.t
	ex := x.run("fanout", nil)
	x.want(ex, engine.SUCCESS)
	if ex.Outputs["keys"] != "EU,US" {
		t.Errorf("fanout: keys = %v", ex.Outputs["keys"])
	}
	for _, r := range []string{"eu", "us", "apac"} {
		if _, v, err := x.get("company.team", "region_"+r); err != nil || v != strings.ToUpper(r) {
			t.Errorf("fanout: region_%s = %v, %v", r, v, err)
		}
	}
	if got := messages(ex, "ok"); !reflect.DeepEqual(got, []string{"EU and US are set"}) {
		t.Errorf("fanout: logged %q", got)
	}
}

// The embedding example builds and runs.
func TestEmbed_RunsACustomTask(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "run", "./embed").CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./embed: %v\n%s", err, out)
	}
	want := "log [greet] HELLO, KVFLOW!\nstate SUCCESS, stored HELLO, KVFLOW!\n"
	if string(out) != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}
