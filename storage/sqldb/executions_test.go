package sqldb_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage/sqldb"
	"github.com/kvflow/kvflow/storage/sqldb/sqldbtest"
)

// SaveExecution and GetExecution, one statement each on PostgreSQL: task
// runs and logs come back whole and in order, none as an empty list, and a
// save fenced by a lost claim writes nothing.
func TestSaveAndGetExecution_RoundTrip(t *testing.T) {
	for _, dialect := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			db := sqldbtest.Open(t, dialect)
			at := func(us int64) time.Time { return time.UnixMicro(1_700_000_000_000_000 + us).UTC() }
			ex := &kvflow.Execution{ID: "ex1", Namespace: "company.team", FlowID: "f", State: kvflow.RUNNING, Start: at(0)}
			if err := db.CreateExecution(ctx, ex); err != nil {
				t.Fatal(err)
			}
			got, err := db.GetExecution(ctx, "ex1")
			if err != nil || got.TaskRuns == nil || len(got.TaskRuns) != 0 {
				t.Fatalf("no task runs: %+v, %v", got, err)
			}
			end := at(30)
			runs := []*kvflow.TaskRun{
				{ID: "r2", Seq: 2, TaskID: "c", ParentID: "r0", State: kvflow.RUNNING, Start: at(40),
					Attempts: []kvflow.Attempt{{State: kvflow.FAILED, Start: at(40), End: &end, Worker: "w1"}, {State: kvflow.RUNNING, Start: at(41), Worker: "w2"}}},
				{ID: "r0", Seq: 0, TaskID: "a", State: kvflow.SUCCESS, Start: at(10), End: &end},
				{ID: "r1", Seq: 1, TaskID: "b", State: kvflow.FAILED, Error: "quote \" backslash \\ and ✓\nnew line", Start: at(20), End: &end},
			}
			if err := db.SaveExecution(ctx, kvflow.ExecutionSave{Execution: ex, TaskRuns: runs}); err != nil {
				t.Fatal(err)
			}
			if got, err = db.GetExecution(ctx, "ex1"); err != nil {
				t.Fatal(err)
			}
			if len(got.TaskRuns) != 3 {
				t.Fatalf("%d task runs", len(got.TaskRuns))
			}
			for i, want := range []*kvflow.TaskRun{runs[1], runs[2], runs[0]} {
				g := got.TaskRuns[i]
				if g.ID != want.ID || g.Seq != want.Seq || g.TaskID != want.TaskID || g.ParentID != want.ParentID || g.State != want.State ||
					g.Error != want.Error || !g.Start.Equal(want.Start) || (g.End == nil) != (want.End == nil) || (g.End != nil && !g.End.Equal(*want.End)) {
					t.Errorf("run %d = %+v, want %+v", i, g, want)
				}
				if len(g.Attempts) != len(want.Attempts) {
					t.Fatalf("run %d attempts = %+v, want %+v", i, g.Attempts, want.Attempts)
				}
				for j, a := range want.Attempts {
					ga := g.Attempts[j]
					if ga.State != a.State || !ga.Start.Equal(a.Start) || ga.Worker != a.Worker || (ga.End == nil) != (a.End == nil) {
						t.Errorf("run %d attempt %d = %+v, want %+v", i, j, ga, a)
					}
				}
			}
			// Logs keep their order and bytes; a save under a lost claim
			// writes nothing.
			msgs := []string{"first", "quote \" and \\ and {braces}, commas", "", "ünïcode ✓\nline two", "NULL"}
			var lines []kvflow.LogLine
			for i, m := range msgs {
				lines = append(lines, kvflow.LogLine{ExecutionID: "ex1", TaskID: "a", TaskRunID: "r0", Time: at(int64(50 + i)), Level: "INFO", Message: m})
			}
			if err := db.SaveExecution(ctx, kvflow.ExecutionSave{Execution: ex, Logs: lines}); err != nil {
				t.Fatal(err)
			}
			c, err := db.ClaimExecution(ctx, "ex1", "w1", at(0), 0, false)
			if err != nil {
				t.Fatal(err)
			}
			done := *ex
			done.State = kvflow.SUCCESS
			lost := kvflow.ExecutionSave{Execution: &done, Claim: c.Claim + 1, TaskRuns: []*kvflow.TaskRun{{ID: "r9", Seq: 9, TaskID: "z", State: kvflow.SUCCESS, Start: at(60)}},
				Logs: []kvflow.LogLine{{ExecutionID: "ex1", Time: at(60), Level: "INFO", Message: "not written"}}}
			if err := db.SaveExecution(ctx, lost); kvflow.ErrorCode(err) != kvflow.ECONFLICT {
				t.Fatalf("save under a lost claim: %v", err)
			}
			got, err = db.GetExecution(ctx, "ex1")
			if err != nil || got.State != kvflow.RUNNING || len(got.TaskRuns) != 3 {
				t.Fatalf("after a refused save: %+v, %v", got, err)
			}
			logs, err := db.Logs(ctx, "ex1")
			if err != nil || len(logs) != len(msgs) {
				t.Fatalf("logs = %+v, %v", logs, err)
			}
			for i, l := range logs {
				if l.Message != msgs[i] || !l.Time.Equal(at(int64(50+i))) || l.TaskRunID != "r0" {
					t.Errorf("log %d = %+v, want %q", i, l, msgs[i])
				}
			}
			readLogsAsLogs(t, db, "ex1", logs)
			lost.Claim = c.Claim
			if err := db.SaveExecution(ctx, lost); err != nil {
				t.Fatal(err)
			}
			if got, err = db.GetExecution(ctx, "ex1"); err != nil || got.State != kvflow.SUCCESS || len(got.TaskRuns) != 4 {
				t.Fatalf("after the held save: %+v, %v", got, err)
			}
			// A long flow's save: thousands of task runs and log lines in one call.
			big := &kvflow.Execution{ID: "ex2", Namespace: "company.team", FlowID: "f", State: kvflow.RUNNING, Start: at(0)}
			if err := db.CreateExecution(ctx, big); err != nil {
				t.Fatal(err)
			}
			const many = 3000
			var bigRuns []*kvflow.TaskRun
			var bigLogs []kvflow.LogLine
			for i := range many {
				bigRuns = append(bigRuns, &kvflow.TaskRun{ID: fmt.Sprint("b", i), Seq: many - 1 - i, TaskID: "each", State: kvflow.SUCCESS, Start: at(int64(i)), End: &end})
				bigLogs = append(bigLogs, kvflow.LogLine{ExecutionID: "ex2", Time: at(int64(i)), Level: "INFO", Message: fmt.Sprint("line ", i)})
			}
			if err := db.SaveExecution(ctx, kvflow.ExecutionSave{Execution: big, TaskRuns: bigRuns, Logs: bigLogs}); err != nil {
				t.Fatal(err)
			}
			got, err = db.GetExecution(ctx, "ex2")
			if err != nil || len(got.TaskRuns) != many || got.TaskRuns[0].ID != fmt.Sprint("b", many-1) || got.TaskRuns[many-1].ID != "b0" {
				t.Fatalf("%d task runs, %v", len(got.TaskRuns), err)
			}
			if logs, err = db.Logs(ctx, "ex2"); err != nil || len(logs) != many {
				t.Fatalf("%d logs, %v", len(logs), err)
			}
			for i, l := range logs {
				if l.Message != fmt.Sprint("line ", i) {
					t.Fatalf("log %d = %q", i, l.Message)
				}
			}
			// Lines added outside a save follow those saved; an execution
			// created with task runs keeps them.
			if err := db.AppendLogs(ctx, []kvflow.LogLine{{ExecutionID: "ex2", Time: at(0), Level: "WARN", Message: "after, 'quoted'"}, {ExecutionID: "ex2", Time: at(0), Level: "WARN", Message: "last"}}); err != nil {
				t.Fatal(err)
			}
			if logs, err = db.Logs(ctx, "ex2"); err != nil || len(logs) != many+2 || logs[many].Message != "after, 'quoted'" || logs[many+1].Message != "last" {
				t.Fatalf("%d logs after AppendLogs, %v", len(logs), err)
			}
			readLogsAsLogs(t, db, "ex2", logs)
			withRuns := &kvflow.Execution{ID: "ex3", Namespace: "company.team", FlowID: "f", State: kvflow.CREATED, Start: at(0), TaskRuns: []*kvflow.TaskRun{
				{ID: "c1", Seq: 1, TaskID: "b", State: kvflow.CREATED, Start: at(2)},
				{ID: "c0", Seq: 0, TaskID: "a", State: kvflow.FAILED, Error: `"quoted", {braced}`, Start: at(1), End: &end},
			}}
			if err := db.CreateExecution(ctx, withRuns); err != nil {
				t.Fatal(err)
			}
			if got, err = db.GetExecution(ctx, "ex3"); err != nil || len(got.TaskRuns) != 2 || got.TaskRuns[0].ID != "c0" || got.TaskRuns[0].Error != `"quoted", {braced}` ||
				got.TaskRuns[0].End == nil || got.TaskRuns[1].End != nil {
				t.Fatalf("created with task runs: %+v, %v", got, err)
			}
			if _, err := db.GetExecution(ctx, "nope"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
				t.Fatalf("missing execution: %v", err)
			}
		})
	}
}

