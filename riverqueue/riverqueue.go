// Package riverqueue is kvflow's job queue on River
// (github.com/riverqueue/river): executions are River jobs in the metadata
// database, through riverdatabasesql on PostgreSQL's lib/pq pool and
// riversqlite on the embedded SQLite file. Creating an execution inserts
// its row and its job in one transaction; River's workers run them through
// a Runner (the engine), and a reaper re-queues the executions of workers
// that stopped heartbeating.
package riverqueue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage/sqldb"
)

// Runner runs one execution to its end (engine.Engine).
type Runner interface {
	Work(ctx context.Context, id string) error
	HeartbeatTimeout() time.Duration
}

// Config tunes a Queue.
type Config struct {
	// Workers is how many executions this process runs at once; 0 makes
	// an insert-only queue (an API/UI node).
	Workers int
	// PollInterval is how often idle workers look for jobs; 0: 10ms, and
	// 50ms on SQLite, where a process's own inserts wake its workers at once
	// and only other processes' wait for a poll (at 10ms the polls alone
	// kept an idle embedded server at 7% of a core; BENCHMARKS.md).
	PollInterval time.Duration
	// HeartbeatTimeout is the engine's (0: 30s): a job still running after
	// it is offered again, in case its worker died before claiming it.
	HeartbeatTimeout time.Duration
	Logger           *slog.Logger
}

// sqlitePoll is how often workers on SQLite poll for jobs by default.
const sqlitePoll = 50 * time.Millisecond

// listenPoll is how often workers that LISTEN still poll for jobs: those
// made available with no notification (a snoozed turn coming due).
const listenPoll = 100 * time.Millisecond

// libpqOnly are the connection parameters lib/pq reads itself and pgx
// does not know.
var libpqOnly = []string{"binary_parameters", "disable_prepared_binary_result", "krbsrvname", "krbspn"}

// executionArgs is the job of one execution.
type executionArgs struct {
	ExecutionID string `json:"id"`
}

func (executionArgs) Kind() string { return "kvflow.execution" }

// Queue implements kvflow.Queue on River.
type Queue struct {
	db     *sqldb.DB
	pool   *sql.DB       // River's own pool (SQLite), or the shared one
	listen *pgxpool.Pool // PostgreSQL: the connection River LISTENs on
	client *river.Client[*sql.Tx]
	cfg    Config
	runner atomic.Pointer[Runner]
	log    *slog.Logger

	takeovers atomic.Int64
	stopReap  context.CancelFunc
	reaped    chan struct{}
}

var _ kvflow.Queue = (*Queue)(nil)

// Open migrates River's tables in db and returns a queue. Call Start to
// run jobs, Close at the end.
func Open(ctx context.Context, db *sqldb.DB, cfg Config) (*Queue, error) {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Millisecond
		if db.Dialect == sqldb.SQLite {
			cfg.PollInterval = sqlitePoll
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 30 * time.Second
	}
	q := &Queue{db: db, cfg: cfg, log: cfg.Logger}
	pool, err := db.OwnPool()
	if err != nil {
		return nil, err
	}
	q.pool = pool
	var driver riverdriver.Driver[*sql.Tx]
	switch {
	case db.Dialect == sqldb.SQLite:
		driver = riversqlite.New(pool)
	case cfg.Workers > 0:
		// lib/pq has no LISTEN River can use; a pgx connection of its own
		// hears new jobs at once, where polling cost a fetch query every
		// PollInterval per worker process (BENCHMARKS.md, issue 10).
		pc, err := pgxpool.ParseConfig(db.URL())
		if err != nil {
			q.log.Warn("queue: the database URL does not suit River's listener (pgx); workers poll for jobs instead", "err", err)
			driver = riverdatabasesql.New(pool)
			break
		}
		for _, k := range libpqOnly { // pgx would send them to the server, which refuses them
			delete(pc.ConnConfig.RuntimeParams, k)
		}
		pc.MaxConns, pc.MinConns = 1, 0
		if q.listen, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
			return nil, db.Err(err)
		}
		driver = riverdatabasesql.NewWithPgxListener(pool, q.listen)
	default:
		driver = riverdatabasesql.New(pool)
	}
	if err := q.migrate(ctx, driver); err != nil {
		q.closePool()
		return nil, err
	}
	rc := &river.Config{
		Logger:   quiet(cfg.Logger),
		PollOnly: q.listen == nil,
		// The engine's heartbeat decides when a worker is gone and who runs
		// an execution. River's rescuer offers a job again once it has run
		// for the heartbeat timeout: a worker that died between fetching
		// the job and claiming the execution left nothing for the heartbeat
		// to expire. For an execution held by a live worker the new
		// attempt's claim fails and that job completes; the run itself
		// ignores River's timeout (work detaches its context).
		JobTimeout:           cfg.HeartbeatTimeout,
		RescueStuckJobsAfter: cfg.HeartbeatTimeout,
		MaxAttempts:          100,
		// Also how often this process may announce new jobs: every insert.
		FetchCooldown: time.Millisecond,
	}
	if cfg.Workers > 0 {
		workers := river.NewWorkers()
		river.AddWorker(workers, river.WorkFunc(q.work))
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
		rc.FetchPollInterval = cfg.PollInterval
		if q.listen != nil { // polling only catches what no notification announced
			rc.FetchPollInterval = max(cfg.PollInterval, listenPoll)
		}
	}
	if q.client, err = river.NewClient(driver, rc); err != nil {
		q.closePool()
		return nil, kvflow.Errorf(kvflow.EINVALID, "Cannot create the job queue: %v.", err)
	}
	return q, nil
}

