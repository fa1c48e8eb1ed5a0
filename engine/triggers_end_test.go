package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// An end no process fired triggers for — its worker saved it and died, or
// the execution was killed before it ran — still fires its Flow triggers,
// once, from the pending ends the database keeps.
func TestTriggers_PendingEndsFireFlowTriggers(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			const b = `id: b
namespace: company.team
tasks:
  - {id: echo, type: test.Echo, value: "{{ trigger.executionId }} {{ trigger.state }}"}
triggers:
  - id: after_a
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: company.team, flowId: a}
      - {type: io.kestra.plugin.core.condition.ExecutionStatus, in: [SUCCESS, KILLED]}
`
			if _, err := p.DB.SaveFlow(ctx, kvflow.FlowRecord{Namespace: "company.team", ID: "b", Source: b, Triggers: []string{engine.FlowTrigger}}); err != nil {
				t.Fatal(err)
			}
			// A worker saved a's SUCCESS, then died before firing.
			end := time.Now().Add(-time.Minute)
			done := &kvflow.Execution{ID: "a-ended", Namespace: "company.team", FlowID: "a", FlowRevision: 1, State: kvflow.SUCCESS, Start: end.Add(-time.Second), End: &end, Labels: map[string]string{}}
			if err := p.DB.CreateExecution(ctx, done); err != nil {
				t.Fatal(err)
			}
			// Another was killed before any worker took it.
			queued := &kvflow.Execution{ID: "a-killed", Namespace: "company.team", FlowID: "a", FlowRevision: 1, State: kvflow.CREATED, Start: time.Now(), Labels: map[string]string{}}
			if err := p.DB.CreateExecution(ctx, queued); err != nil {
				t.Fatal(err)
			}
			if now, err := p.DB.RequestKill(ctx, queued.ID); err != nil || !now {
				t.Fatalf("RequestKill = %v, %v", now, err)
			}
			e := engineOn(t, p)
			trig := engine.StartTriggers(e, p.DB, slog.New(slog.DiscardHandler))
			defer trig.Stop()

			want := []string{"a-ended SUCCESS", "a-killed KILLED"}
			got := echoed(t, p, e, "b", len(want), 20*time.Second)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("b ran for %q, want once for each of %q", got, want)
			}
			// Both ends are handled: no process fires them again.
			deadline := time.Now().Add(10 * time.Second)
			for {
				ends, err := p.DB.PendingEnds(ctx, time.Now().Add(time.Hour), 100)
				if err != nil {
					t.Fatal(err)
				}
				pending := map[string]bool{}
				for _, end := range ends {
					pending[end.ID] = true
				}
				if !pending["a-ended"] && !pending["a-killed"] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("ends still pending: %v", pending)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// echoed waits, up to within, for n successful executions of flow
// company.team/<flow> and returns the value its first task echoed in each
// successful one (fewer when time ran out).
func echoed(t *testing.T, p testpair.Pair, e *engine.Engine, flow string, n int, within time.Duration) []string {
	t.Helper()
	ctx := context.Background()
	var got []string
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		list, err := p.DB.ListExecutions(ctx, kvflow.ExecutionQuery{Namespace: "company.team", FlowID: flow})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, ex := range list {
			full, err := e.Execution(ctx, ex.ID)
			if err != nil {
				t.Fatal(err)
			}
			if full.State == engine.SUCCESS {
				got = append(got, full.TaskRuns[0].Outputs["value"].(string))
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
	}
}

// A Flow trigger fires only on ends in the scope of whoever deployed its
// flow (their state and outputs become its variables), and never on its
// own flow's executions, as Kestra's: a condition on the state alone
// would otherwise fire on every end, its own ones included, without end.
func TestTriggers_FlowTriggerKeepsToItsScopeAndNeverToItself(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			const b = `id: b
namespace: company.team
tasks:
  - {id: echo, type: test.Echo, value: "{{ trigger.namespace }} {{ trigger.outputs.secret ?? '-' }}"}
triggers:
  - id: after_any
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - {type: io.kestra.plugin.core.condition.ExecutionStatus, in: [SUCCESS]}
`
			if _, err := p.DB.SaveFlow(ctx, kvflow.FlowRecord{Namespace: "company.team", ID: "b", Source: b, Triggers: []string{engine.FlowTrigger},
				Scope: storage.NewScope("company.team.*")}); err != nil {
				t.Fatal(err)
			}
			end := time.Now().Add(-time.Minute)
			for _, ex := range []*kvflow.Execution{
				{ID: "in-scope", Namespace: "company.team.x", FlowID: "a"},
				{ID: "out-of-scope", Namespace: "other", FlowID: "src", Outputs: map[string]any{"secret": "S3CRET"}},
			} {
				ex.FlowRevision, ex.State, ex.Start, ex.End, ex.Labels = 1, kvflow.SUCCESS, end.Add(-time.Second), &end, map[string]string{}
				if err := p.DB.CreateExecution(ctx, ex); err != nil {
					t.Fatal(err)
				}
			}
			e := engineOn(t, p)
			trig := engine.StartTriggers(e, p.DB, slog.New(slog.DiscardHandler))
			defer trig.Stop()

			if got := echoed(t, p, e, "b", 1, 20*time.Second); !slices.Equal(got, []string{"company.team.x -"}) {
				t.Fatalf("b ran for %q, want once, for company.team.x", got)
			}
			// b's own SUCCESS fires nothing: after the grace that fires the
			// ends no process handled, still one run.
			time.Sleep(4 * time.Second)
			list, err := p.DB.ListExecutions(ctx, kvflow.ExecutionQuery{Namespace: "company.team", FlowID: "b"})
			if err != nil || len(list) != 1 {
				t.Fatalf("b has %d executions, %v; want 1", len(list), err)
			}
		})
	}
}

