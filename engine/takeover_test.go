package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
)

// A relay of workers: each goes silent while it sleeps, the next takes the
// execution over. The outputs of the tasks the first worker finished reach
// the last task through two takeovers (each worker's saves keep their own
// names), and no finished task runs twice. Both backend pairs.
func TestWork_TwoTakeovers_KeepEveryFinishedOutput(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			set(t, p, "word", "one")
			set(t, p, "hold1", "PT60S")
			set(t, p, "hold2", "PT60S")
			ex := createStored(t, p, `id: relay
namespace: company.team
tasks:
  - id: first
    type: test.Echo
    value: "first {{ kv('word') }}"
  - id: hold1
    type: test.Sleep
    duration: "{{ kv('hold1') }}"
  - id: second
    type: test.Echo
    value: "second {{ kv('word') }}"
  - id: hold2
    type: test.Sleep
    duration: "{{ kv('hold2') }}"
  - id: third
    type: test.Echo
    value: "{{ outputs.first.value }} / {{ outputs.second.value }}"
`)
			a, b, c := relayWorker(t, p, "a"), relayWorker(t, p, "b"), relayWorker(t, p, "c")
			t.Cleanup(func() { // a and b, asleep in their lost runs, stop at once
				stopped, stop := context.WithCancel(ctx)
				stop()
				a.Shutdown(stopped)
				b.Shutdown(stopped)
			})
			go a.Work(ctx, ex.ID)
			waitRunning(t, p, ex.ID, "a", "hold1")

			set(t, p, "hold1", "PT0.01S")
			set(t, p, "word", "two")
			go func() { // b runs until the end of the test, asleep in hold2
				for {
					if _, err := p.DB.X.ExecContext(ctx, p.DB.Rebind(`UPDATE executions SET heartbeat_at = 0 WHERE id = ?`), ex.ID); err != nil {
						return
					}
					if err := b.Work(ctx, ex.ID); err != nil {
						return // its lost run, stopped at the end of the test
					}
					cur, err := p.DB.GetExecution(ctx, ex.ID)
					if err != nil || cur.Worker != "a" || cur.State.Terminated() {
						return
					}
				}
			}()
			waitRunning(t, p, ex.ID, "b", "hold2")
			// b's logs, while it runs, include the lines a logged.
			if lines, err := b.Logs(ctx, ex.ID); err != nil || !hasLine(lines, "echo first one") || !hasLine(lines, "echo second two") {
				t.Fatalf("b's logs while it runs: %v, %v; want a's line and its own", lines, err)
			}

			set(t, p, "hold2", "PT0.01S")
			set(t, p, "word", "three")
			takeOver(t, p, c, ex.ID, "c")

			got, err := relayWorker(t, p, "reader").Execution(ctx, ex.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantState(t, got, engine.SUCCESS)
			for id, want := range map[string]string{"first": "first one", "second": "second two", "third": "first one / second two"} {
				trs := runs(got, id)
				if len(trs) != 1 {
					t.Fatalf("%d runs of %s", len(trs), id)
				}
				if v, _ := trs[0].Outputs["value"].(string); v != want {
					t.Errorf("outputs.%s.value = %q, want %q", id, v, want)
				}
				if len(trs[0].Attempts) != 1 {
					t.Errorf("task %s ran %d times", id, len(trs[0].Attempts))
				}
			}
		})
	}
}

