package engine_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// The records of an execution: states, dates, attempts and logs in the
// database; inputs and outputs only in the Bucket.
func TestRepository_KeepsStatesInTheDatabaseAndValuesInTheBucket(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			e := engineOn(t, p)
			const secret = "s3cr3t-value-7f1e"
			ex := run(t, e, `
id: secrets
namespace: company.team
labels: {team: data}
inputs:
  - {id: secret, type: STRING}
tasks:
  - {id: set, type: test.kv.Set, key: k, value: "{{ inputs.secret }}"}
  - {id: get, type: test.kv.Get, key: k}
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["{{ outputs.get.value }}"]
    tasks:
      - {id: flaky, type: test.Flaky, failures: 1, retry: {type: constant, interval: PT0.001S, maxAttempts: 2}}
outputs:
  - {id: got, value: "{{ outputs.get.value }}"}
`, map[string]any{"secret": secret})
			wantState(t, ex, engine.SUCCESS)

			// Nothing in the database holds the value.
			for _, table := range []string{"executions", "task_runs", "execution_logs"} {
				var rows []map[string]any
				r, err := p.DB.X.QueryxContext(ctx, "SELECT * FROM "+table)
				if err != nil {
					t.Fatal(err)
				}
				for r.Next() {
					m := map[string]any{}
					if err := r.MapScan(m); err != nil {
						t.Fatal(err)
					}
					rows = append(rows, m)
				}
				r.Close()
				if len(rows) == 0 {
					t.Errorf("table %s is empty", table)
				}
				for _, row := range rows {
					for col, v := range row {
						if b, ok := v.([]byte); ok {
							v = string(b)
						}
						if s, ok := v.(string); ok && strings.Contains(s, secret) {
							t.Errorf("%s.%s holds the value: %q", table, col, s)
						}
					}
				}
			}

			// The Bucket holds it, in one object per execution.
			rc, err := p.Bucket.Get(ctx, engine.ObjectName(ex))
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, rc)
			rc.Close()
			if !strings.Contains(body, secret) || !strings.HasPrefix(engine.ObjectName(ex), "_executions/company/team/secrets/"+ex.ID+"/") {
				t.Errorf("object %s = %s", engine.ObjectName(ex), body)
			}

			// A fresh engine joins both.
			got, err := engineOn(t, p).Execution(ctx, ex.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != engine.SUCCESS || got.Inputs["secret"] != secret || got.Outputs["got"] != secret ||
				got.Labels["team"] != "data" || got.FlowID != "secrets" || got.Namespace != "company.team" || got.End == nil {
				t.Errorf("execution = %+v", got)
			}
			if len(got.TaskRuns) != len(ex.TaskRuns) {
				t.Fatalf("%d task runs, want %d", len(got.TaskRuns), len(ex.TaskRuns))
			}
			for i, tr := range got.TaskRuns {
				want := ex.TaskRuns[i]
				wj, _ := json.Marshal(want)
				gj, _ := json.Marshal(tr)
				if string(wj) != string(gj) {
					t.Errorf("task run %d:\n got  %s\n want %s", i, gj, wj)
				}
			}
			flaky := runs(got, "flaky")[0]
			if flaky.Value != secret || len(flaky.Attempts) != 2 || flaky.Attempts[0].State != engine.FAILED || flaky.Attempts[0].End == nil {
				t.Errorf("flaky run = %+v", flaky)
			}

			logs, err := e.Logs(ctx, ex.ID)
			if err != nil || len(logs) == 0 || logs[0].TaskID != "flaky" || logs[0].Level != "WARN" {
				t.Errorf("logs = %+v, %v", logs, err)
			}

			list, err := p.DB.ListExecutions(ctx, engine.ExecutionQuery{Namespace: "company.team", FlowID: "secrets"})
			if err != nil || len(list) != 1 || list[0].ID != ex.ID || list[0].State != engine.SUCCESS {
				t.Errorf("list = %+v, %v", list, err)
			}
			if _, err := p.DB.GetExecution(ctx, "nope"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
				t.Errorf("missing execution: %v", err)
			}
		})
	}
}

