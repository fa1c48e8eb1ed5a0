package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

func mustParse(t testing.TB, src string) *engine.Flow {
	t.Helper()
	f, err := engine.Parse("flow.yaml", []byte(src), testRegistry())
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return f
}

// newEngine is an engine on SQLite + a local directory.
func newEngine(t testing.TB, tweak ...func(*engine.Options)) (*engine.Engine, testpair.Pair) {
	t.Helper()
	p := testpair.Local(t, storage.Options{})
	return engineOn(t, p, tweak...), p
}

func engineOn(t testing.TB, p testpair.Pair, tweak ...func(*engine.Options)) *engine.Engine {
	opts := engine.Options{Store: p.Store, Bucket: p.Bucket, Repo: p.DB, Registry: testRegistry()}
	for _, f := range tweak {
		f(&opts)
	}
	e := engine.New(opts)
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	return e
}

func run(t testing.TB, e *engine.Engine, src string, inputs map[string]any) *engine.Execution {
	t.Helper()
	ex, err := e.Run(context.Background(), mustParse(t, src), inputs, engine.RunOptions{})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ex
}

// runs returns the task runs of a task, in order.
func runs(ex *engine.Execution, taskID string) []*engine.TaskRun {
	var out []*engine.TaskRun
	for _, tr := range ex.TaskRuns {
		if tr.TaskID == taskID {
			out = append(out, tr)
		}
	}
	return out
}

func attemptStates(tr *engine.TaskRun) []engine.State {
	var out []engine.State
	for _, a := range tr.Attempts {
		out = append(out, a.State)
	}
	return out
}

func logText(ex *engine.Execution) string {
	var b strings.Builder
	for _, l := range ex.Logs {
		fmt.Fprintf(&b, "%s [%s] %s\n", l.Level, l.TaskID, l.Message)
	}
	return b.String()
}

func wantState(t *testing.T, ex *engine.Execution, want engine.State) {
	t.Helper()
	if ex.State != want {
		t.Fatalf("state = %s, want %s (error %q)\nlogs:\n%s", ex.State, want, ex.Error, logText(ex))
	}
}

func TestRun_OutputsFlowBetweenTasks_KeepingTheirType(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: typed
namespace: company.team
tasks:
  - id: a
    type: test.Echo
    value: 42
  - id: b
    type: test.Echo
    value: "{{ outputs.a.value }}"
  - id: c
    type: test.Echo
    value: "n={{ outputs.b.value + 1 }}"
outputs:
  - id: answer
    value: "{{ outputs.b.value }}"
    type: INT
  - id: text
    value: "{{ outputs.c.value }}"
`, nil)
	wantState(t, ex, engine.SUCCESS)
	if got := runs(ex, "b")[0].Outputs["value"]; got != int64(42) {
		t.Errorf("b.value = %#v, want int64 42", got)
	}
	if got := ex.Outputs; !reflect.DeepEqual(got, map[string]any{"answer": int64(42), "text": "n=43"}) {
		t.Errorf("outputs = %#v", got)
	}
	if ex.End == nil || ex.End.Before(ex.Start) {
		t.Errorf("dates: start %v end %v", ex.Start, ex.End)
	}
	if !strings.Contains(logText(ex), "INFO [a] echo 42") {
		t.Errorf("logs lack the task's line:\n%s", logText(ex))
	}
}

func TestRun_ConstantRetry_RetriesUntilSuccess(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: retry
namespace: company.team
tasks:
  - id: flaky
    type: test.Flaky
    failures: 2
    retry:
      type: constant
      interval: PT0.01S
      maxAttempts: 3
`, nil)
	wantState(t, ex, engine.SUCCESS)
	tr := runs(ex, "flaky")[0]
	if got := attemptStates(tr); !reflect.DeepEqual(got, []engine.State{engine.FAILED, engine.FAILED, engine.SUCCESS}) {
		t.Errorf("attempts = %v", got)
	}
	if tr.Outputs["attempts"] != 3 {
		t.Errorf("outputs = %v", tr.Outputs)
	}
	if n := strings.Count(logText(ex), "retrying in PT0.01S"); n != 2 {
		t.Errorf("%d retry log lines, want 2:\n%s", n, logText(ex))
	}
}

