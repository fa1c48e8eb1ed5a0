package sqldb_test

import (
	"context"
	"fmt"
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
			if _, err := db.GetExecution(ctx, "nope"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
				t.Fatalf("missing execution: %v", err)
			}
		})
	}
}
