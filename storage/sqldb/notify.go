package sqldb

import (
	"context"
	"time"

	"github.com/lib/pq"
)

// endChannel is the PostgreSQL channel on which the save that ends an
// execution announces its id, at its commit.
const endChannel = "kvflow_execution_end"

// ListenExecutionEnds calls fn with the id of each execution ended by any
// process on PostgreSQL, and with "" when notifications may have been
// missed (a reconnection), until ctx ends. It returns at once, false, on
// SQLite, whose waiters poll.
func (db *DB) ListenExecutionEnds(ctx context.Context, fn func(id string)) bool {
	if db.Dialect != Postgres {
		return false
	}
	l := pq.NewListener(db.dsn, 10*time.Millisecond, time.Second, func(ev pq.ListenerEventType, err error) {
		if ev == pq.ListenerEventReconnected {
			fn("")
		}
	})
	go func() { <-ctx.Done(); l.Close() }()
	go func() {
		// Listen waits for a connection; without one, waiters keep polling.
		if err := l.Listen(endChannel); err != nil {
			return
		}
		for n := range l.Notify { // closed once l is
			if n != nil { // nil follows a reconnection, reported above
				fn(n.Extra)
			}
		}
	}()
	return true
}