func TestRun_ConstantRetry_FailsAfterMaxAttempts(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: retry
namespace: company.team
tasks:
  - id: flaky
    type: test.Flaky
    failures: 5
    retry: {type: constant, interval: PT0.001S, maxAttempt: 2}
  - id: after
    type: test.Echo
    value: never
`, nil)
	wantState(t, ex, engine.FAILED)
	if got := attemptStates(runs(ex, "flaky")[0]); !reflect.DeepEqual(got, []engine.State{engine.FAILED, engine.FAILED}) {
		t.Errorf("attempts = %v", got)
	}
	if len(runs(ex, "after")) != 0 {
		t.Error("a task after the failure ran")
	}
	if ex.Error != "Task 'flaky': Attempt 2 failed on purpose." {
		t.Errorf("error = %q", ex.Error)
	}
}

func TestRun_WarningOnRetry_SuccessAfterRetryIsWarning(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: retry
namespace: company.team
tasks:
  - id: flaky
    type: test.Flaky
    failures: 1
    retry: {type: constant, interval: PT0.001S, maxAttempts: 2, warningOnRetry: true}
`, nil)
	wantState(t, ex, engine.WARNING)
}

func TestRun_Timeout_FailsTheTaskAndNamesIt(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignoreContext=%v", ignore), func(t *testing.T) {
			e, _ := newEngine(t)
			start := time.Now()
			ex := run(t, e, fmt.Sprintf(`
id: timeout
namespace: company.team
tasks:
  - id: slow
    type: test.Sleep
    duration: PT3S
    ignoreContext: %v
    timeout: PT0.05S
`, ignore), nil)
			wantState(t, ex, engine.FAILED)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("run took %v despite the timeout", took)
			}
			if ex.Error != "Task 'slow' timed out after PT0.05S." {
				t.Errorf("error = %q", ex.Error)
			}
		})
	}
}

func TestRun_AllowFailure_EndsInWarningAndGoesOn(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: allow
namespace: company.team
tasks:
  - id: bad
    type: test.Flaky
    allowFailure: true
  - id: after
    type: test.Echo
    value: still here
`, nil)
	wantState(t, ex, engine.WARNING)
	if st := runs(ex, "bad")[0].State; st != engine.WARNING {
		t.Errorf("bad task run state = %s", st)
	}
	if st := runs(ex, "after")[0].State; st != engine.SUCCESS {
		t.Errorf("after state = %s", st)
	}
	if ex.Error != "" {
		t.Errorf("error = %q, want none", ex.Error)
	}
}

func TestRun_ErrorsBranch_RunsOnlyWhenTheFlowFails(t *testing.T) {
	const flow = `
id: errs
namespace: company.team
inputs:
  - id: fail
    type: BOOLEAN
tasks:
  - id: maybe
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.fail }}"
    then:
      - id: bad
        type: test.Flaky
  - id: after
    type: test.Echo
    value: after
errors:
  - id: handler
    type: test.Echo
    value: "handled {{ execution.state }}: {{ execution.error }}"
`
	e, _ := newEngine(t)
	ex := run(t, e, flow, map[string]any{"fail": "true"})
	wantState(t, ex, engine.FAILED)
	if len(runs(ex, "after")) != 0 {
		t.Error("a task after the failure ran")
	}
	h := runs(ex, "handler")
	if len(h) != 1 || h[0].Outputs["value"] != "handled FAILED: Task 'bad': Attempt 1 failed on purpose." {
		t.Fatalf("handler runs = %+v", h)
	}
	ok := run(t, e, flow, map[string]any{"fail": false})
	wantState(t, ok, engine.SUCCESS)
	if len(runs(ok, "handler")) != 0 {
		t.Error("the errors branch ran on success")
	}
}

func TestRun_DisabledTask_IsSkipped(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: disabled
namespace: company.team
tasks:
  - id: off
    type: test.Flaky
    disabled: true
  - id: on
    type: test.Echo
    value: "{{ outputs.off.attempts | default('skipped') }}"
`, nil)
	wantState(t, ex, engine.SUCCESS)
	if len(runs(ex, "off")) != 0 {
		t.Error("the disabled task ran")
	}
	if got := runs(ex, "on")[0].Outputs["value"]; got != "skipped" {
		t.Errorf("value = %v", got)
	}
}