// quiet logs River's own messages at warning level and above only, but
// not that a job "appears to be stuck": an execution's job runs past River's
// timeout (the heartbeat timeout) whenever the execution does.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{l.Handler(), slog.LevelWarn})
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasSuffix(r.Message, "Job appears to be stuck") {
		return nil
	}
	return f.Handler.Handle(ctx, r)
}

func (f levelFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(as), f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(name), f.min}
}

// migrate applies River's migrations, one process at a time.
func (q *Queue) migrate(ctx context.Context, driver riverdriver.Driver[*sql.Tx]) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: quiet(q.cfg.Logger)})
	if err != nil {
		return kvflow.Errorf(kvflow.EINTERNAL, "River migrations: %v.", err)
	}
	return q.db.Exclusive(ctx, "river.migrate", func() error {
		if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: fmt.Sprintf("River migrations failed: %v.", err), Err: err}
		}
		return nil
	})
}

// Submit implements kvflow.Queue.
func (q *Queue) Submit(ctx context.Context, e *kvflow.Execution, write func(context.Context) error) error {
	return q.submit(ctx, e, write, true)
}

// SubmitHere implements kvflow.Queue.
func (q *Queue) SubmitHere(ctx context.Context, e *kvflow.Execution, write func(context.Context) error) error {
	if e.Worker == "" {
		return kvflow.Errorf(kvflow.EINTERNAL, "SubmitHere needs the worker that runs execution '%s'.", e.ID)
	}
	return q.submit(ctx, e, write, false)
}

// submit creates the execution, and its job when job is set, in one
// transaction. ECONFLICT when the execution (or its trigger key) exists.
func (q *Queue) submit(ctx context.Context, e *kvflow.Execution, write func(context.Context) error, job bool) error {
	if !job && write == nil {
		return q.db.CreateExecution(ctx, e) // no BEGIN and COMMIT round trips for one INSERT
	}
	return q.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := q.db.CreateExecutionTx(ctx, tx, e); err != nil {
			return err
		}
		if write != nil {
			if err := write(ctx); err != nil {
				return err
			}
		}
		if !job {
			return nil
		}
		_, err := q.client.InsertTx(ctx, tx, executionArgs{ExecutionID: e.ID}, nil)
		return q.db.Err(err)
	})
}

// Start runs jobs with runner until Close, and the reaper that takes over
// the executions of silent workers. Without workers it does nothing.
func (q *Queue) Start(ctx context.Context, runner Runner) error {
	q.runner.Store(&runner)
	if q.cfg.Workers <= 0 {
		return nil
	}
	// River stops hard, cancelling running jobs, when the context given to
	// Start ends; kvflow stops it itself (Stop), after the engine's shutdown
	// has let running executions end or killed them.
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot start the job queue: %v.", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	q.stopReap, q.reaped = cancel, make(chan struct{})
	go q.reapLoop(rctx, runner.HeartbeatTimeout())
	return nil
}

func (q *Queue) work(ctx context.Context, job *river.Job[executionArgs]) error {
	r := q.runner.Load()
	if r == nil {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "The queue has no runner.")
	}
	err := (*r).Work(context.WithoutCancel(ctx), job.Args.ExecutionID)
	if errors.Is(err, kvflow.ErrWaitTurn) {
		return river.JobSnooze(100 * time.Millisecond)
	}
	return err
}

// reapLoop re-queues, every third of the heartbeat timeout, the executions
// held by workers silent for longer than the timeout.
func (q *Queue) reapLoop(ctx context.Context, timeout time.Duration) {
	defer close(q.reaped)
	t := time.NewTicker(max(timeout/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := q.Reap(ctx, time.Now().Add(-timeout))
		if err != nil && ctx.Err() == nil {
			q.log.Warn("queue: cannot take over executions of silent workers", "err", err)
		} else if n > 0 {
			q.log.Warn("queue: executions of silent workers queued again for takeover", "executions", n)
		}
	}
}

// Reap releases the executions whose worker's last heartbeat is older
// than before and queues each one again, in one transaction.
func (q *Queue) Reap(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := q.db.Tx(ctx, func(tx *sql.Tx) error {
		ids, err := q.db.ReleaseStale(ctx, tx, before, 100)
		if err != nil || len(ids) == 0 {
			return err
		}
		params := make([]river.InsertManyParams, len(ids))
		for i, id := range ids {
			params[i] = river.InsertManyParams{Args: executionArgs{ExecutionID: id}}
		}
		if _, err := q.client.InsertManyTx(ctx, tx, params); err != nil {
			return q.db.Err(err)
		}
		n = len(ids)
		return nil
	})
	if err == nil {
		q.takeovers.Add(int64(n))
	}
	return n, err
}

// Depth counts executions waiting for a worker, and running ones.
func (q *Queue) Depth(ctx context.Context) (waiting, running int, err error) {
	return q.db.QueueDepth(ctx)
}

// Takeovers counts the executions this process queued again for takeover.
func (q *Queue) Takeovers() int64 { return q.takeovers.Load() }

// Stop stops fetching jobs and waits for the running ones until ctx ends.
func (q *Queue) Stop(ctx context.Context) error {
	if q.stopReap != nil {
		q.stopReap()
		<-q.reaped
		q.stopReap = nil
	}
	if q.cfg.Workers > 0 {
		if err := q.client.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

// Close stops the queue and releases River's pool.
func (q *Queue) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := q.Stop(ctx)
	q.closePool()
	return err
}

func (q *Queue) closePool() {
	if q.db.Dialect == sqldb.SQLite && q.pool != nil {
		q.pool.Close()
	}
	if q.listen != nil {
		q.listen.Close()
	}
}
