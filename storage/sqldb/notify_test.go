package sqldb_test

import (
	"context"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage/sqldb"
	"github.com/kvflow/kvflow/storage/sqldb/sqldbtest"
)

// TestListenExecutionEnds_HearsTerminalSavesOfAnyConnection: on PostgreSQL
// a save that ends an execution is heard by a listener on another
// connection, once committed; a save that does not end it is not. SQLite
// has no listener (its waiters poll).
func TestListenExecutionEnds_HearsTerminalSavesOfAnyConnection(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if sqldbtest.Open(t, sqldb.SQLite).ListenExecutionEnds(ctx, func(string) {}) {
		t.Fatal("SQLite claims to hear execution ends")
	}
	// The listener has a connection of its own; the saves use the pool's.
	db := sqldbtest.Open(t, sqldb.Postgres)
	listener, writer := db, db
	heard := make(chan string, 10)
	if !listener.ListenExecutionEnds(ctx, func(id string) { heard <- id }) {
		t.Fatal("PostgreSQL does not listen")
	}
	ex := &kvflow.Execution{ID: "listen-" + time.Now().Format("150405.000000"), Namespace: "ns", FlowID: "f",
		State: kvflow.CREATED, Start: time.Now()}
	if err := writer.CreateExecution(ctx, ex); err != nil {
		t.Fatal(err)
	}
	// The listener connects in the background: save RUNNING until it is
	// surely listening, which must be heard as nothing at all.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ex.State = kvflow.RUNNING
		if err := writer.SaveExecution(ctx, kvflow.ExecutionSave{Execution: ex}); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := listener.X.Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%kvflow_execution_end%'`); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener never listened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	end := time.Now()
	ex.State, ex.End = kvflow.SUCCESS, &end
	if err := writer.SaveExecution(ctx, kvflow.ExecutionSave{Execution: ex}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-heard:
		if id != ex.ID {
			t.Fatalf("heard %q, want %q (a RUNNING save, or a reconnection, was announced)", id, ex.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the end of the execution was not heard")
	}
	select {
	case id := <-heard:
		t.Fatalf("heard %q once more", id)
	case <-time.After(200 * time.Millisecond):
	}
}