func TestRun_Parallel_IsBoundedByConcurrency(t *testing.T) {
	tasks := ""
	for i := 0; i < 6; i++ {
		tasks += fmt.Sprintf("      - {id: g%d, type: test.Gauge, group: \"{{ inputs.group }}\"}\n", i)
	}
	src := `
id: par
namespace: company.team
inputs:
  - {id: group, type: STRING}
  - {id: concurrency, type: INT}
tasks:
  - id: fanout
    type: io.kestra.plugin.core.flow.Parallel
    concurrency: "{{ inputs.concurrency }}"
    tasks:
` + tasks
	for _, tc := range []struct {
		name        string
		concurrency int
		maxParallel int
		want        int64
	}{
		{"concurrency 2", 2, 16, 2},
		{"concurrency 0 within MaxParallel 3", 0, 3, 3},
		{"concurrency 1 runs one at a time", 1, 16, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newEngine(t, func(o *engine.Options) { o.MaxParallel = tc.maxParallel })
			group := t.Name()
			ex := run(t, e, src, map[string]any{"group": group, "concurrency": tc.concurrency})
			wantState(t, ex, engine.SUCCESS)
			if got := gaugeOf(group).max.Load(); got != tc.want {
				t.Errorf("at most %d ran at once, want %d", got, tc.want)
			}
			if n := len(ex.TaskRuns); n != 7 {
				t.Errorf("%d task runs, want 7", n)
			}
			for _, tr := range ex.TaskRuns[1:] {
				if tr.ParentID != ex.TaskRuns[0].ID {
					t.Errorf("task run %s has parent %q, want the Parallel's", tr.TaskID, tr.ParentID)
				}
			}
		})
	}
}

func TestRun_Parallel_FailureFailsTheGroup(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: par
namespace: company.team
tasks:
  - id: fanout
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {id: ok, type: test.Echo, value: 1}
      - {id: bad, type: test.Flaky}
  - {id: after, type: test.Echo, value: 2}
`, nil)
	wantState(t, ex, engine.FAILED)
	if st := runs(ex, "fanout")[0].State; st != engine.FAILED {
		t.Errorf("Parallel state = %s", st)
	}
	if len(runs(ex, "after")) != 0 {
		t.Error("a task after the failed group ran")
	}
}

func TestRun_If_RunsThenOrElse(t *testing.T) {
	const src = `
id: branch
namespace: company.team
inputs:
  - {id: n, type: INT}
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.n > 10 }}"
    then:
      - {id: big, type: test.Echo, value: big}
    else:
      - {id: small, type: test.Echo, value: small}
