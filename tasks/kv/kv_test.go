package kv_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/logtest"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/taskrun"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/sqldb"
	"github.com/kvflow/kvflow/storage/storagetest"
	"github.com/kvflow/kvflow/template"

	_ "github.com/kvflow/kvflow/tasks/kv"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }

// env is one fresh store and the run contexts built on it.
type env struct {
	t      *testing.T
	store  *storage.Store
	bucket storage.Bucket
	clock  *storagetest.Clock
	access storage.Access // zero: own namespace and ancestors only
	logs   *logSink
	db     *sqldb.DB
}

type pairFunc func(testing.TB, storage.Options) testpair.Pair

var startTime = time.Date(2024, 7, 15, 6, 10, 33, 0, time.UTC)

func newEnv(t *testing.T, pair pairFunc) *env {
	t.Helper()
	c := storagetest.NewClock()
	c.Set(startTime)
	p := pair(t, storage.Options{Now: c.Now})
	return &env{t: t, store: p.Store, bucket: p.Bucket, clock: c, logs: &logSink{}, db: p.DB}
}

// reset empties the store and rewinds the clock, so one store (a database
// and a bucket are slow to make) serves many cases.
func (e *env) reset(t *testing.T) {
	t.Helper()
	if _, err := e.store.Purge(context.Background(), storage.PurgeOptions{All: true}); err != nil {
		t.Fatalf("emptying the store: %v", err)
	}
	// and its history: each case starts with keys that never existed.
	for _, table := range []string{"kv_versions", "kv_changes", "kv_change_seqs"} {
		if _, err := e.db.X.Exec(`DELETE FROM ` + table); err != nil {
			t.Fatalf("emptying %s: %v", table, err)
		}
	}
	e.t, e.access, e.logs = t, storage.Access{}, &logSink{}
	e.clock.Set(startTime)
}

// inputs are the flow inputs every case sees.
var inputs = map[string]any{
	"count":  int64(42),
	"price":  123.45,
	"flag":   true,
	"obj":    map[string]any{"name": "John", "address": map[string]any{"city": "Paris"}},
	"badkey": "a/b",
	"key":    "from_input",
}

func (e *env) rc(ns string) *plugin.RunContext {
	return &plugin.RunContext{
		Namespace: ns, FlowID: "f", ExecutionID: "e1", TaskID: "t", TaskRunID: "tr1",
		Store: e.store, Bucket: e.bucket,
		Templates: template.New(template.Options{KV: e.store, Policy: e.access.Policy}),
		Data: template.Context{
			"flow":    map[string]any{"id": "f", "namespace": ns},
			"inputs":  inputs,
			"outputs": map[string]any{},
		},
		Access: e.access,
		Logger: slog.New(e.logs),
	}
}

// decode builds a task of type typ from YAML properties, as a flow load does.
func decode(t *testing.T, typ, src string) (plugin.Task, []kvflow.FieldError) {
	t.Helper()
	def, ok := plugin.Default.Lookup(typ)
	if !ok {
		t.Fatalf("task type %s is not registered", typ)
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatalf("bad test YAML %q: %v", src, err)
	}
	props := &n
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		props = n.Content[0]
	}
	return taskrun.DecodeTask(def, props, "")
}

// run decodes and runs a task in a flow of namespace ns.
func (e *env) run(ns, typ, src string) (plugin.Outputs, error) {
	e.t.Helper()
	task, errs := decode(e.t, typ, src)
	if len(errs) > 0 {
		e.t.Fatalf("decoding %s %q: %v", typ, src, errs)
	}
	return taskrun.Call(context.Background(), task, e.rc(ns))
}

func (e *env) put(ns, key string, v storage.Value, ttl time.Duration) {
	e.t.Helper()
	if _, err := e.store.Set(context.Background(), ns, key, v, storage.SetOptions{TTL: ttl}); err != nil {
		e.t.Fatalf("seeding %s/%s: %v", ns, key, err)
	}
}

func (e *env) get(ns, key string) (*storage.Entry, storage.Value, error) {
	return e.store.Get(context.Background(), ns, key)
}

func (e *env) mustGet(ns, key string) (*storage.Entry, storage.Value) {
	e.t.Helper()
	en, v, err := e.get(ns, key)
	if err != nil {
		e.t.Fatalf("Get %s/%s: %v", ns, key, err)
	}
	return en, v
}

func (e *env) keys(ns string) []string {
	e.t.Helper()
	ks, err := e.store.Keys(context.Background(), ns, "")
	if err != nil {
		e.t.Fatalf("Keys %s: %v", ns, err)
	}
	return ks
}

type (
	logSink = logtest.Sink
	logLine = logtest.Line
)

// wantErr checks an error's code and that its message holds every part.
func wantErr(t *testing.T, err error, code string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s containing %q", code, parts)
	}
	if got := kvflow.ErrorCode(err); got != code {
		t.Errorf("error code = %s, want %s (message: %s)", got, code, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}
