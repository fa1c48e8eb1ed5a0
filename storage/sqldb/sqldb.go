// Package sqldb is kvflow's metadata database: PostgreSQL through lib/pq and
// SQLite through modernc.org/sqlite, behind one set of queries. Where the two
// dialects differ the code says so.
package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	_ "modernc.org/sqlite"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// Dialect names the database technology.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

//go:embed migrations
var migrations embed.FS

// DB is an open metadata database with its migrations applied.
type DB struct {
	X       *sqlx.DB
	Dialect Dialect
	addr    string     // where it is, for error messages; never holds a password
	dsn     string     // how to open another connection (OwnPool, URL)
	rebound sync.Map   // query text → rebound text
	stmts   sync.Map   // query text → *sqlx.Stmt
	batch   *committer // SQLite's group commit; nil on PostgreSQL
	journal *journal   // SQLite's redo log (journal.go); nil on PostgreSQL or when another process holds it

	deadlocks atomic.Int64 // PostgreSQL transactions run again after a deadlock
}

// Open connects to a postgres:// or postgresql:// URL, or to sqlite:///path
// (the file is created with its directory), and applies pending migrations.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Database URL is invalid: %v.", err)
	}
	db := &DB{}
	switch u.Scheme {
	case "postgres", "postgresql":
		// lib/pq sends a statement and its arguments in one round trip only
		// with binary_parameters; without it, it first parses the statement
		// in a round trip of its own. A []byte argument then goes as binary,
		// which suits the bytea and text columns kvflow and River bind them to.
		if q := u.Query(); !q.Has("binary_parameters") {
			q.Set("binary_parameters", "yes")
			u.RawQuery = q.Encode()
		}
		db.Dialect, db.addr, db.dsn = Postgres, u.Host, u.String()
		if db.X, err = sqlx.Open("postgres", db.dsn); err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "Database URL is invalid: %v.", err)
		}
		db.X.SetMaxOpenConns(32)
		db.X.SetMaxIdleConns(32)
		db.X.SetConnMaxIdleTime(5 * time.Minute)
	case "sqlite":
		path := u.Path
		if u.Host != "" { // sqlite://relative/path
			path = filepath.Join(u.Host, u.Path)
		}
		if path == "" {
			return nil, kvflow.Errorf(kvflow.EINVALID, "Database URL %q has no file path: expected sqlite:///path/to/kvflow.db.", rawURL)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "Cannot create the directory for database %s: %v.", path, err)
		}
		db.Dialect, db.addr = SQLite, path
		dsn := "file:" + path + "?_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
			"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=case_sensitive_like(1)"
		db.dsn = dsn
		db.X = sqlx.NewDb(sql.OpenDB(&connector{dsn: dsn}), "sqlite")
	default:
		return nil, kvflow.Errorf(kvflow.EINVALID, "Database URL scheme %q is not supported: expected postgres:// or sqlite:///path.", u.Scheme)
	}
	if err := db.Exclusive(ctx, "migrate", func() error { return db.migrate(ctx) }); err != nil {
		db.X.Close()
		return nil, err
	}
	if db.Dialect == SQLite {
		if err := db.openJournal(ctx); err != nil {
			db.X.Close()
			return nil, err
		}
		if db.batch, err = newCommitter(ctx, db); err != nil {
			db.closeJournal()
			db.X.Close()
			return nil, err
		}
	}
	return db, nil
}

