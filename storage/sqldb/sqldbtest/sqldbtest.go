// Package sqldbtest opens metadata databases for tests: SQLite in a temp dir,
// or PostgreSQL on the shared server that internal/testsvc starts (a package
// using it calls testsvc.Main from TestMain).
package sqldbtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/storage/sqldb"
)

// Open opens a fresh, empty database of dialect, closed at cleanup.
func Open(tb testing.TB, dialect sqldb.Dialect) *sqldb.DB {
	tb.Helper()
	switch dialect {
	case sqldb.SQLite:
		return OpenURL(tb, "sqlite://"+filepath.ToSlash(filepath.Join(tb.TempDir(), "kvflow.db")))
	case sqldb.Postgres:
		return OpenURL(tb, testsvc.PostgresURL(tb))
	}
	tb.Fatalf("sqldbtest: unknown dialect %q", dialect)
	return nil
}

// OpenURL opens the database at url and closes it at cleanup.
func OpenURL(tb testing.TB, url string) *sqldb.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		tb.Fatalf("open %s: %v", url, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Dump returns every row of every table as text, a "table: col | col | "
// line per row.
func Dump(tb testing.TB, db *sqldb.DB) string {
	tb.Helper()
	ctx := context.Background()
	var tables []string
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if db.Dialect == sqldb.Postgres {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`
	}
	if err := db.X.SelectContext(ctx, &tables, q); err != nil {
		tb.Fatal(err)
	}
	var b strings.Builder
	for _, table := range tables {
		rows, err := db.X.QueryxContext(ctx, `SELECT * FROM `+table)
		if err != nil {
			tb.Fatal(err)
		}
		for rows.Next() {
			row, err := rows.SliceScan()
			if err != nil {
				tb.Fatal(err)
			}
			fmt.Fprintf(&b, "%s: ", table)
			for _, col := range row {
				if raw, ok := col.([]byte); ok {
					col = string(raw)
				}
				fmt.Fprintf(&b, "%v | ", col)
			}
			b.WriteString("\n")
		}
		if err := rows.Err(); err != nil && !errors.Is(err, io.EOF) {
			tb.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}