`
	e, _ := newEngine(t)
	for n, want := range map[int]string{42: "big", 3: "small"} {
		ex := run(t, e, src, map[string]any{"n": fmt.Sprint(n)})
		wantState(t, ex, engine.SUCCESS)
		if len(runs(ex, want)) != 1 || len(ex.TaskRuns) != 2 {
			t.Errorf("n=%d: task runs %v, want %s only", n, taskIDs(ex), want)
		}
		if got := runs(ex, "check")[0].Outputs["condition"]; got != (n > 10) {
			t.Errorf("n=%d: condition output %v", n, got)
		}
	}
}

func taskIDs(ex *engine.Execution) []string {
	var ids []string
	for _, tr := range ex.TaskRuns {
		ids = append(ids, tr.TaskID)
	}
	return ids
}

func TestRun_ForEach_GivesEachValueAndKeepsOutputsPerValue(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: loop
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", 3]
    tasks:
      - id: inner
        type: test.Echo
        value: "v={{ taskrun.value }}"
      - id: nested
        type: io.kestra.plugin.core.flow.ForEach
        values: '["x", "y"]'
        tasks:
          - id: deep
            type: test.Echo
            value: "{% set mine = outputs.inner[parent.taskrun.value] %}{{ parent.taskrun.value }}{{ taskrun.value }}:{{ mine.value }}"
  - id: after
    type: test.Echo
    value: "{{ outputs.inner.b.value }} {{ outputs.inner['3'] }} {{ outputs.deep.a.y.value }}"
`, nil)
	wantState(t, ex, engine.SUCCESS)
	if got := runs(ex, "after")[0].Outputs["value"]; got != `v=b {"value":"v=3"} ay:v=a` {
		t.Errorf("after = %q", got)
	}
	inner := runs(ex, "inner")
	if len(inner) != 3 || inner[0].Value != "a" || inner[2].Value != "3" {
		t.Fatalf("inner runs = %+v", inner)
	}
	if len(runs(ex, "deep")) != 6 {
		t.Errorf("%d deep runs, want 6", len(runs(ex, "deep")))
	}
}

func TestRun_ForEach_ConcurrencyLimit(t *testing.T) {
	src := `
id: loop
namespace: company.team
inputs:
  - {id: group, type: STRING}
  - {id: limit, type: INT}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2, 3, 4, 5, 6]
    concurrencyLimit: "{{ inputs.limit }}"
    tasks:
      - {id: g, type: test.Gauge, group: "{{ inputs.group }}"}
`
	for limit, want := range map[int]int64{1: 1, 3: 3, 0: 4} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			e, _ := newEngine(t, func(o *engine.Options) { o.MaxParallel = 4 })
			ex := run(t, e, src, map[string]any{"group": t.Name(), "limit": limit})
			wantState(t, ex, engine.SUCCESS)
			if got := gaugeOf(t.Name()).max.Load(); got != want {
				t.Errorf("at most %d at once, want %d", got, want)
			}
		})
	}
}

func TestRun_Inputs_AreConvertedAndChecked(t *testing.T) {
	const src = `
id: inputs
namespace: company.team
inputs:
  - {id: count, type: INT}
  - {id: ratio, type: FLOAT, defaults: 0.5}
  - {id: on, type: BOOLEAN, required: false}
  - {id: when, type: DATETIME, defaults: "2024-07-15T06:10:33Z"}
  - {id: ttl, type: DURATION, defaults: PT5M}
  - {id: doc, type: JSON, defaults: '{"a": [1, 2]}'}
tasks:
  - id: show
    type: test.Echo
    value: "{{ inputs.count * 2 }} {{ inputs.ratio }} {{ inputs.on }} {{ inputs.when }} {{ inputs.ttl }} {{ inputs.doc.a[1] }}"
`
	e, _ := newEngine(t)
	ex := run(t, e, src, map[string]any{"count": "21"})
	wantState(t, ex, engine.SUCCESS)
	if got := runs(ex, "show")[0].Outputs["value"]; got != "42 0.5  2024-07-15T06:10:33Z PT5M 2" {
		t.Errorf("value = %q", got)
	}
	_, err := e.Run(context.Background(), mustParse(t, src), map[string]any{"count": "abc", "ratio": "x", "extra": 1}, engine.RunOptions{})
	want := `inputs.count: value (STRING, 3 bytes, sha256:ba7816bf) is not an INT
inputs.ratio: value (STRING, 1 bytes, sha256:2d711642) is not a FLOAT
inputs.extra: unknown input; the flow declares count, ratio, on, when, ttl, doc`
	if err == nil || err.Error() != want || kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Errorf("err = %v (%s), want\n%s", err, kvflow.ErrorCode(err), want)
	}
	_, err = e.Run(context.Background(), mustParse(t, src), nil, engine.RunOptions{})
	if err == nil || err.Error() != "inputs.count: missing required input of type INT" {
		t.Errorf("err = %v", err)
	}
}