// Workers racing for one execution, each claiming it (a takeover, as after
// a missed heartbeat) and saving under its claim: a save is acknowledged
// only while its claim is the row's, and a refused one writes nothing. Read
// back, the task runs and log lines are exactly those of the acknowledged
// saves. On PostgreSQL the save's one statement re-checks the claim on the
// row it updates, and its inserts join that update.
func TestClaimAndSave_Racing_OnlyHeldSavesLand(t *testing.T) {
	for _, dialect := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			db := sqldbtest.Open(t, dialect)
			start := time.Now()
			ex := &kvflow.Execution{ID: "race", Namespace: "company.team", FlowID: "f", State: kvflow.RUNNING, Start: start}
			if err := db.CreateExecution(ctx, ex); err != nil {
				t.Fatal(err)
			}
			const workers, rounds = 8, 25
			var mu sync.Mutex
			claims := map[int64]bool{}
			acked := map[string]bool{}
			refused := 0
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range rounds {
						c, err := db.ClaimExecution(ctx, "race", fmt.Sprint("w", w), time.Now().Add(time.Hour), 0, false)
						if err != nil {
							t.Errorf("claim: %v", err)
							return
						}
						time.Sleep(time.Duration(i%3) * 100 * time.Microsecond) // others claim meanwhile
						id := fmt.Sprintf("w%d-%d", w, i)
						err = db.SaveExecution(ctx, kvflow.ExecutionSave{Execution: ex, Claim: c.Claim,
							TaskRuns: []*kvflow.TaskRun{{ID: id, Seq: w*rounds + i, TaskID: "t", State: kvflow.SUCCESS, Start: start}},
							Logs:     []kvflow.LogLine{{ExecutionID: "race", Time: start, Level: "INFO", Message: id}}})
						mu.Lock()
						if claims[c.Claim] {
							t.Errorf("claim %d granted twice", c.Claim)
						}
						claims[c.Claim] = true
						switch kvflow.ErrorCode(err) {
						case "":
							acked[id] = true
						case kvflow.ECONFLICT:
							refused++
						default:
							t.Errorf("save %s: %v", id, err)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(acked) == 0 || refused == 0 {
				t.Fatalf("%d saves acknowledged, %d refused: the race tested nothing", len(acked), refused)
			}
			got, err := db.GetExecution(ctx, "race")
			if err != nil {
				t.Fatal(err)
			}
			runs := map[string]bool{}
			for _, r := range got.TaskRuns {
				runs[r.ID] = true
			}
			logs, err := db.Logs(ctx, "race")
			if err != nil {
				t.Fatal(err)
			}
			lines := map[string]bool{}
			for _, l := range logs {
				lines[l.Message] = true
			}
			if !maps.Equal(runs, acked) || !maps.Equal(lines, acked) || len(logs) != len(acked) {
				t.Errorf("%d task runs and %d log lines stored for %d acknowledged saves (%d refused)", len(runs), len(logs), len(acked), refused)
			}
			t.Logf("%d saves acknowledged, %d refused", len(acked), refused)
		})
	}
}