// A worker that lost its claim while a task ran, and then ends its run,
// changes nothing a reader sees: the execution's record (its outputs) is
// the one of the worker that took it over and ended it, though the lost
// worker rendered different outputs after it. Both backend pairs.
func TestWork_LostWorkerEndingLater_OverwritesNothing(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			set(t, p, "word", "one")
			set(t, p, "hold", "PT1.5S")
			ex := createStored(t, p, `id: lost
namespace: company.team
tasks:
  - id: hold
    type: test.Sleep
    duration: "{{ kv('hold') }}"
outputs:
  - id: word
    type: STRING
    value: "{{ kv('word') }}"
`)
			// a saves nothing between its claim and its end, so nothing
			// tells it before then that its claim is gone.
			a := relayWorker(t, p, "a", func(o *engine.Options) { o.FlushInterval = time.Hour })
			b := relayWorker(t, p, "b")
			aDone := make(chan error, 1)
			go func() { aDone <- a.Work(ctx, ex.ID) }()
			deadline := time.Now().Add(20 * time.Second)
			for {
				cur, err := a.Execution(ctx, ex.ID)
				if err == nil && len(runs(cur, "hold")) == 1 && runs(cur, "hold")[0].State == engine.RUNNING {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("a never started the hold task")
				}
				time.Sleep(5 * time.Millisecond)
			}
			set(t, p, "hold", "PT0.01S")
			takeOver(t, p, b, ex.ID, "b")
			set(t, p, "word", "stale")
			select {
			case err := <-aDone:
				// Its final save is refused (the conflict), unless its
				// heartbeat learnt of the takeover first and stopped it.
				if err != nil && kvflow.ErrorCode(err) != kvflow.ECONFLICT {
					t.Errorf("a's run ended with %v, want the conflict of its lost claim, or nothing", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("a's run never ended")
			}

			got, err := relayWorker(t, p, "reader").Execution(ctx, ex.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantState(t, got, engine.SUCCESS)
			if got.Outputs["word"] != "one" {
				t.Errorf("outputs.word = %v, want one: the lost worker's end overwrote the record of the worker that ended it", got.Outputs["word"])
			}
			if got.Worker != "" && got.Worker != "b" {
				t.Errorf("worker = %q", got.Worker)
			}
		})
	}
}