func TestRun_Variables_AreRenderedAtStart(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: vars
namespace: company.team
inputs:
  - {id: who, type: STRING}
variables:
  greeting: "hello {{ inputs.who }}"
  nested: {n: 1}
tasks:
  - id: show
    type: test.Echo
    value: "{{ vars.greeting }} from {{ flow.namespace }}.{{ flow.id }} {{ vars.nested.n }}"
`, map[string]any{"who": "world"})
	wantState(t, ex, engine.SUCCESS)
	if got := runs(ex, "show")[0].Outputs["value"]; got != "hello world from company.team.vars 1" {
		t.Errorf("value = %q", got)
	}
}

func TestRun_TemplateError_NamesTaskPropertyAndPlace(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: broken
namespace: company.team
tasks:
  - id: show
    type: test.Echo
    value: "x {{ vars.nope }}"
`, nil)
	wantState(t, ex, engine.FAILED)
	if !strings.HasPrefix(ex.Error, "Task 'show', property 'value', line 1, column ") {
		t.Errorf("error = %q", ex.Error)
	}
	if !strings.Contains(logText(ex), "ERROR [show] Task 'show', property 'value'") {
		t.Errorf("logs:\n%s", logText(ex))
	}
}

func TestRun_PanickingTask_FailsTheTaskNotTheProcess(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: panic
namespace: company.team
tasks:
  - {id: boom, type: test.Boom}
`, nil)
	wantState(t, ex, engine.FAILED)
	if ex.Error != "Task 'boom' crashed: kaboom." {
		t.Errorf("error = %q", ex.Error)
	}
}

func TestRun_CancelledContext_KillsTheExecution(t *testing.T) {
	e, p := newEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	ex, err := e.Run(ctx, mustParse(t, `
id: long
namespace: company.team
tasks:
  - {id: slow, type: test.Sleep, duration: PT10S}
  - {id: never, type: test.Echo, value: 1}
`), nil, engine.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, ex, engine.KILLED)
	stored, err := p.DB.GetExecution(context.Background(), ex.ID)
	if err != nil || stored.State != engine.KILLED {
		t.Fatalf("stored = %+v, %v", stored, err)
	}
}

func TestStartAndWait_RunInTheBackground(t *testing.T) {
	e, p := newEngine(t)
	flow := mustParse(t, `
id: bg
namespace: company.team
inputs:
  - {id: n, type: INT}
tasks:
  - {id: nap, type: test.Sleep, duration: PT0.05S}
  - {id: twice, type: test.Echo, value: "{{ inputs.n * 2 }}"}
outputs:
  - {id: result, value: "{{ outputs.twice.value }}"}
`)
	created, err := e.Start(context.Background(), flow, map[string]any{"n": 21})
	if err != nil {
		t.Fatal(err)
	}
	if created.State != engine.CREATED {
		t.Errorf("Start returned state %s, want CREATED", created.State)
	}
	// Another engine on the same records follows it through the database.
	other := engineOn(t, p)
	done, err := other.Wait(context.Background(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, done, engine.SUCCESS)
	if done.Outputs["result"] != int64(42) || done.Inputs["n"] != int64(42/2) {
		t.Errorf("outputs %v inputs %v", done.Outputs, done.Inputs)
	}
	mine, err := e.Wait(context.Background(), created.ID)
	if err != nil || mine.State != engine.SUCCESS {
		t.Fatalf("Wait = %+v, %v", mine, err)
	}
}

func TestShutdown_KillsRunningExecutionsWithALogLine(t *testing.T) {
	e, p := newEngine(t)
	flow := mustParse(t, `
id: long
namespace: company.team
tasks:
  - {id: slow, type: test.Sleep, duration: PT30S}
`)
	ex, err := e.Start(context.Background(), flow, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	stored, err := p.DB.GetExecution(context.Background(), ex.ID)
	if err != nil || stored.State != engine.KILLED {
		t.Fatalf("stored = %+v, %v", stored, err)
	}
	logs, err := p.DB.Logs(context.Background(), ex.ID)
	if err != nil || len(logs) == 0 || !strings.Contains(logs[len(logs)-1].Message, "server stopped") {
		t.Fatalf("logs = %+v, %v", logs, err)
	}
	if _, err := e.Start(context.Background(), flow, nil); kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE {
		t.Errorf("Start after Shutdown: %v", err)
	}
}

func TestRun_OnLog_StreamsLinesInOrder(t *testing.T) {
	e, _ := newEngine(t)
	var mu sync.Mutex
	var got []string
	ex, err := e.Run(context.Background(), mustParse(t, `
id: logs
namespace: company.team
tasks:
  - {id: a, type: test.Echo, value: 1}
  - {id: b, type: test.Echo, value: 2}
`), nil, engine.RunOptions{OnLog: func(l engine.LogLine) {
		mu.Lock()
		got = append(got, l.TaskID+":"+l.Message)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, ex, engine.SUCCESS)
	if !reflect.DeepEqual(got, []string{"a:echo 1", "b:echo 2"}) {
		t.Errorf("lines = %v", got)
	}
}

func TestRun_KVAccess_OtherNamespaceNeedsPermission(t *testing.T) {
	const src = `
id: cross
namespace: company.team
tasks:
  - {id: set, type: test.kv.Set, key: k, value: 1, namespace: other.team}
`
	e, _ := newEngine(t)
	ex := run(t, e, src, nil)
	wantState(t, ex, engine.FAILED)
	if !strings.Contains(ex.Error, "Access to 'other.team' namespace is not allowed from 'company.team'") {
		t.Errorf("error = %q", ex.Error)
	}
	allowed, p := newEngine(t, func(o *engine.Options) {
		o.Policy = storage.NewPolicy(map[string][]string{"company.team": {"other.team"}})
	})
	wantState(t, run(t, allowed, src, nil), engine.SUCCESS)
	if _, v, err := p.Store.Get(context.Background(), "other.team", "k"); err != nil || v.V != int64(1) {
		t.Errorf("stored %v, %v", v, err)
	}
}

func TestRun_PutFile_StoresUnderTheExecution(t *testing.T) {
	e, p := newEngine(t)
	ex := run(t, e, `
id: files
namespace: company.team
tasks:
  - {id: write, type: test.File, name: "../orders.csv", content: "a,b\n1,2\n"}
`, nil)
	wantState(t, ex, engine.SUCCESS)
	tr := runs(ex, "write")[0]
	uri, _ := tr.Outputs["uri"].(string)
	want := "kestra:///_executions/company/team/files/" + ex.ID + "/files/" + tr.ID + "/orders.csv"
	if uri != want {
		t.Fatalf("uri = %q, want %q", uri, want)
	}
	rc, err := p.Bucket.Get(context.Background(), strings.TrimPrefix(uri, "kestra:///"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b strings.Builder
	if _, err := fmt.Fprint(&b, readAll(t, rc)); err != nil || b.String() != "a,b\n1,2\n" {
		t.Errorf("content = %q", b.String())
	}
}

func TestParse_KeepsSourceAndLines(t *testing.T) {
	src := "id: f\nnamespace: a.b\ntasks:\n  - id: t\n    type: test.Echo\n    value: 1\n"
	f, err := engine.Parse("f.yaml", []byte(src), testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if f.Source != src || f.File != "f.yaml" || f.Tasks[0].Line != 4 || f.Tasks[0].Path != "tasks[0]" {
		t.Errorf("flow = %+v", f)
	}
	var ve engine.ValidationErrors
	_, err = engine.Parse("f.yaml", []byte("id: f\nnamespace: a.b\ntasks:\n  - id: t\n    type: nope\n"), testRegistry())
	if !errors.As(err, &ve) || len(ve) != 1 || ve[0].Line != 5 || ve[0].Field != "tasks[0].type" {
		t.Errorf("err = %#v", err)
	}
}

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRun_AllowFailureOnAGroup_KeepsTheFlowGoing(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: group
namespace: company.team
tasks:
  - id: optional
    type: io.kestra.plugin.core.flow.Sequential
    allowFailure: true
    timeout: PT0.05S
    tasks:
      - {id: slow, type: test.Sleep, duration: PT5S}
  - {id: after, type: test.Echo, value: ok}
`, nil)
	wantState(t, ex, engine.WARNING)
	if ex.Error != "" {
		t.Errorf("error = %q, want none for a WARNING", ex.Error)
	}
	g := runs(ex, "optional")[0]
	if g.State != engine.WARNING || g.Error != "Task 'optional' timed out after PT0.05S." {
		t.Errorf("group run = %+v", g)
	}
	if st := runs(ex, "slow")[0].State; st != engine.KILLED {
		t.Errorf("inner task state = %s, want KILLED", st)
	}
	if len(runs(ex, "after")) != 1 {
		t.Error("the task after the group did not run")
	}
}

