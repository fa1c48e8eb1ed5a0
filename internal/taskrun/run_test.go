package taskrun_test

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/taskrun"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/tasks/kv"
)

type inner struct {
	Port int                     `yaml:"port" required:"true"`
	Path plugin.Property[string] `yaml:"path"`
}

type sample struct {
	Key     plugin.Property[string]        `yaml:"key" required:"true"`
	TTL     plugin.Property[time.Duration] `yaml:"ttl"`
	Enabled plugin.Property[bool]          `yaml:"enabled"`
	Count   int                            `yaml:"count"`
	Server  *inner                         `yaml:"server"`
	Servers []inner                        `yaml:"servers"`
}

func (s *sample) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	key, err := s.Key.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	ttl, err := s.TTL.Get(ctx, rc, time.Minute)
	if err != nil {
		return nil, err
	}
	return plugin.Outputs{"key": key, "ttl": ttl.String(), "ns": rc.Namespace}, nil
}

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

func TestDecodeStrict_ReportsEveryProblemWithLineAndPath(t *testing.T) {
	var s sample
	errs := taskrun.DecodeStrict(node(t, `
ttl: 30 days
enabled: maybe
count: many
server: {path: /x}
servers:
  - port: 80
  - port: eighty
    extra: 1
bogus: true
`), &s, "tasks[3]")
	var got []string
	for _, e := range errs {
		got = append(got, strconv.Itoa(e.Line)+" "+e.Error())
	}
	want := []string{
		`2 tasks[3].ttl: "30 days" is not an ISO-8601 duration such as PT5M, P30D or P1DT5S, or a whole number of seconds`,
		`3 tasks[3].enabled: expected true or false, got a value (STRING, 5 bytes, sha256:dcfff5eb)`,
		`4 tasks[3].count: expected a whole number, got "many"`,
		`5 tasks[3].server.port: missing required property "port"`,
		`8 tasks[3].servers[1].port: expected a whole number, got "eighty"`,
		`9 tasks[3].servers[1].extra: unknown property "extra"; expected one of: path, port`,
		`10 tasks[3].bogus: unknown property "bogus"; expected one of: count, enabled, key, server, servers, ttl`,
		`2 tasks[3].key: missing required property "key"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func testRegistry(t *testing.T) *plugin.Registry {
	reg := plugin.NewRegistry()
	reg.MustRegister(plugin.Definition{Type: "test.Sample", New: func() plugin.Task { return &sample{} }})
	return reg
}

func TestRunTask_RunsOneTaskOutsideAFlow(t *testing.T) {
	store := testpair.LocalStore(t)
	out, err := taskrun.Run(context.Background(), testRegistry(t), "test.Sample",
		map[string]any{"key": "{{ flow.namespace }}-k", "ttl": "PT5M"}, &plugin.RunContext{Namespace: "company.team", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if want := (plugin.Outputs{"key": "company.team-k", "ttl": "5m0s", "ns": "company.team"}); !reflect.DeepEqual(out, want) {
		t.Errorf("outputs = %v", out)
	}
}

func TestRunTask_RefusesBadPropertiesAndTypes(t *testing.T) {
	reg := testRegistry(t)
	ctx := context.Background()
	rc := func() *plugin.RunContext { return &plugin.RunContext{Namespace: "company.team"} }
	for _, tc := range []struct {
		name  string
		typ   string
		props map[string]any
		rc    *plugin.RunContext
		want  string
	}{
		{"unknown type", "test.Nope", nil, rc(), `Task type "test.Nope" is unknown; known types: test.Sample.`},
		{"bad props", "test.Sample", map[string]any{"ttl": "soon", "x": 1}, rc(),
			`Properties of test.Sample are invalid: ttl: "soon" is not an ISO-8601 duration such as PT5M, P30D or P1DT5S, or a whole number of seconds; x: unknown property "x"; expected one of: count, enabled, key, server, servers, ttl; key: missing required property "key".`},
		{"reserved", "test.Sample", map[string]any{"key": "k", "timeout": "PT1S"}, rc(), `Property 'timeout' applies to tasks inside a flow only.`},
		{"no namespace", "test.Sample", map[string]any{"key": "k"}, &plugin.RunContext{}, `A task needs a namespace to run in.`},
		{"runtime conversion", "test.Sample", map[string]any{"key": "k", "ttl": "{{ 'soon' }}"}, rc(),
			`Task 'task', property 'ttl': "soon" is not an ISO-8601 duration such as PT5M, P30D or P1DT5S, or a whole number of seconds`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := taskrun.Run(ctx, reg, tc.typ, tc.props, tc.rc)
			if kvflow.ErrorCode(err) != kvflow.EINVALID || kvflow.ErrorMessage(err) != tc.want {
				t.Errorf("err = %v (%s)\nwant %s", err, kvflow.ErrorCode(err), tc.want)
			}
		})
	}
}

func TestRunTask_ExactNumbersFromJSONProperties(t *testing.T) {
	store := testpair.LocalStore(t)
	props, err := storage.DecodeJSON([]byte(`{"value":12345678901234567890}`))
	if err != nil {
		t.Fatal(err)
	}
	reg := plugin.NewRegistry()
	var seen any
	reg.MustRegister(plugin.Definition{Type: "test.Value", New: func() plugin.Task { return &valueTask{seen: &seen} }})
	if _, err := taskrun.Run(context.Background(), reg, "test.Value", props.(map[string]any), &plugin.RunContext{Namespace: "company.team", Store: store}); err != nil {
		t.Fatal(err)
	}
	// Before, the number reached the task as the string "12345678901234567890".
	if seen != json.Number("12345678901234567890") {
		t.Errorf("value = %#v, want the exact number", seen)
	}
}

type valueTask struct {
	Value plugin.Property[any] `yaml:"value"`
	seen  *any
}

func (v *valueTask) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	x, err := v.Value.Get(ctx, rc, nil)
	*v.seen = x
	return nil, err
}

// A task run alone sees the task variable (id, type), and a -0 given as
// JSON reaches it as -0, not the integer 0.
func TestRunTask_TaskVariableAndNegativeZero(t *testing.T) {
	store := testpair.LocalStore(t)
	reg := plugin.NewRegistry()
	var seen any
	reg.MustRegister(plugin.Definition{Type: "test.Value", New: func() plugin.Task { return &valueTask{seen: &seen} }})
	for props, check := range map[string]func(any) bool{
		`{"value":"{{ task.id }}/{{ task.type }}"}`: func(v any) bool { return v == "task/test.Value" },
		`{"value":-0}`: func(v any) bool { f, ok := v.(float64); return ok && f == 0 && math.Signbit(f) },
	} {
		p, err := storage.DecodeJSON([]byte(props))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := taskrun.Run(context.Background(), reg, "test.Value", p.(map[string]any), &plugin.RunContext{Namespace: "company.team", Store: store}); err != nil || !check(seen) {
			t.Errorf("%s: task saw %#v, %v", props, seen, err)
		}
	}
}

// Every KV write a task makes alone names its run as the writer, SetMany's
// as Set's (it left the writer blank).
func TestRunTask_SetManyRecordsItsWriter(t *testing.T) {
	store := testpair.LocalStore(t)
	ctx := context.Background()
	rc := &plugin.RunContext{Namespace: "company.team", Store: store, ExecutionID: "e1"}
	if _, err := taskrun.Run(ctx, plugin.Default, kv.SetManyType, map[string]any{"entries": map[string]any{"a": 1}}, rc); err != nil {
		t.Fatal(err)
	}
	p, err := store.History(ctx, "company.team", "a", storage.HistoryOptions{Limit: 1})
	if err != nil || len(p.Versions) != 1 || p.Versions[0].Writer != "execution:e1 flow:company.team._tasks task:task" {
		t.Fatalf("history = %+v, %v", p.Versions, err)
	}
}