func set(t *testing.T, p testpair.Pair, key, text string) {
	t.Helper()
	if _, err := p.Store.Set(context.Background(), "company.team", key, storage.String(text), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createStored stores the flow and creates an execution of it, unclaimed,
// as a queue's insert does.
func createStored(t *testing.T, p testpair.Pair, src string) *engine.Execution {
	t.Helper()
	ctx := context.Background()
	rec, err := p.DB.CreateFlow(ctx, kvflow.FlowRecord{Namespace: "company.team", ID: mustParse(t, src).ID, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	e := relayWorker(t, p, "creator")
	flow, err := e.ParseStored("company.team/"+rec.ID+".yaml", rec)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := e.Prepare(ctx, flow, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.DB.CreateExecution(ctx, ex); err != nil {
		t.Fatal(err)
	}
	return ex
}

// relayWorker is a worker that heartbeats every second and keeps its
// executions for a minute: takeovers in these tests come from takeOver.
func relayWorker(t *testing.T, p testpair.Pair, name string, tweak ...func(*engine.Options)) *engine.Engine {
	return engineOn(t, p, append([]func(*engine.Options){func(o *engine.Options) {
		o.Worker, o.HeartbeatTimeout, o.FlushInterval = name, time.Minute, 20*time.Millisecond
	}}, tweak...)...)
}

// takeOver makes the execution's worker look silent and has w claim it
// and run it to its end, trying again when a heartbeat came between.
func takeOver(t *testing.T, p testpair.Pair, w *engine.Engine, id, name string) {
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := p.DB.X.ExecContext(ctx, p.DB.Rebind(`UPDATE executions SET heartbeat_at = 0 WHERE id = ?`), id); err != nil {
			t.Error(err)
			return
		}
		if err := w.Work(ctx, id); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v", name, err)
			return
		}
		cur, err := p.DB.GetExecution(ctx, id)
		if err != nil {
			t.Error(err)
			return
		}
		if cur.Worker == name || cur.State.Terminated() {
			return
		}
	}
	t.Errorf("%s never took execution %s over", name, id)
}

// waitRunning waits until the database shows task running under worker.
func waitRunning(t *testing.T, p testpair.Pair, id, worker, task string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		cur, err := p.DB.GetExecution(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range cur.TaskRuns {
			if tr.TaskID == task && tr.State == engine.RUNNING && cur.Worker == worker {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never ran %s of execution %s", worker, task, id)
}

// A durable run still going when its engine shuts down is handed over, not
// killed: its progress is saved, the task it was running stays RUNNING, and
// another worker with a minute's heartbeat timeout takes it over at once,
// running only the interrupted task again. Both backend pairs.
func TestShutdown_HandsDurableRunsOver(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			set(t, p, "hold", "PT60S")
			ex := createStored(t, p, `id: handover
namespace: company.team
tasks:
  - id: first
    type: test.Echo
    value: "first"
  - id: hold
    type: test.Sleep
    duration: "{{ kv('hold') }}"
  - id: last
    type: test.Echo
    value: "{{ outputs.first.value }} again"
`)
			a := relayWorker(t, p, "a")
			aDone := make(chan error, 1)
			go func() { aDone <- a.Work(ctx, ex.ID) }()
			waitRunning(t, p, ex.ID, "a", "hold")
			stopping, stop := context.WithTimeout(ctx, 50*time.Millisecond)
			defer stop()
			if err := a.Shutdown(stopping); err != nil {
				t.Fatal(err)
			}
			if err := <-aDone; err != nil {
				t.Fatalf("a's run ended with %v", err)
			}
			mid, err := p.DB.GetExecution(ctx, ex.ID)
			if err != nil {
				t.Fatal(err)
			}
			if mid.State != engine.RUNNING || runs(mid, "first")[0].State != engine.SUCCESS || runs(mid, "hold")[0].State != engine.RUNNING {
				t.Fatalf("after the hand-over: %s, task runs %+v", mid.State, mid.TaskRuns)
			}
			logs, err := p.DB.Logs(ctx, ex.ID)
			if err != nil || len(logs) == 0 || !strings.Contains(logs[len(logs)-1].Message, "handed over to another worker") {
				t.Fatalf("logs = %+v, %v", logs, err)
			}

			set(t, p, "hold", "PT0.01S")
			b := relayWorker(t, p, "b")
			if err := b.Work(ctx, ex.ID); err != nil { // claims at once: no heartbeat timeout to wait
				t.Fatal(err)
			}
			got, err := relayWorker(t, p, "reader").Execution(ctx, ex.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantState(t, got, engine.SUCCESS)
			if got.Worker != "" && got.Worker != "b" {
				t.Errorf("worker = %q, want b", got.Worker)
			}
			if v := runs(got, "last")[0].Outputs["value"]; v != "first again" {
				t.Errorf("last = %v", v)
			}
			if n := len(runs(got, "first")[0].Attempts); n != 1 {
				t.Errorf("first ran %d times", n)
			}
			if h := runs(got, "hold")[0]; len(h.Attempts) != 2 || h.Attempts[0].Worker != "a" || h.Attempts[1].Worker != "b" {
				t.Errorf("hold attempts = %+v, want one on a, one on b", h.Attempts)
			}
		})
	}
}

// A worker reads a new execution's object only when it may have one (its
// flow declares inputs, or a trigger started it): one without reads
// nothing before it runs; one with inputs gets them. Both backend pairs.
func TestWork_ReadsTheCreationObjectOnlyWhenThereCanBeOne(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			counted := &storagetest.CountingBucket{Bucket: p.Bucket}
			w := relayWorker(t, p, "w", func(o *engine.Options) { o.Bucket = counted })

			plain := createStored(t, p, `id: plain
namespace: company.team
tasks:
  - id: say
    type: test.Echo
    value: hello
`)
			if err := w.Work(ctx, plain.ID); err != nil {
				t.Fatal(err)
			}
			if n := counted.Gets.Load(); n != 0 {
				t.Errorf("%d object reads for an execution without inputs, want 0", n)
			}

			withInput := createStored(t, p, `id: greet
namespace: company.team
inputs:
  - id: who
    type: STRING
    defaults: world
tasks:
  - id: say
    type: test.Echo
    value: "hello {{ inputs.who }}"
`)
			if err := relayWorker(t, p, "creator").SaveObject(ctx, withInput); err != nil {
				t.Fatal(err)
			}
			if err := w.Work(ctx, withInput.ID); err != nil {
				t.Fatal(err)
			}
			if n := counted.Gets.Load(); n != 1 {
				t.Errorf("%d object reads for an execution with inputs, want 1", n)
			}
			got, err := relayWorker(t, p, "reader").Execution(ctx, withInput.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantState(t, got, engine.SUCCESS)
			if v := runs(got, "say")[0].Outputs["value"]; v != "hello world" {
				t.Errorf("say = %v", v)
			}
		})
	}
}

// A worker runs a queued execution with its flow's current record, read
// with the execution: a flow deleted, or changed into one that no longer
// loads, after the execution was created fails it with the reason, and a
// flow changed into another valid one runs the new revision. Both backend
// pairs.
func TestWork_FlowChangedOrGoneBeforeTheWorker(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			w := relayWorker(t, p, "w")
			src := func(id, value string) string {
				return "id: " + id + "\nnamespace: company.team\ntasks:\n  - {id: say, type: test.Echo, value: " + value + "}\n"
			}
			for _, tc := range []struct {
				id, change, wantState, want string
			}{
				{"gone", "", "FAILED", "Flow 'gone' does not exist in namespace 'company.team'."},
				{"broken", "id: broken\nnamespace: company.team\ntasks: 42\n", "FAILED", "Flow 'broken' of namespace 'company.team' no longer loads"},
				{"changed", src("changed", "two"), "SUCCESS", "two"},
			} {
				ex := createStored(t, p, src(tc.id, "one"))
				if tc.change == "" {
					if ok, err := p.DB.DeleteFlow(ctx, "company.team", tc.id); err != nil || !ok {
						t.Fatal(ok, err)
					}
				} else if _, err := p.DB.UpdateFlow(ctx, kvflow.FlowRecord{Namespace: "company.team", ID: tc.id, Source: tc.change}); err != nil {
					t.Fatal(err)
				}
				if err := w.Work(ctx, ex.ID); err != nil {
					t.Fatalf("%s: %v", tc.id, err)
				}
				got, err := relayWorker(t, p, "reader").Execution(ctx, ex.ID)
				if err != nil {
					t.Fatal(err)
				}
				if string(got.State) != tc.wantState {
					t.Errorf("%s ended %s (%q), want %s", tc.id, got.State, got.Error, tc.wantState)
				} else if tc.wantState == "FAILED" && !strings.HasPrefix(got.Error, tc.want) {
					t.Errorf("%s failed with %q, want %q", tc.id, got.Error, tc.want)
				} else if tc.wantState == "SUCCESS" && runs(got, "say")[0].Outputs["value"] != tc.want {
					t.Errorf("%s said %v, want %s (the current revision)", tc.id, runs(got, "say")[0].Outputs["value"], tc.want)
				}
			}
		})
	}
}