// A flow deleted and created again under its name starts its KV trigger at
// its new save: the changes made while it did not exist fire nothing.
func TestTriggers_RecreatedFlowFiresNothingFromItsAbsence(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			const src = `id: watcher
namespace: company.team
tasks:
  - {id: echo, type: test.Echo, value: "{{ trigger.key }}"}
triggers:
  - {id: on_config, type: io.kvflow.kv.Trigger, prefix: config_}
`
			save := func() {
				t.Helper()
				if _, err := p.DB.SaveFlow(ctx, kvflow.FlowRecord{Namespace: "company.team", ID: "watcher", Source: src, Triggers: []string{engine.KVTrigger}}); err != nil {
					t.Fatal(err)
				}
			}
			save()
			e := engineOn(t, p)
			trig := engine.StartTriggers(e, p.DB, slog.New(slog.DiscardHandler))
			defer trig.Stop()
			time.Sleep(1500 * time.Millisecond) // the loop reads the flow
			set(t, p, "config_first", "1")
			if got := echoed(t, p, e, "watcher", 1, 20*time.Second); !slices.Equal(got, []string{"config_first"}) {
				t.Fatalf("fired for %q, want config_first", got)
			}
			if ok, err := p.DB.DeleteFlow(ctx, "company.team", "watcher"); err != nil || !ok {
				t.Fatalf("DeleteFlow = %v, %v", ok, err)
			}
			time.Sleep(1500 * time.Millisecond) // the loop drops the flow
			set(t, p, "config_gone1", "1")
			set(t, p, "config_gone2", "1")
			time.Sleep(10 * time.Millisecond)
			save()
			time.Sleep(1500 * time.Millisecond)
			set(t, p, "config_after", "1")
			got := echoed(t, p, e, "watcher", 2, 20*time.Second)
			time.Sleep(time.Second) // and nothing more comes
			got = echoed(t, p, e, "watcher", 3, 0)
			slices.Sort(got)
			if !slices.Equal(got, []string{"config_after", "config_first"}) {
				t.Fatalf("fired for %q, want config_first, then config_after only", got)
			}
		})
	}
}

