package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// nowOverride, when not 0, is what kvflow_now_us() returns: the time of the
// journaled batch being run or replayed, so that a replay stamps what the
// batch stamped. clockMu gives it to one batch at a time in the process.
var (
	nowOverride atomic.Int64
	clockMu     sync.Mutex
)

// stampAt makes kvflow_now_us() return at until the returned func runs.
func stampAt(at int64) func() {
	clockMu.Lock()
	nowOverride.Store(at)
	return func() {
		nowOverride.Store(0)
		clockMu.Unlock()
	}
}

func init() {
	// The time SQLite's triggers stamp, in unix microseconds.
	sqlite.MustRegisterScalarFunction("kvflow_now_us", 0, func(*sqlite.FunctionContext, []driver.Value) (driver.Value, error) {
		if t := nowOverride.Load(); t != 0 {
			return t, nil
		}
		return time.Now().UnixMicro(), nil
	})
}

// SQLite connections go through recConn, which can record the statements a
// transaction runs (see journal.go): a connection's recorder is set while
// the group commit runs a batch on it, and nil otherwise.

type connector struct {
	dsn string
}

// sqliteDriver is modernc's registered driver, whose connections have the
// functions registered with it (kvflow_now_us).
var sqliteDriver = func() driver.Driver {
	db, _ := sql.Open("sqlite", "")
	defer db.Close()
	return db.Driver()
}()

func (c *connector) Connect(context.Context) (driver.Conn, error) {
	conn, err := sqliteDriver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &recConn{inner: conn}, nil
}

func (c *connector) Driver() driver.Driver { return sqliteDriver }

// stmtRec is one statement a batch ran, with its arguments.
type stmtRec struct {
	query string
	args  []driver.Value
}

type recorder struct {
	stmts []stmtRec
}

// add records a statement that may write; reads are not replayed.
func (r *recorder) add(query string, args []driver.NamedValue) int {
	if r == nil || isRead(query) {
		return -1
	}
	vals := make([]driver.Value, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	r.stmts = append(r.stmts, stmtRec{query: query, args: vals})
	return len(r.stmts) - 1
}

// drop forgets statement i, which failed and so changed nothing.
func (r *recorder) drop(i int) {
	if r != nil && i >= 0 {
		r.stmts[i].query = ""
	}
}

// ran forgets statement i if it failed.
func (r *recorder) ran(i int, err error) error {
	if err != nil {
		r.drop(i)
	}
	return err
}

// rows follows the rows of recorded statement i, which may still fail.
func (r *recorder) rows(i int, rows driver.Rows, err error) (driver.Rows, error) {
	if r.ran(i, err) != nil {
		return nil, err
	}
	if i < 0 {
		return rows, nil
	}
	return &recRows{Rows: rows, rec: r, i: i}, nil
}

func isRead(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

type recConn struct {
	inner driver.Conn
	rec   *recorder
}

func (c *recConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *recConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	s, err := c.inner.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &recStmt{inner: s, conn: c, query: query}, nil
}

func (c *recConn) Close() error { return c.inner.Close() }

func (c *recConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *recConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *recConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	i := c.rec.add(query, args)
	res, err := c.inner.(driver.ExecerContext).ExecContext(ctx, query, args)
	return res, c.rec.ran(i, err)
}

func (c *recConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	i := c.rec.add(query, args)
	rows, err := c.inner.(driver.QueryerContext).QueryContext(ctx, query, args)
	return c.rec.rows(i, rows, err)
}

func (c *recConn) Ping(ctx context.Context) error { return c.inner.(driver.Pinger).Ping(ctx) }

func (c *recConn) ResetSession(ctx context.Context) error {
	return c.inner.(driver.SessionResetter).ResetSession(ctx)
}

func (c *recConn) IsValid() bool { return c.inner.(driver.Validator).IsValid() }

type recStmt struct {
	inner driver.Stmt
	conn  *recConn
	query string
}

func (s *recStmt) Close() error  { return s.inner.Close() }
func (s *recStmt) NumInput() int { return s.inner.NumInput() }

func (s *recStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), named(args))
}

func (s *recStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), named(args))
}

func (s *recStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	i := s.conn.rec.add(s.query, args)
	res, err := s.inner.(driver.StmtExecContext).ExecContext(ctx, args)
	return res, s.conn.rec.ran(i, err)
}

func (s *recStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	i := s.conn.rec.add(s.query, args)
	rows, err := s.inner.(driver.StmtQueryContext).QueryContext(ctx, args)
	return s.conn.rec.rows(i, rows, err)
}

// recRows forgets its statement when stepping it fails: SQLite reports a
// failed INSERT … RETURNING at the first row.
type recRows struct {
	driver.Rows
	rec *recorder
	i   int
}

func (r *recRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err != nil && !errors.Is(err, io.EOF) {
		r.rec.drop(r.i)
	}
	return err
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}
