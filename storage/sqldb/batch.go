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
// queue here and one of them, the leader, commits whatever is queued in one
// transaction, each write in its own savepoint so that a failing write fails
// alone. A write that finds no leader leads, on its own goroutine: alone, it
// commits at once, with no timer and no hand-off to another goroutine. A
// leader whose own write is committed hands what is still queued to a new
// goroutine, so no caller waits for others' batches.
type committer struct {
	db *DB

	mu      sync.Mutex
	queue   []*writeReq
	leading bool // a goroutine is committing batches
	closed  bool
	idle    sync.Cond // broadcast when leading ends
}

type writeReq struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sqlx.Tx) error
	err  error
	done chan struct{}
}

var errClosed = kvflow.Errorf(kvflow.EUNAVAILABLE, "The database is closed.")

func newCommitter(db *DB) *committer {
	c := &committer{db: db}
	c.idle.L = &c.mu
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
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.queue = append(c.queue, r)
	if c.leading {
		c.mu.Unlock()
		<-r.done
		return r.err
	}
	c.leading = true
	c.mu.Unlock()
	c.lead(r)
	return r.err
}

// lead commits queued batches until mine is committed (until the queue is
// empty when mine is nil), then hands the rest to a new leader or stops.
func (c *committer) lead(mine *writeReq) {
	for {
		c.mu.Lock()
		if mine != nil && isDone(mine) && len(c.queue) > 0 {
			c.mu.Unlock()
			go c.lead(nil)
			return
		}
		if len(c.queue) == 0 {
			c.leading = false
			c.idle.Broadcast()
			c.mu.Unlock()
			return
		}
		n := min(len(c.queue), maxBatch)
		batch := c.queue[:n:n]
		if c.queue = c.queue[n:]; len(c.queue) == 0 {
			c.queue = nil
		}
		c.mu.Unlock()
		c.commit(batch)
	}
}

func isDone(r *writeReq) bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// queued returns how many writes wait for a batch (for tests).
func (c *committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	for c.leading {
		c.idle.Wait()
	}
	c.mu.Unlock()
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
		if !db.deadlocked(err) || attempt == 4 {
			return err
		}
		// PostgreSQL rolled this transaction back to break a lock cycle, which
		// lockFeeds leaves only to the first writes of a new namespace: run it
		// again.
	}
}

// deadlocked reports whether PostgreSQL chose err's transaction as the
// victim of a deadlock (nothing of it was written), and counts it.
func (db *DB) deadlocked(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "40P01" {
		db.deadlocks.Add(1)
		return true
	}
	return false
}

// lockFeeds locks, on PostgreSQL, the change-feed counters of namespaces in
// tx, in namespace order. Every transaction that writes kv_entries takes its
// namespaces' counters before any entry row (a lone Set in its statement,
// putEntryIntent): the counter stays locked until the commit anyway, since
// the triggers take it for each row, and taking it first keeps a batch of
// many rows and the writers of those rows from waiting on each other. create
// also creates missing counters at 0, as a batch's first write of a
// namespace would; a delete needs none, as a namespace without a counter has
// no entries.
func (db *DB) lockFeeds(ctx context.Context, tx *sqlx.Tx, namespaces []string, create bool) error {
	if db.Dialect != Postgres || len(namespaces) == 0 {
		return nil
	}
	query := `SELECT 1 FROM kv_change_seqs WHERE namespace = ANY($1) ORDER BY namespace FOR UPDATE`
	if create {
		query = `INSERT INTO kv_change_seqs AS c (namespace, seq) SELECT DISTINCT n, 0 FROM unnest($1::text[]) AS n ORDER BY n
			ON CONFLICT (namespace) DO UPDATE SET seq = c.seq`
	}
	_, err := tx.ExecContext(ctx, query, pq.Array(namespaces))
	return db.Err(err)
}

// Deadlocks counts the transactions PostgreSQL chose as a deadlock's victim
// since db was opened; each was run again.
func (db *DB) Deadlocks() int64 { return db.deadlocks.Load() }
