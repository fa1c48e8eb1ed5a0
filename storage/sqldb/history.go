package sqldb

import (
	"context"
	"database/sql"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// Versions and changes are written by triggers on kv_entries
// (migrations/*/010_history.sql); this file reads and prunes them.

const versionCols = `namespace, key, version, change, type, object, size, hash, description, created_at, updated_at, expires_at, writer, sensitive`

type versionRow struct {
	Namespace   string  `db:"namespace"`
	Key         string  `db:"key"`
	Version     int64   `db:"version"`
	Change      string  `db:"change"`
	Type        string  `db:"type"`
	Object      *string `db:"object"`
	Size        int64   `db:"size"`
	Hash        string  `db:"hash"`
	Description string  `db:"description"`
	Created     int64   `db:"created_at"`
	Updated     int64   `db:"updated_at"`
	Expires     *int64  `db:"expires_at"`
	Writer      string  `db:"writer"`
	Sensitive   bool    `db:"sensitive"`
}

func (r *versionRow) version() storage.Version {
	e := entryRow{Namespace: r.Namespace, Key: r.Key, Type: r.Type, Version: r.Version, Size: r.Size, Hash: r.Hash,
		Description: r.Description, Created: r.Created, Updated: r.Updated, Expires: r.Expires, Writer: r.Writer, Sensitive: r.Sensitive}
	if r.Object != nil {
		e.Object = *r.Object
	}
	return storage.Version{Entry: e.entry(), Change: storage.ChangeKind(r.Change)}
}

func versions(rows []versionRow) []storage.Version {
	out := make([]storage.Version, len(rows))
	for i := range rows {
		out[i] = rows[i].version()
	}
	return out
}

// History implements storage.Index.
func (db *DB) History(ctx context.Context, ns, key string, q storage.HistoryQuery) ([]storage.Version, error) {
	before := q.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	st, err := db.stmt(ctx, `SELECT `+versionCols+` FROM kv_versions WHERE namespace = ? AND key = ? AND version < ? ORDER BY version DESC LIMIT ?`)
	if err != nil {
		return nil, err
	}
	var rows []versionRow
	if err := st.SelectContext(ctx, &rows, ns, key, before, q.Limit); err != nil {
		return nil, db.Err(err)
	}
	return versions(rows), nil
}

// GetVersion implements storage.Index.
func (db *DB) GetVersion(ctx context.Context, ns, key string, version int64) (*storage.Version, error) {
	st, err := db.stmt(ctx, `SELECT `+versionCols+` FROM kv_versions WHERE namespace = ? AND key = ? AND version = ?`)
	if err != nil {
		return nil, err
	}
	var r versionRow
	if err := st.GetContext(ctx, &r, ns, key, version); err != nil {
		return nil, db.Err(err)
	}
	v := r.version()
	return &v, nil
}

// VersionAt implements storage.Index.
func (db *DB) VersionAt(ctx context.Context, ns, key string, at time.Time, own string) (*storage.Version, error) {
	st, err := db.stmt(ctx, `SELECT `+versionCols+` FROM kv_versions WHERE namespace = ? AND key = ?
		AND (updated_at <= ? OR (? <> '' AND writer LIKE ? ESCAPE '\')) ORDER BY version DESC LIMIT 1`)
	if err != nil {
		return nil, err
	}
	var r versionRow
	if err := st.GetContext(ctx, &r, ns, key, at.UnixMicro(), own, escapeLike(own)+"%"); err != nil {
		return nil, db.Err(err)
	}
	v := r.version()
	return &v, nil
}

// PruneVersions implements storage.Index. The live version is never selected;
// a trigger queues each removed version's object as garbage.
func (db *DB) PruneVersions(ctx context.Context, q storage.PruneQuery) ([]storage.Version, error) {
	where := []string{`NOT EXISTS (SELECT 1 FROM kv_entries e WHERE e.namespace = v.namespace AND e.key = v.key AND e.version = v.version)`}
	var args []any
	if q.Namespaces != nil && q.Exact {
		if len(q.Namespaces) == 0 {
			return nil, nil
		}
		in, a, err := sqlx.In(`v.namespace IN (?)`, q.Namespaces)
		if err != nil {
			return nil, err
		}
		where, args = append(where, in), append(args, a...)
	} else if q.Namespaces != nil {
		cond, a := namespaceIn(q.Namespaces)
		where, args = append(where, cond), append(args, a...)
	}
	if q.KeyLike != "" {
		where, args = append(where, `v.key LIKE ? ESCAPE '\'`), append(args, q.KeyLike)
	}
	if q.KeepNewest {
		where = append(where, `v.version < (SELECT MAX(w.version) FROM kv_versions w WHERE w.namespace = v.namespace AND w.key = v.key)`)
	}
	if len(q.Exclude) > 0 {
		cond, a := namespaceIn(q.Exclude)
		where, args = append(where, "NOT "+cond), append(args, a...)
	}
	var rule []string
	if q.Keep > 0 {
		rule = append(rule, `v.version <= (SELECT MAX(w.version) FROM kv_versions w WHERE w.namespace = v.namespace AND w.key = v.key) - ?`)
		args = append(args, q.Keep)
	}
	if !q.Before.IsZero() {
		rule = append(rule, `v.updated_at < ?`)
		args = append(args, q.Before.UnixMicro())
	}
	if len(rule) == 0 {
		return nil, nil
	}
	where = append(where, "("+strings.Join(rule, " OR ")+")")
	args = append(args, q.Limit)
	var rows []versionRow
	// Through the group commit on SQLite, as PruneChanges.
	err := db.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		rows = rows[:0]
		return db.Err(tx.SelectContext(ctx, &rows, db.Rebind(`DELETE FROM kv_versions WHERE (namespace, key, version) IN (
		SELECT v.namespace, v.key, v.version FROM kv_versions v WHERE `+strings.Join(where, " AND ")+` LIMIT ?)
		RETURNING `+versionCols), args...))
	})
	if err != nil {
		return nil, err
	}
	return versions(rows), nil
}