// Exclusive runs fn while no other process runs an Exclusive of the same
// name on this database: an advisory lock on PostgreSQL, a lock on the file
// <database>-<name>.lock next to SQLite's. Processes started at once on a
// new database migrate it one after the other: unserialized, they failed
// with SQLITE_BUSY or collided in River's migrations (which lock nothing)
// on SQLite, and in CREATE TABLE IF NOT EXISTS on PostgreSQL.
func (db *DB) Exclusive(ctx context.Context, name string, fn func() error) error {
	if db.Dialect == Postgres {
		conn, err := db.X.Conn(ctx)
		if err != nil {
			return db.Err(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(hashtext($1))`, "kvflow."+name); err != nil {
			return db.Err(err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, "kvflow."+name)
		return fn()
	}
	f, err := os.OpenFile(db.addr+"-"+name+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot open the lock file of database %s: %v.", db.addr, err)
	}
	defer f.Close() // releases the lock
	if err := lockWait(f); err != nil {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot lock database %s for %s: %v.", db.addr, name, err)
	}
	return fn()
}

// Close closes the prepared statements and the connection pool.
func (db *DB) Close() error {
	if db.batch != nil {
		db.batch.close()
	}
	db.closeJournal()
	db.stmts.Range(func(_, s any) bool { s.(*sqlx.Stmt).Close(); return true })
	return db.X.Close()
}

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error {
	return db.Err(db.X.PingContext(ctx))
}

// Rebind turns ? placeholders into the dialect's, once per query text.
func (db *DB) Rebind(q string) string {
	if db.Dialect == SQLite {
		return q
	}
	if r, ok := db.rebound.Load(q); ok {
		return r.(string)
	}
	r := db.X.Rebind(q)
	db.rebound.Store(q, r)
	return r
}

// stmt returns a prepared statement for a query on the hot path, prepared
// once: SQLite then parses it once, PostgreSQL plans it once per connection.
func (db *DB) stmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if s, ok := db.stmts.Load(query); ok {
		return s.(*sqlx.Stmt), nil
	}
	s, err := db.X.PreparexContext(ctx, db.Rebind(query))
	if err != nil {
		return nil, db.Err(err)
	}
	if prev, loaded := db.stmts.LoadOrStore(query, s); loaded {
		s.Close()
		return prev.(*sqlx.Stmt), nil
	}
	return s, nil
}

// migrate applies, in name order, each embedded migration of the dialect not
// yet recorded in schema_migrations, each in its own transaction.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.X.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return db.Err(err)
	}
	dir := "migrations/" + string(db.Dialect)
	files, err := fs.Glob(migrations, dir+"/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		if err := db.apply(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) apply(ctx context.Context, file string) error {
	name := filepath.Base(file)
	tx, err := db.X.BeginTxx(ctx, nil)
	if err != nil {
		return db.Err(err)
	}
	defer tx.Rollback()
	if db.Dialect == Postgres { // one migrator at a time across processes
		if _, err := tx.ExecContext(ctx, `LOCK TABLE schema_migrations IN EXCLUSIVE MODE`); err != nil {
			return db.Err(err)
		}
	}
	var n int
	if err := tx.GetContext(ctx, &n, db.Rebind(`SELECT COUNT(*) FROM schema_migrations WHERE name = ?`), name); err != nil {
		return db.Err(err)
	} else if n > 0 {
		return nil
	}
	body, err := migrations.ReadFile(file)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return fmt.Errorf("migration %s: %w", name, db.Err(err))
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`), name, time.Now().UnixMicro()); err != nil {
		return db.Err(err)
	}
	return db.Err(tx.Commit())
}

// Err turns a driver error into a kvflow error: no rows is ENOTFOUND, a
// unique violation ECONFLICT, a lost or refused connection EUNAVAILABLE, and
// anything else EINTERNAL. Context errors pass through.
func (db *DB) Err(err error) error {
	var pqErr *pq.Error
	var netErr net.Error
	var kvErr *kvflow.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &kvErr):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return &kvflow.Error{Code: kvflow.ENOTFOUND, Message: "Not found.", Err: err}
	case errors.As(err, &pqErr):
		switch {
		case pqErr.Code == "23505":
			return &kvflow.Error{Code: kvflow.ECONFLICT, Message: "Already exists.", Err: err}
		case pqErr.Code.Class() == "08" || pqErr.Code.Class() == "57":
			return db.unreachable(err)
		}
		return &kvflow.Error{Code: kvflow.EINTERNAL, Message: "Database error: " + pqErr.Message, Err: err}
	case errors.As(err, &netErr), errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, sql.ErrConnDone), strings.Contains(err.Error(), "connection refused"):
		return db.unreachable(err)
	case db.Dialect == SQLite && (strings.Contains(err.Error(), "SQLITE_BUSY") || strings.Contains(err.Error(), "database is locked")):
		return &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: "Another writer held the database's lock past the busy timeout: " + err.Error(), Err: fmt.Errorf("%w: %w", storage.ErrBusy, err)}
	case db.Dialect == SQLite && strings.Contains(err.Error(), "UNIQUE constraint failed"):
		return &kvflow.Error{Code: kvflow.ECONFLICT, Message: "Already exists.", Err: err}
	}
	return &kvflow.Error{Code: kvflow.EINTERNAL, Message: "Database error: " + err.Error(), Err: err}
}

func (db *DB) unreachable(err error) error {
	return &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: fmt.Sprintf("The database at %s is unreachable: %v", db.addr, err), Err: err}
}

// tx runs fn in a transaction, committing when it returns nil.
func (db *DB) tx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	tx, err := db.X.BeginTxx(ctx, nil)
	if err != nil {
		return db.Err(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return db.Err(tx.Commit())
}

// Tx runs fn in a database/sql transaction, committing when it returns nil:
// other adapters (the job queue, triggers) write in it too.
func (db *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.X.BeginTx(ctx, nil)
	if err != nil {
		return db.Err(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return db.Err(tx.Commit())
}

// OwnPool returns a pool for a component that must not share kvflow's: on
// SQLite a new pool of one connection to the same file (River's SQLite
// driver wants a single connection; busy_timeout orders it with the other
// writers); on PostgreSQL the shared pool.
func (db *DB) OwnPool() (*sql.DB, error) {
	if db.Dialect != SQLite {
		return db.X.DB, nil
	}
	p, err := sql.Open("sqlite", db.dsn)
	if err != nil {
		return nil, db.Err(err)
	}
	p.SetMaxOpenConns(1)
	return p, nil
}

// URL returns the PostgreSQL URL db was opened with, for a connection of
// another driver (River's listener); it holds the password.
func (db *DB) URL() string {
	if db.Dialect != Postgres {
		return ""
	}
	return db.dsn
}
