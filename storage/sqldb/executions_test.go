package sqldb_test

import (
	"context"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage/sqldb"
	"github.com/kvflow/kvflow/storage/sqldb/sqldbtest"
)

// GetExecution reads an execution and its task runs in one statement: the
// runs come back whole and in seq order, none as an empty list.
func TestGetExecution_TaskRunsRoundTrip(t *testing.T) {
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
			if _, err := db.GetExecution(ctx, "nope"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
				t.Fatalf("missing execution: %v", err)
			}
		})
	}
}