func TestRepository_Flows_RevisionGrowsOnEachSave(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			at := time.Date(2024, 7, 15, 6, 10, 33, 123456000, time.UTC)
			r1, err := p.DB.SaveFlow(ctx, engine.FlowRecord{Namespace: "company.team", ID: "f", Source: "v1", Updated: at})
			if err != nil || r1.Revision != 1 {
				t.Fatalf("first save = %+v, %v", r1, err)
			}
			r2, err := p.DB.SaveFlow(ctx, engine.FlowRecord{Namespace: "company.team", ID: "f", Source: "v2"})
			if err != nil || r2.Revision != 2 {
				t.Fatalf("second save = %+v, %v", r2, err)
			}
			if _, err := p.DB.SaveFlow(ctx, engine.FlowRecord{Namespace: "company", ID: "g", Source: "g"}); err != nil {
				t.Fatal(err)
			}
			got, err := p.DB.GetFlow(ctx, "company.team", "f")
			if err != nil || got.Source != "v2" || got.Revision != 2 {
				t.Errorf("get = %+v, %v", got, err)
			}
			all, err := p.DB.ListFlows(ctx, "")
			if err != nil || len(all) != 2 || all[0].Namespace != "company" {
				t.Errorf("list all = %+v, %v", all, err)
			}
			some, err := p.DB.ListFlows(ctx, "company.team")
			if err != nil || len(some) != 1 || some[0].ID != "f" {
				t.Errorf("list ns = %+v, %v", some, err)
			}
			if ok, err := p.DB.DeleteFlow(ctx, "company.team", "f"); !ok || err != nil {
				t.Errorf("delete = %v, %v", ok, err)
			}
			if ok, err := p.DB.DeleteFlow(ctx, "company.team", "f"); ok || err != nil {
				t.Errorf("second delete = %v, %v", ok, err)
			}
			if _, err := p.DB.GetFlow(ctx, "company.team", "f"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
				t.Errorf("get deleted: %v", err)
			}
			r, err := p.DB.SaveFlow(ctx, engine.FlowRecord{Namespace: "company.team", ID: "f", Source: "v3"})
			if err != nil || r.Revision != 1 {
				t.Errorf("save after delete = %+v, %v", r, err)
			}
		})
	}
}

// countingRepo counts the task-run rows each save writes.
type countingRepo struct {
	engine.Repository
	saves, rows int
}

func (c *countingRepo) SaveExecution(ctx context.Context, s kvflow.ExecutionSave) error {
	c.saves++
	c.rows += len(s.TaskRuns)
	return c.Repository.SaveExecution(ctx, s)
}

// Saves are incremental: a flow of n tasks saved many times while it runs
// writes each task run a bounded number of times, not every task run at
// every save (which grows with n²).
func TestSave_Incremental_TaskRunRowsGrowWithFlowLength(t *testing.T) {
	p := testpair.Local(t, storage.Options{})
	const n = 300
	var src strings.Builder
	src.WriteString("id: long\nnamespace: company.team\ntasks:\n")
	for i := range n {
		fmt.Fprintf(&src, "  - {id: t%d, type: test.Sleep, duration: PT0.002S}\n", i)
	}
	repo := &countingRepo{Repository: p.DB}
	e := engineOn(t, p, func(o *engine.Options) { o.Repo, o.FlushInterval = repo, time.Millisecond })
	ex := run(t, e, src.String(), nil)
	wantState(t, ex, engine.SUCCESS)
	// Ten saves of a non-incremental repository would already write about
	// 5n rows; a loaded machine gives fewer saves than an idle one.
	if repo.saves < 10 {
		t.Fatalf("only %d saves: the test needs many saves during the run", repo.saves)
	}
	// Each task run is written when it starts or ends, at most about twice.
	if repo.rows > 3*n {
		t.Fatalf("%d saves wrote %d task-run rows for %d tasks: saves are not incremental", repo.saves, repo.rows, n)
	}
	stored, err := p.DB.GetExecution(context.Background(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range stored.TaskRuns {
		if tr.State != engine.SUCCESS || tr.TaskID != fmt.Sprintf("t%d", i) {
			t.Fatalf("stored task run %d: %s %s", i, tr.TaskID, tr.State)
		}
	}
	t.Logf("%d tasks, %d saves, %d task-run rows written", n, repo.saves, repo.rows)
}

// A heartbeat keeps alive only the executions the worker still runs: one
// it holds in the database but no longer runs (its run ended without its
// save) goes silent, and is released for another worker to take over.
func TestRepository_HeartbeatKeepsOnlyRunningExecutionsAlive(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			for _, id := range []string{"runs", "orphan"} {
				ex := &kvflow.Execution{ID: id, Namespace: "company.team", FlowID: "f", FlowRevision: 1, State: kvflow.CREATED, Start: time.Now(), Labels: map[string]string{}}
				if err := p.DB.CreateExecution(ctx, ex); err != nil {
					t.Fatal(err)
				}
				if _, err := p.DB.ClaimExecution(ctx, id, "w1", time.Now().Add(-time.Minute), 0, false); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(20 * time.Millisecond)
			silentSince := time.Now()
			time.Sleep(20 * time.Millisecond)
			if _, err := p.DB.Heartbeat(ctx, "w1", []string{"runs"}); err != nil {
				t.Fatal(err)
			}
			var released []string
			err := p.DB.Tx(ctx, func(tx *sql.Tx) error {
				var err error
				released, err = p.DB.ReleaseStale(ctx, tx, silentSince, 10)
				return err
			})
			if err != nil || len(released) != 1 || released[0] != "orphan" {
				t.Fatalf("released %v, %v; want only the execution w1 no longer runs", released, err)
			}
		})
	}
}

