package sqldb

import (
	"context"
	"errors"
	"sync"
	"time"

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

	// With a journal, batches run on conn, one connection whose commits are
	// not synced (the journal's sync is what makes a batch durable); connMu
	// orders a batch and a checkpoint on it.
	conn   *sqlx.Conn
	connMu sync.Mutex

	// SQLite's checkpoints of its WAL run off the batches' path, in
	// walLoop on a connection of its own, after commits.
	walKick chan struct{}
	walStop chan struct{}
	walDone chan struct{}

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

func newCommitter(ctx context.Context, db *DB) (*committer, error) {
	c := &committer{db: db}
	c.idle.L = &c.mu
	if db.journal != nil {
		conn, err := db.X.Connx(ctx)
		if err != nil {
			return nil, db.Err(err)
		}
		// temp_store MEMORY keeps the savepoints' statement journal in
		// memory: past 64 KiB SQLite spilled it to a temp file, created and
		// written per batch (a quarter of a Set's time in the batch under 16
		// writers).
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY`); err != nil {
			conn.Close()
			return nil, db.Err(err)
		}
		// The WAL loop never waits for a lock: what it cannot do now it
		// does after a later commit.
		wal, err := db.X.Connx(ctx)
		if err == nil {
			_, err = wal.ExecContext(ctx, `PRAGMA busy_timeout = 0`)
			if err != nil {
				wal.Close()
			}
		}
		if err != nil {
			conn.Close()
			return nil, db.Err(err)
		}
		c.conn = conn
		c.walKick, c.walStop, c.walDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go c.walLoop(wal)
	}
	return c, nil
}

// walRestartFrames is the WAL length, in frames, past which walLoop
// restarts it (a variable for tests).
var walRestartFrames = 4096

// walLoop checkpoints SQLite's WAL on conn after commits, at most every
// 20 ms, with PASSIVE: it copies what it can without waiting for the writer
// or readers. An inline checkpoint (SQLite's default, every 1,000 pages, on
// the commit that crosses it) syncs the WAL and the database file and held
// that batch for 5-10 ms: embedded sequential PUT p99 over HTTP went from
// 10.7-11.1 ms to 5.8-7.1 ms without it.
// The WAL starts over only when a checkpoint has copied all of it before the
// next commit, so under steady writes it grows; once it is long, the loop
// restarts it between two batches (holding connMu). With no busy timeout on
// conn, a reader still on the WAL (a long export) makes the restart give up
// at once, until the next try.
func (c *committer) walLoop(conn *sqlx.Conn) {
	defer close(c.walDone)
	defer conn.Close()
	ctx := context.Background()
	for {
		select {
		case <-c.walKick:
		case <-c.walStop:
			return
		}
		var busy, log, done int
		err := conn.QueryRowxContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done)
		if err == nil && log >= walRestartFrames {
			c.connMu.Lock()
			conn.QueryRowxContext(ctx, `PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &log, &done)
			c.connMu.Unlock()
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-c.walStop:
			return
		}
	}
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
	again := c.closed
	c.closed = true
	for c.leading {
		c.idle.Wait()
	}
	c.mu.Unlock()
	if c.conn != nil && !again {
		// A clean close leaves an empty journal, so the next open has
		// nothing to read back (an error leaves it for that open to replay).
		if c.db.journal.used() {
			c.checkpointNow(context.Background())
		}
		close(c.walStop)
		<-c.walDone
		c.conn.Close()
	}
}

// checkpointNow runs a journal checkpoint between batches.
func (c *committer) checkpointNow(ctx context.Context) error {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	return c.checkpoint(ctx)
}

// checkpoint empties the journal; its synced commit records the new epoch.
func (c *committer) checkpoint(ctx context.Context) error {
	j := c.db.journal
	return j.checkpoint(ctx, func(ctx context.Context) error {
		if _, err := c.conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
			return c.db.Err(err)
		}
		_, err := c.conn.ExecContext(ctx, `UPDATE kv_journal SET epoch = ?`, j.epoch+1)
		if _, perr := c.conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err == nil {
			err = perr
		}
		return c.db.Err(err)
	})
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
	j := c.db.journal
	if j == nil {
		tx, err := c.db.X.BeginTxx(ctx, nil)
		if err != nil {
			finish(c.db.Err(err))
			return
		}
		c.run(ctx, batch, tx, finish, func() error {
			if _, err := tx.ExecContext(ctx, `UPDATE kv_journal SET commits = commits + 1`); err != nil {
				return c.db.Err(err)
			}
			return c.db.Err(tx.Commit())
		})
		return
	}
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if j.full() {
		if err := c.checkpoint(ctx); err != nil {
			finish(&kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: "Cannot checkpoint the journal: " + err.Error(), Err: err})
			return
		}
	}
	at := time.Now().UnixMicro()
	defer stampAt(at)()
	tx, err := c.conn.BeginTxx(ctx, nil)
	if err != nil {
		finish(c.db.Err(err))
		return
	}
	rec := &recorder{}
	c.record(rec)
	c.run(ctx, batch, tx, finish, func() error {
		c.record(nil)
		// The position first, in the transaction: it also says how many
		// commits, of every process, this batch ran on (replay's check).
		lsn := j.lsn + 1
		var commits uint64
		if err := tx.GetContext(ctx, &commits, `UPDATE kv_journal SET lsn = ?, commits = commits + 1 RETURNING commits`, lsn); err != nil {
			return c.db.Err(err)
		}
		if err := j.logBatch(lsn, at, commits-1, rec.stmts); err != nil {
			return &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: "Cannot write the journal: " + err.Error(), Err: err}
		}
		j.lsn = lsn
		if err := tx.Commit(); err != nil {
			j.logAbort(lsn)
			return c.db.Err(err)
		}
		select {
		case c.walKick <- struct{}{}:
		default:
		}
		return nil
	})
	c.record(nil)
}

// record sets the recorder of the committer's connection.
func (c *committer) record(rec *recorder) {
	c.conn.Raw(func(dc any) error {
		dc.(*recConn).rec = rec
		return nil
	})
}

// run runs batch's writes in tx and commits it, with commit when given.
func (c *committer) run(ctx context.Context, batch []*writeReq, tx *sqlx.Tx, finish func(error), commit func() error) {
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
		_, err := tx.ExecContext(ctx, "SAVEPOINT w")
		if err != nil {
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
	if commit == nil {
		finish(c.db.Err(tx.Commit()))
		return
	}
	if err := commit(); err != nil {
		tx.Rollback()
		finish(err)
		return
	}
	finish(nil)
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
		// lockFeeds and the counters AddIntents creates should leave to none:
		// run it again.
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