// A trigger's inputs are templates rendered with its variables when it
// fires, as Kestra's Flow trigger passes an upstream execution on; one that
// fails on them is reported and passed over, not tried again for good; a bad
// one is a load-time error at its field.
func TestTriggers_InputsRenderedWithTriggerVariables(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			flow := func(id, input string) string {
				return `id: ` + id + `
namespace: company.team
inputs:
  - {id: from, type: STRING}
tasks:
  - {id: echo, type: test.Echo, value: "{{ inputs.from }}"}
triggers:
  - id: after_a
    type: io.kestra.plugin.core.trigger.Flow
    inputs: {from: "` + input + `"}
    conditions:
      - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: company.team, flowId: a}
`
			}
			for id, input := range map[string]string{"b": "{{ trigger.flowId }} ended {{ trigger.state | lower }}", "c": "{{ trigger.outputs.missing }}"} {
				if _, err := p.DB.SaveFlow(ctx, kvflow.FlowRecord{Namespace: "company.team", ID: id, Source: flow(id, input), Triggers: []string{engine.FlowTrigger}}); err != nil {
					t.Fatal(err)
				}
			}
			end := time.Now().Add(-time.Minute)
			done := &kvflow.Execution{ID: "a-ended", Namespace: "company.team", FlowID: "a", FlowRevision: 1, State: kvflow.SUCCESS,
				Start: end.Add(-time.Second), End: &end, Labels: map[string]string{}}
			if err := p.DB.CreateExecution(ctx, done); err != nil {
				t.Fatal(err)
			}
			e := engineOn(t, p)
			trig := engine.StartTriggers(e, p.DB, slog.New(slog.DiscardHandler))
			defer trig.Stop()
			if got := echoed(t, p, e, "b", 1, 20*time.Second); !slices.Equal(got, []string{"a ended success"}) {
				t.Fatalf("b ran with %q, want the rendered input", got)
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				ends, err := p.DB.PendingEnds(ctx, time.Now().Add(time.Hour), 100)
				if err != nil {
					t.Fatal(err)
				}
				if len(ends) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("a's end is still pending: c's failing input holds it up")
				}
			}
		})
	}
	_, err := engine.Parse("f.yaml", []byte(`id: f
namespace: company.team
inputs: [{id: x, type: STRING}]
tasks: [{id: echo, type: test.Echo, value: "{{ inputs.x }}"}]
triggers:
  - {id: s, type: io.kestra.plugin.core.trigger.Schedule, cron: "@daily", inputs: {x: "{{ trigger.date | "}}
  - {id: t, type: io.kestra.plugin.core.trigger.Schedule, cron: "@daily", inputs: {x: "{{ outputs.echo.value }}"}}
`), testRegistry())
	if err == nil || !strings.Contains(err.Error(), "triggers[0].inputs.x") || !strings.Contains(err.Error(), "triggers[1].inputs.x: outputs.echo: the task 'echo' has not run yet") {
		t.Fatalf("bad templates in a trigger's inputs: %v, want errors at triggers[0].inputs.x and triggers[1].inputs.x", err)
	}
}

// The delete of a flow races its KV trigger's firings: a writer keeps
// changing keys while the flow is deleted, so executions (and their trigger
// keys) are being created as the delete clears them. The flow created again
// afterwards still fires nothing for the changes made while it did not exist.
func TestTriggers_DeleteRacingFirings_RecreatedFlowReplaysNothing(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			const src = `id: racer
namespace: company.team
tasks:
  - {id: echo, type: test.Echo, value: "{{ trigger.key }}"}
triggers:
  - {id: on_config, type: io.kvflow.kv.Trigger, prefix: config_}
`
			save := func() {
				t.Helper()
				if _, err := p.DB.SaveFlow(ctx, kvflow.FlowRecord{Namespace: "company.team", ID: "racer", Source: src, Triggers: []string{engine.KVTrigger}}); err != nil {
					t.Fatal(err)
				}
			}
			save()
			e := engineOn(t, p)
			trig := engine.StartTriggers(e, p.DB, slog.New(slog.DiscardHandler))
			defer trig.Stop()
			time.Sleep(1500 * time.Millisecond)
			for round := range 3 {
				stop, done := make(chan struct{}), make(chan struct{})
				go func() { // changes that fire while the delete runs
					defer close(done)
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						set(t, p, fmt.Sprintf("config_live%d_%d", round, i), "1")
						time.Sleep(2 * time.Millisecond)
					}
				}()
				time.Sleep(300 * time.Millisecond)
				if ok, err := p.DB.DeleteFlow(ctx, "company.team", "racer"); err != nil || !ok {
					t.Fatalf("DeleteFlow = %v, %v", ok, err)
				}
				close(stop)
				<-done
				time.Sleep(1500 * time.Millisecond) // the loop drops the flow
				set(t, p, fmt.Sprintf("config_gone%d", round), "1")
				save()
				time.Sleep(1500 * time.Millisecond) // the loop starts the new flow's trigger
			}
			set(t, p, "config_after", "1")
			deadline := time.Now().Add(20 * time.Second)
			for {
				got := echoed(t, p, e, "racer", 1, 0)
				if slices.Contains(got, "config_after") || time.Now().After(deadline) {
					for _, k := range got {
						if strings.HasPrefix(k, "config_gone") {
							t.Fatalf("the flow created again fired for %s, made while it did not exist", k)
						}
					}
					if !slices.Contains(got, "config_after") {
						t.Fatal("config_after never fired")
					}
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