// namespaceIn matches v.namespace against namespaces and their children.
func namespaceIn(namespaces []string) (string, []any) {
	var or []string
	var args []any
	for _, ns := range namespaces {
		or = append(or, `v.namespace = ?`, `v.namespace LIKE ? ESCAPE '\'`)
		args = append(args, ns, escapeLike(ns)+".%")
	}
	if len(or) == 0 {
		return "1 = 0", nil
	}
	return "(" + strings.Join(or, " OR ") + ")", args
}

type changeRow struct {
	Namespace string `db:"namespace"`
	Seq       int64  `db:"seq"`
	Key       string `db:"key"`
	Change    string `db:"change"`
	Version   int64  `db:"version"`
	Type      string `db:"type"`
	Writer    string `db:"writer"`
	At        int64  `db:"at"`
}

// ChangesSince implements storage.Index. A page that starts right after
// `after` proves nothing was pruned in between, so the common case is one
// query; otherwise the namespace's pruned mark decides.
func (db *DB) ChangesSince(ctx context.Context, ns string, after int64, limit int) ([]storage.Change, error) {
	st, err := db.stmt(ctx, `SELECT namespace, seq, key, change, version, type, writer, at FROM kv_changes
		WHERE namespace = ? AND seq > ? ORDER BY seq LIMIT ?`)
	if err != nil {
		return nil, err
	}
	var rows []changeRow
	if err := st.SelectContext(ctx, &rows, ns, after, limit); err != nil {
		return nil, db.Err(err)
	}
	if len(rows) == 0 || rows[0].Seq != after+1 {
		var pruned int64
		err := db.X.GetContext(ctx, &pruned, db.Rebind(`SELECT pruned FROM kv_change_seqs WHERE namespace = ?`), ns)
		if err = db.Err(err); err != nil && kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
			return nil, err
		}
		if after < pruned {
			return nil, kvflow.Errorf(kvflow.EEXPIRED, "Changes of namespace '%s' after %d are no longer kept (kept from %d on): read the current state and watch from there.", ns, after, pruned+1)
		}
	}
	out := make([]storage.Change, len(rows))
	for i, r := range rows {
		out[i] = storage.Change{Namespace: r.Namespace, Seq: r.Seq, Key: r.Key, Change: storage.ChangeKind(r.Change),
			Version: r.Version, Type: storage.Type(r.Type), Writer: r.Writer, At: fromMicros(r.At)}
	}
	return out, nil
}