// shutdownQueue creates executions in the database, as riverqueue does, and
// starts the engine's Shutdown while a run-here execution is being created.
type shutdownQueue struct {
	db interface {
		CreateExecution(context.Context, *kvflow.Execution) error
	}
	e        *engine.Engine
	shutdown chan error
}

func (q *shutdownQueue) Submit(ctx context.Context, ex *kvflow.Execution, write func(context.Context) error) error {
	return errors.New("no jobs in this test")
}

func (q *shutdownQueue) SubmitHere(ctx context.Context, ex *kvflow.Execution, write func(context.Context) error) error {
	go func() { q.shutdown <- q.e.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond) // Shutdown has begun: it refuses new runs
	return q.db.CreateExecution(ctx, ex)
}

// An execution created to run here while Shutdown begins still runs, and
// Shutdown waits for it: refused, it would stay CREATED, claimed by a
// process that stopped, until another worker's heartbeat timeout (a
// schedule that fired as its servers stopped made a test wait for that).
func TestStartTriggered_ShutdownWhileCreating_RunsAndShutdownWaits(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			q := &shutdownQueue{db: p.DB, shutdown: make(chan error, 1)}
			q.e = engineOn(t, p, func(o *engine.Options) {
				o.Worker, o.HeartbeatTimeout, o.RunHere, o.Queue = "w", time.Minute, 1, q
			})
			flow := mustParse(t, `id: tick
namespace: company.team
tasks:
  - id: echo
    type: test.Echo
    value: tick
`)
			ex, err := q.e.StartTriggered(ctx, flow, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-q.shutdown; err != nil {
				t.Fatal(err)
			}
			got, err := p.DB.GetExecution(ctx, ex.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantState(t, got, engine.SUCCESS)
		})
	}
}

func hasLine(lines []engine.LogLine, msg string) bool {
	for _, l := range lines {
		if l.Message == msg {
			return true
		}
	}
	return false
}