// ReadExecution reads the execution and its flow's current record in
// one statement: the record equals GetFlow's (source bytes, scope, triggers
// included), follows a new revision, and is nil once the flow is deleted.
func TestReadExecution_FlowRecordAsGetFlowReadsIt(t *testing.T) {
	for _, dialect := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			db := sqldbtest.Open(t, dialect)
			source := "id: f\nnamespace: company.team\n# \"quotes\", \\backslash\\, ✓ and {braces}\ntasks: []\n"
			if _, err := db.CreateFlow(ctx, kvflow.FlowRecord{Namespace: "company.team", ID: "f", Source: source,
				Triggers: []string{"io.kestra.plugin.core.trigger.Schedule", "io.kestra.plugin.core.trigger.Webhook"},
				Scope:    kvflow.NewScope("company.*", "shared")}); err != nil {
				t.Fatal(err)
			}
			ex := &kvflow.Execution{ID: "ex1", Namespace: "company.team", FlowID: "f", State: kvflow.CREATED, Start: time.Now()}
			if err := db.CreateExecution(ctx, ex); err != nil {
				t.Fatal(err)
			}
			check := func(wantRevision int64) {
				t.Helper()
				got, rec, err := db.ReadExecution(ctx, "ex1", kvflow.ExecutionParts{Flow: true})
				if err != nil || got.ID != "ex1" || got.State != kvflow.CREATED || got.TaskRuns == nil {
					t.Fatalf("ReadExecution = %+v, %v", got, err)
				}
				want, err := db.GetFlow(ctx, "company.team", "f")
				if err != nil || rec == nil {
					t.Fatalf("flow record %v, GetFlow error %v", rec, err)
				}
				if rec.Revision != wantRevision || rec.Namespace != want.Namespace || rec.ID != want.ID || rec.Revision != want.Revision ||
					rec.Source != want.Source || !rec.Updated.Equal(want.Updated) || fmt.Sprint(rec.Triggers) != fmt.Sprint(want.Triggers) ||
					rec.Scope.String() != want.Scope.String() {
					t.Errorf("record %+v, GetFlow %+v; want equal, at revision %d", *rec, want, wantRevision)
				}
			}
			check(1)
			if _, err := db.UpdateFlow(ctx, kvflow.FlowRecord{Namespace: "company.team", ID: "f", Source: source + "# two\n"}); err != nil {
				t.Fatal(err)
			}
			check(2)
			if ok, err := db.DeleteFlow(ctx, "company.team", "f"); err != nil || !ok {
				t.Fatal(ok, err)
			}
			if got, rec, err := db.ReadExecution(ctx, "ex1", kvflow.ExecutionParts{Flow: true}); err != nil || got.ID != "ex1" || rec != nil {
				t.Errorf("after the flow's delete: %+v, %+v, %v; want the execution and no flow", got, rec, err)
			}
			if _, _, err := db.ReadExecution(ctx, "nope", kvflow.ExecutionParts{Flow: true, Logs: true}); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
				t.Errorf("missing execution: %v; want ENOTFOUND", err)
			}
		})
	}
}

// readLogsAsLogs checks that ReadExecution reads an execution's log lines,
// with its task runs, as Logs does.
func readLogsAsLogs(t *testing.T, db *sqldb.DB, id string, want []kvflow.LogLine) {
	t.Helper()
	got, _, err := db.ReadExecution(context.Background(), id, kvflow.ExecutionParts{Logs: true})
	if err != nil || len(got.Logs) != len(want) {
		t.Fatalf("ReadExecution read %d log lines, %v; want %d", len(got.Logs), err, len(want))
	}
	for i, l := range got.Logs {
		if w := want[i]; l.ExecutionID != w.ExecutionID || l.TaskID != w.TaskID || l.TaskRunID != w.TaskRunID || !l.Time.Equal(w.Time) || l.Level != w.Level || l.Message != w.Message {
			t.Fatalf("ReadExecution log %d = %+v, Logs %+v", i, l, w)
		}
	}
}
