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

// BenchmarkExecutionRecords makes the records of one 2-task execution, as
// a worker does: create it, save it RUNNING with its two task runs, save
// its end with a log line, then read it back with its logs.
// Run: go run ./internal/testsvc/cmd/testsvc run -- go test ./storage/sqldb -run '^$' -bench ExecutionRecords
func BenchmarkExecutionRecords(b *testing.B) {
	for _, dialect := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		b.Run(string(dialect), func(b *testing.B) {
			ctx := context.Background()
			db := sqldbtest.Open(b, dialect)
			i := 0
			for b.Loop() {
				i++
				now := time.Now()
				ex := &kvflow.Execution{ID: fmt.Sprint("ex", i), Namespace: "bench", FlowID: "two", State: kvflow.CREATED, Start: now}
				if err := db.CreateExecution(ctx, ex); err != nil {
					b.Fatal(err)
				}
				ex.State = kvflow.RUNNING
				runs := []*kvflow.TaskRun{
					{ID: ex.ID + "-0", Seq: 0, TaskID: "log", State: kvflow.RUNNING, Start: now, Attempts: []kvflow.Attempt{{State: kvflow.RUNNING, Start: now, Worker: "w"}}},
					{ID: ex.ID + "-1", Seq: 1, TaskID: "set", State: kvflow.CREATED, Start: now},
				}
				if err := db.SaveExecution(ctx, kvflow.ExecutionSave{Execution: ex, TaskRuns: runs}); err != nil {
					b.Fatal(err)
				}
				end := time.Now()
				ex.State, ex.End = kvflow.SUCCESS, &end
				for _, r := range runs {
					r.State, r.End, r.Attempts = kvflow.SUCCESS, &end, []kvflow.Attempt{{State: kvflow.SUCCESS, Start: now, End: &end, Worker: "w"}}
				}
				log := []kvflow.LogLine{{ExecutionID: ex.ID, TaskID: "log", TaskRunID: runs[0].ID, Time: now, Level: "INFO", Message: "hello " + ex.ID}}
				if err := db.SaveExecution(ctx, kvflow.ExecutionSave{Execution: ex, TaskRuns: runs, Logs: log}); err != nil {
					b.Fatal(err)
				}
				got, err := db.GetExecution(ctx, ex.ID)
				if err != nil || len(got.TaskRuns) != 2 {
					b.Fatalf("%+v, %v", got, err)
				}
				if logs, err := db.Logs(ctx, ex.ID); err != nil || len(logs) != 1 {
					b.Fatalf("%+v, %v", logs, err)
				}
			}
		})
	}
}
