package sqldb

import (
	"context"
	"errors"
	"sync"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/kvflow/kvflow"
)

// maxBatch bounds the writes committed in one transaction.
const maxBatch = 256

// committer is SQLite's group commit. SQLite has one writer at a time, and
// writers that race for its lock sleep in its busy handler; instead, KV writes
// queue here and one goroutine commits whatever is queued in one transaction,
// each write in its own savepoint so that a failing write fails alone. A
// write alone in the queue commits at once: there is no timer.
type committer struct {
	db   *DB
	reqs chan *writeReq

	mu     sync.RWMutex // held for reading while sending, so close waits for senders
	closed bool
	done   chan struct{}
}

type writeReq struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sqlx.Tx) error
	err  error
	done chan struct{}
}

var errClosed = kvflow.Errorf(kvflow.EUNAVAILABLE, "The database is closed.")

func newCommitter(db *DB) *committer {
	c := &committer{db: db, reqs: make(chan *writeReq, maxBatch), done: make(chan struct{})}
	go c.loop()
	return c
}

// write runs fn in the next batch's transaction and returns once that batch
// is committed (or fn failed). Once queued, a write is waited for even if ctx
// ends, so a caller never mistakes a committed write for a failed one.
func (c *committer) write(ctx context.Context, fn func(context.Context, *sqlx.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan struct{})}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errClosed
	}
	c.reqs <- r
	c.mu.RUnlock()
	<-r.done
	return r.err
}

func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.mu.Unlock()
	<-c.done
}

func (c *committer) loop() {
	defer close(c.done)
	batch := make([]*writeReq, 0, maxBatch)
	for r := range c.reqs {
		batch = append(batch[:0], r)
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		c.commit(batch)
	}
}

// commit runs one batch. A write whose context has ended is not run.
func (c *committer) commit(batch []*writeReq) {
	finish := func(err error) {
		for _, r := range batch {
			if r.err == nil {
				r.err = err
			}
			close(r.done)
		}
	}
	// Statements run without the callers' cancellation: interrupting a
	// statement inside a transaction would roll back the whole batch.
	ctx := context.Background()
	tx, err := c.db.X.BeginTxx(ctx, nil)
	if err != nil {
		finish(c.db.Err(err))
		return
	}
	savepoints := len(batch) > 1
	ran := 0
	for _, r := range batch {
		if r.err = r.ctx.Err(); r.err != nil {
			continue
		}
		if !savepoints {
			r.err = r.fn(ctx, tx)
			ran++
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT w"); err != nil {
			r.err = c.db.Err(err)
			continue
		}
		if r.err = r.fn(ctx, tx); r.err != nil {
			_, err = tx.ExecContext(ctx, "ROLLBACK TO w")
		}
		if err == nil {
			_, err = tx.ExecContext(ctx, "RELEASE w")
		}
		if err != nil { // the transaction is unusable: fail the whole batch
			tx.Rollback()
			finish(c.db.Err(err))
			return
		}
		ran++
	}
	if ran == 0 || (!savepoints && batch[0].err != nil) {
		tx.Rollback()
		finish(nil)
		return
	}
	finish(c.db.Err(tx.Commit()))
}

// write runs fn in a transaction: through the group commit on SQLite, on its
// own on PostgreSQL.
func (db *DB) write(ctx context.Context, fn func(context.Context, *sqlx.Tx) error) error {
	if db.batch != nil {
		return db.batch.write(ctx, fn)
	}
	for attempt := 0; ; attempt++ {
		err := db.tx(ctx, func(tx *sqlx.Tx) error { return fn(ctx, tx) })
		if !deadlocked(err) || attempt == 4 {
			return err
		}
		// PostgreSQL rolled this transaction back to break a lock cycle
		// (a batch takes many entry rows and the namespace's feed counter;
		// a lone write, one row then the counter): run it again.
	}
}

// deadlocked reports whether PostgreSQL chose err's transaction as the
// victim of a deadlock: nothing of it was written.
func deadlocked(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "40P01"
}