// Workers racing to claim executions of a flow limited to one: exactly one
// wins while it runs; with atCreation (CANCEL, FAIL) the ones created while
// it ran stay refused after it ends, and of those created after its end
// exactly one wins again. Each claim is read back.
func TestRepository_ClaimUnderLimit_RacingWorkers(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			n := 0
			create := func(k int) []string {
				ids := make([]string, k)
				for i := range ids {
					n++
					ids[i] = fmt.Sprintf("x%02d", n)
					ex := &kvflow.Execution{ID: ids[i], Namespace: "company.team", FlowID: "lim", FlowRevision: 1, State: kvflow.CREATED, Start: time.Now(), Labels: map[string]string{}}
					if err := p.DB.CreateExecution(ctx, ex); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(2 * time.Millisecond) // started_at is in microseconds: later writes compare after
				return ids
			}
			// race claims ids from as many goroutines, and returns the winners,
			// each read back as held by its worker.
			race := func(ids []string, atCreation bool) []string {
				claims := make([]kvflow.Claim, len(ids))
				errs := make([]error, len(ids))
				var wg sync.WaitGroup
				for i, id := range ids {
					wg.Add(1)
					go func() {
						defer wg.Done()
						claims[i], errs[i] = p.DB.ClaimExecution(ctx, id, "w-"+id, time.Now().Add(-time.Minute), 1, atCreation)
					}()
				}
				wg.Wait()
				var won []string
				for i, id := range ids {
					if errs[i] != nil {
						t.Fatalf("claim %s: %v", id, errs[i])
					}
					got, err := p.DB.GetExecution(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					if claims[i].OverLimit != (got.Worker == "") || (!claims[i].OverLimit && got.Worker != "w-"+id) {
						t.Fatalf("claim %s = %+v, but the database says worker %q", id, claims[i], got.Worker)
					}
					if !claims[i].OverLimit {
						won = append(won, id)
					}
				}
				return won
			}
			first := race(create(8), false)
			if len(first) != 1 {
				t.Fatalf("%d claims won under limit 1: %v", len(first), first)
			}
			during := create(6) // while first[0] runs
			end := time.Now()
			done := &kvflow.Execution{ID: first[0], State: kvflow.SUCCESS, End: &end}
			if err := p.DB.SaveExecution(ctx, kvflow.ExecutionSave{Execution: done}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
			if won := race(during, true); len(won) != 0 {
				t.Fatalf("created while %s ran, yet claimed after its end: %v", first[0], won)
			}
			if won := race(create(6), true); len(won) != 1 {
				t.Fatalf("created after every run ended: %d claims won, want 1: %v", len(won), won)
			}
		})
	}
}