// kvSnapshot: true pins the execution's reads to the store as it was when it
// started, while another writer changes a key mid-way; its own writes read back.
func TestRun_KVSnapshot_ReadsAsOfStartAndOwnWrites(t *testing.T) {
	for _, snapshot := range []bool{true, false} {
		t.Run(fmt.Sprint("kvSnapshot=", snapshot), func(t *testing.T) {
			e, p := newEngine(t)
			ctx := context.Background()
			if _, err := p.Store.Set(ctx, "company.team", "k", storage.String("before"), storage.SetOptions{}); err != nil {
				t.Fatal(err)
			}
			src := fmt.Sprintf(`id: snap
namespace: company.team
kvSnapshot: %v
tasks:
  - {id: start, type: test.Echo, value: go}
  - {id: read, type: test.kv.Get, key: k}
  - {id: mine, type: test.kv.Set, key: mine, value: ours}
outputs:
  - {id: k, type: STRING, value: "{{ kv('k') }}"}
  - {id: mine, type: STRING, value: "{{ kv('mine') }}"}
`, snapshot)
			// Another writer changes k once the execution has started.
			onLog := func(l engine.LogLine) {
				if l.TaskID == "start" {
					time.Sleep(time.Millisecond)
					if _, err := p.Store.Set(ctx, "company.team", "k", storage.String("after"), storage.SetOptions{}); err != nil {
						t.Error(err)
					}
				}
			}
			ex, err := e.Run(ctx, mustParse(t, src), nil, engine.RunOptions{OnLog: onLog})
			if err != nil || ex.State != engine.SUCCESS {
				t.Fatalf("run = %v, %v (%s)", ex.State, err, ex.Error)
			}
			want := "after"
			if snapshot {
				want = "before"
			}
			if got := runs(ex, "read")[0].Outputs["value"]; got != want || ex.Outputs["k"] != want || ex.Outputs["mine"] != "ours" {
				t.Errorf("Get = %v, outputs = %v; want k %s and mine ours", got, ex.Outputs, want)
			}
			if (ex.KVSnapshot != nil) != snapshot || (snapshot && !ex.KVSnapshot.Equal(ex.Start)) {
				t.Errorf("execution's snapshot point = %v, start %v", ex.KVSnapshot, ex.Start)
			}
			pg, _ := p.Store.History(ctx, "company.team", "mine", storage.HistoryOptions{})
			if w := pg.Versions[0].Writer; w != storage.ExecutionWriter(ex.ID, "company.team", "snap", "mine") {
				t.Errorf("writer = %q", w)
			}
		})
	}
}

func TestRun_ExactNumbers_KeepEveryDigitOnceStored(t *testing.T) {
	e, _ := newEngine(t)
	ex := run(t, e, `
id: exact
namespace: company.team
tasks:
  - id: big
    type: test.Echo
    value: 12345678901234567890
  - id: pi
    type: test.Echo
    value: 3.14159265358979323846
`, nil)
	wantState(t, ex, engine.SUCCESS)
	// Read back from the database: before, 12345678901234567000 and 3.141592653589793.
	got, err := e.Execution(context.Background(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	for task, want := range map[string]string{"big": "12345678901234567890", "pi": "3.14159265358979323846"} {
		if v := runs(got, task)[0].Outputs["value"]; v != json.Number(want) {
			t.Errorf("%s.value = %#v, want %s", task, v, want)
		}
	}
}