// PruneChanges implements storage.Index: the oldest changes first, and each
// namespace's pruned mark moves past them in the same transaction.
func (db *DB) PruneChanges(ctx context.Context, before time.Time, limit int) (int, error) {
	var rows []struct {
		Namespace string `db:"namespace"`
		Seq       int64  `db:"seq"`
	}
	// Through the group commit on SQLite: a write of its own could wait out
	// busy_timeout behind a stream of batches.
	err := db.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		rows = rows[:0] // afresh: a retried batch starts over
		err := tx.SelectContext(ctx, &rows, db.Rebind(`DELETE FROM kv_changes WHERE (namespace, seq) IN (
			SELECT namespace, seq FROM kv_changes WHERE at < ? ORDER BY at LIMIT ?) RETURNING namespace, seq`), before.UnixMicro(), limit)
		if err != nil {
			return db.Err(err)
		}
		top := map[string]int64{}
		for _, r := range rows {
			top[r.Namespace] = max(top[r.Namespace], r.Seq)
		}
		// In namespace order, as lockFeeds takes these rows.
		for _, ns := range slices.Sorted(maps.Keys(top)) {
			seq := top[ns]
			if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE kv_change_seqs SET pruned = ? WHERE namespace = ? AND pruned < ?`), seq, ns, seq); err != nil {
				return db.Err(err)
			}
		}
		return nil
	})
	return len(rows), err
}

// AddIntents implements storage.Index in one statement (through the group
// commit on SQLite). One intent, the common case, uses a prepared statement.
func (db *DB) AddIntents(ctx context.Context, at time.Time, intents []storage.Intent) error {
	if len(intents) == 0 {
		return nil
	}
	args := make([]any, 0, 3*len(intents))
	for _, in := range intents {
		args = append(args, in.Namespace, in.Object, at.UnixMicro())
	}
	query := `INSERT INTO kv_intents (namespace, object, started_at) VALUES (?, ?, ?)` + strings.Repeat(", (?, ?, ?)", len(intents)-1)
	if db.Dialect == Postgres {
		// The namespaces' feed counters exist, committed, before any write
		// whose intent this is: a lone write's statement locks its counter
		// first (putEntryIntent), and a counter a batch is creating would not
		// be seen, let alone waited for (the write and the batch would then
		// deadlock on the entry row and the counter).
		nss := make([]string, 0, 1)
		for _, in := range intents {
			if !slices.Contains(nss, in.Namespace) {
				nss = append(nss, in.Namespace)
			}
		}
		slices.Sort(nss) // the order lockFeeds takes them in
		// Only missing ones: inserting over an existing counter would wait for
		// the write holding it.
		query = `WITH feed AS (INSERT INTO kv_change_seqs (namespace, seq) SELECT v.n, 0 FROM (VALUES (?)` + strings.Repeat(", (?)", len(nss)-1) +
			`) AS v(n) WHERE NOT EXISTS (SELECT 1 FROM kv_change_seqs c WHERE c.namespace = v.n) ON CONFLICT (namespace) DO NOTHING) ` + query
		feeds := make([]any, len(nss), len(nss)+len(args))
		for i, ns := range nss {
			feeds[i] = ns
		}
		args = append(feeds, args...)
	}
	exec := func(ctx context.Context, x sqlx.ExecerContext) error {
		var err error
		if len(intents) == 1 {
			var st *sqlx.Stmt
			if st, err = db.stmt(ctx, query); err == nil {
				if tx, ok := x.(*sqlx.Tx); ok {
					st = tx.StmtxContext(ctx, st)
				}
				_, err = st.ExecContext(ctx, args...)
			}
		} else {
			_, err = x.ExecContext(ctx, db.Rebind(query), args...)
		}
		return db.Err(err)
	}
	if db.batch != nil {
		return db.batch.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error { return exec(ctx, tx) })
	}
	return exec(ctx, db.X)
}

// RenewIntent implements storage.Index.
func (db *DB) RenewIntent(ctx context.Context, in storage.Intent, at time.Time) (bool, error) {
	var n int64
	err := db.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.Rebind(`UPDATE kv_intents SET started_at = ? WHERE namespace = ? AND object = ?`),
			at.UnixMicro(), in.Namespace, in.Object)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return db.Err(err)
	})
	return n == 1, err
}

// TakeStaleIntents implements storage.Index.
func (db *DB) TakeStaleIntents(ctx context.Context, olderThan time.Time, limit int) ([]string, error) {
	var names []string
	err := db.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		names = names[:0]
		// started_at is tested again outside the subquery: under READ
		// COMMITTED a row renewed while this waited for its lock is re-checked
		// against the outer condition only, and kept.
		return db.Err(tx.SelectContext(ctx, &names, db.Rebind(`DELETE FROM kv_intents WHERE (namespace, object) IN (
			SELECT namespace, object FROM kv_intents WHERE started_at < ? ORDER BY started_at LIMIT ?) AND started_at < ? RETURNING object`),
			olderThan.UnixMicro(), limit, olderThan.UnixMicro()))
	})
	return names, err
}

// takeIntents deletes the intents of es's objects inside tx, or returns
// storage.ErrIntentGone when one is missing (garbage collection took it).
func (db *DB) takeIntents(ctx context.Context, tx *sqlx.Tx, es []*storage.Entry) error {
	if len(es) == 0 {
		return nil
	}
	if len(es) == 1 { // the common case: one prepared statement
		st, err := db.stmt(ctx, `DELETE FROM kv_intents WHERE namespace = ? AND object = ?`)
		if err != nil {
			return err
		}
		res, err := tx.StmtxContext(ctx, st).ExecContext(ctx, es[0].Namespace, es[0].Object)
		return db.intentTaken(res, err, 1)
	}
	// A chunk at a time: PostgreSQL's parser recurses over a long IN list of
	// rows (a batch of 9,000 ran out of stack).
	for chunk := range slices.Chunk(es, 500) {
		var q strings.Builder
		q.WriteString(`DELETE FROM kv_intents WHERE (namespace, object) IN (`)
		args := make([]any, 0, 2*len(chunk))
		for i, e := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?)")
			args = append(args, e.Namespace, e.Object)
		}
		q.WriteString(")")
		res, err := tx.ExecContext(ctx, db.Rebind(q.String()), args...)
		if err := db.intentTaken(res, err, len(chunk)); err != nil {
			return err
		}
	}
	return nil
}

// intentTaken checks that a DELETE of intents removed all n of them.
func (db *DB) intentTaken(res sql.Result, err error, n int) error {
	var got int64
	if err == nil {
		got, err = res.RowsAffected()
	}
	if err != nil {
		return db.Err(err)
	} else if got != int64(n) {
		return storage.ErrIntentGone
	}
	return nil
}

// FeedHeads implements storage.Index.
func (db *DB) FeedHeads(ctx context.Context, nss []string) (map[string]int64, error) {
	q, args, err := sqlx.In(`SELECT namespace, seq FROM kv_change_seqs WHERE namespace IN (?)`, nss)
	if err != nil {
		return nil, err
	}
	rows, err := db.X.QueryxContext(ctx, db.Rebind(q), args...)
	if err != nil {
		return nil, db.Err(err)
	}
	defer rows.Close()
	heads := make(map[string]int64, len(nss))
	for rows.Next() {
		var ns string
		var seq int64
		if err := rows.Scan(&ns, &seq); err != nil {
			return nil, db.Err(err)
		}
		heads[ns] = seq
	}
	return heads, db.Err(rows.Err())
}

// FeedSince implements storage.Index.
func (db *DB) FeedSince(ctx context.Context, ns string, t time.Time) (int64, error) {
	var first *int64
	if err := db.X.GetContext(ctx, &first, db.Rebind(`SELECT MIN(seq) FROM kv_changes WHERE namespace = ? AND at >= ?`), ns, t.UnixMicro()); err != nil {
		return 0, db.Err(err)
	}
	if first == nil {
		heads, err := db.FeedHeads(ctx, []string{ns})
		return heads[ns], err
	}
	return *first - 1, nil
}

// FeedPosition returns consumer's stored position in ns's change feed: the
// last seq it handled, 0 when it has none.
func (db *DB) FeedPosition(ctx context.Context, q sqlx.QueryerContext, consumer, ns string) (int64, error) {
	var seq int64
	err := sqlx.GetContext(ctx, q, &seq, db.Rebind(`SELECT seq FROM kv_feed_positions WHERE consumer = ? AND namespace = ?`), consumer, ns)
	if err = db.Err(err); kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return 0, nil
	}
	return seq, err
}

// AdvanceFeed moves consumer's position in ns's feed from `from` (what
// FeedPosition returned) to `to`, inside the caller's transaction, so that the
// move commits or rolls back with what the consumer did for those changes
// (for the KV trigger: the executions it created). ECONFLICT when another
// process moved it first: roll back, the changes are that process's.
func (db *DB) AdvanceFeed(ctx context.Context, tx sqlx.ExecerContext, consumer, ns string, from, to int64) error {
	res, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO kv_feed_positions AS p (consumer, namespace, seq) VALUES (?, ?, ?)
		ON CONFLICT (consumer, namespace) DO UPDATE SET seq = excluded.seq WHERE p.seq = ?`), consumer, ns, to, from)
	if err != nil {
		return db.Err(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return db.Err(err)
	} else if n == 0 {
		return kvflow.Errorf(kvflow.ECONFLICT, "The position of '%s' in the changes of namespace '%s' moved past %d.", consumer, ns, from)
	}
	return nil
}