// Workers racing to take one execution over, each saving it under its
// claim and releasing it: every claim number is granted once, a save or a
// release under a claim that another worker took over changes nothing,
// and exactly one terminal save lands, under the claim the row keeps.
// Both backend pairs.
func TestRepository_TakeoverSavesAndReleases_FencedUnderRace(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			ex := &kvflow.Execution{ID: "fenced", Namespace: "company.team", FlowID: "f", FlowRevision: 1, State: kvflow.CREATED, Start: time.Now(), Labels: map[string]string{}}
			if err := p.DB.CreateExecution(ctx, ex); err != nil {
				t.Fatal(err)
			}
			const workers, rounds = 8, 25
			var (
				mu      sync.Mutex
				granted = map[int64]string{}
				ended   []int64
				wg      sync.WaitGroup
			)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("w%d", w)
					for i := range rounds {
						// A stale mark in the future: every holder counts as silent.
						c, err := p.DB.ClaimExecution(ctx, "fenced", name, time.Now().Add(time.Hour), 0, false)
						if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
							return // over
						} else if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						if prev, dup := granted[c.Claim]; dup {
							t.Errorf("claim %d granted to %s and %s", c.Claim, prev, name)
						}
						granted[c.Claim] = name
						mu.Unlock()
						state := kvflow.RUNNING
						if i == rounds-1 { // the first worker through its rounds ends it
							state = kvflow.SUCCESS
						}
						end := time.Now()
						save := kvflow.ExecutionSave{Execution: &kvflow.Execution{ID: "fenced", State: state, End: &end}, Claim: c.Claim}
						switch err := p.DB.SaveExecution(ctx, save); {
						case err == nil && state == kvflow.SUCCESS:
							mu.Lock()
							ended = append(ended, c.Claim)
							mu.Unlock()
							return
						case err != nil && kvflow.ErrorCode(err) != kvflow.ECONFLICT:
							t.Error(err)
							return
						}
						if err := p.DB.ReleaseExecution(ctx, "fenced", c.Claim); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			got, err := p.DB.GetExecution(ctx, "fenced")
			if err != nil {
				t.Fatal(err)
			}
			if len(ended) != 1 || got.State != kvflow.SUCCESS || got.Claim != ended[0] {
				t.Fatalf("terminal saves under claims %v; the row is %s under claim %d", ended, got.State, got.Claim)
			}
			for c := int64(1); c <= got.Claim; c++ {
				if _, ok := granted[c]; !ok {
					t.Errorf("claim %d was never granted (row at %d)", c, got.Claim)
				}
			}
			if len(granted) < workers || got.Claim < 2 {
				t.Errorf("only %d claims granted: the workers did not race", len(granted))
			}
			// A late save or release under an old claim changes nothing.
			end := time.Now()
			if err := p.DB.SaveExecution(ctx, kvflow.ExecutionSave{Execution: &kvflow.Execution{ID: "fenced", State: kvflow.FAILED, End: &end}, Claim: 1}); kvflow.ErrorCode(err) != kvflow.ECONFLICT {
				t.Errorf("a save under claim 1 after the end: %v, want a conflict", err)
			}
			if err := p.DB.ReleaseExecution(ctx, "fenced", 1); err != nil {
				t.Fatal(err)
			}
			if after, err := p.DB.GetExecution(ctx, "fenced"); err != nil || after.State != kvflow.SUCCESS || after.Claim != got.Claim {
				t.Errorf("after late writes: %+v, %v", after, err)
			}
		})
	}
}

// Workers racing, round after round, to claim every waiting execution of a
// flow under a QUEUE limit of one: each round exactly one claim wins, and
// it is the oldest waiting one, read back as held by its worker; ending it
// lets the next oldest win. So the executions run in creation order.
func TestRepository_QueueClaimsInCreationOrder_RacingWorkers(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			var waiting []string
			for i := range 8 {
				id := fmt.Sprintf("q%02d", i)
				ex := &kvflow.Execution{ID: id, Namespace: "company.team", FlowID: "fifo", FlowRevision: 1, State: kvflow.CREATED, Start: time.Now(), Labels: map[string]string{}}
				if err := p.DB.CreateExecution(ctx, ex); err != nil {
					t.Fatal(err)
				}
				waiting = append(waiting, id)
				time.Sleep(2 * time.Millisecond) // started_at is in microseconds
			}
			for len(waiting) > 0 {
				claims := make([]kvflow.Claim, len(waiting))
				errs := make([]error, len(waiting))
				var wg sync.WaitGroup
				for i, id := range waiting { // the newest first, as a busy queue might fetch them
					wg.Add(1)
					go func() {
						defer wg.Done()
						claims[i], errs[i] = p.DB.ClaimExecution(ctx, id, "w-"+id, time.Now().Add(-time.Minute), 1, false)
					}()
				}
				wg.Wait()
				var won []string
				for i, id := range waiting {
					if errs[i] != nil {
						t.Fatalf("claim %s: %v", id, errs[i])
					}
					if !claims[i].OverLimit {
						won = append(won, id)
					}
				}
				if len(won) != 1 || won[0] != waiting[0] {
					t.Fatalf("claims won %v, want only the oldest waiting, %s", won, waiting[0])
				}
				got, err := p.DB.GetExecution(ctx, won[0])
				if err != nil || got.Worker != "w-"+won[0] {
					t.Fatalf("%s read back as %+v, %v", won[0], got, err)
				}
				end := time.Now()
				if err := p.DB.SaveExecution(ctx, kvflow.ExecutionSave{Execution: &kvflow.Execution{ID: won[0], State: kvflow.SUCCESS, End: &end}, Claim: claims[0].Claim}); err != nil {
					t.Fatal(err)
				}
				waiting = waiting[1:]
			}
		})
	}
}
