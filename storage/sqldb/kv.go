package sqldb

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

var _ storage.Index = (*DB)(nil)

const entryCols = `namespace, key, type, object, version, size, hash, description, created_at, updated_at, expires_at, writer, sensitive`

// entryRow is an entry as stored: times in unix microseconds.
type entryRow struct {
	Namespace   string `db:"namespace"`
	Key         string `db:"key"`
	Type        string `db:"type"`
	Object      string `db:"object"`
	Version     int64  `db:"version"`
	Size        int64  `db:"size"`
	Hash        string `db:"hash"`
	Description string `db:"description"`
	Created     int64  `db:"created_at"`
	Updated     int64  `db:"updated_at"`
	Expires     *int64 `db:"expires_at"`
	Writer      string `db:"writer"`
	Sensitive   bool   `db:"sensitive"`
}

func (r *entryRow) entry() storage.Entry {
	e := storage.Entry{
		Namespace: r.Namespace, Key: r.Key, Type: storage.Type(r.Type), Object: r.Object,
		Version: r.Version, Size: r.Size, Hash: r.Hash, Description: r.Description,
		Created: fromMicros(r.Created), Updated: fromMicros(r.Updated), Writer: r.Writer, Sensitive: r.Sensitive,
	}
	if r.Expires != nil {
		t := fromMicros(*r.Expires)
		e.Expires = &t
	}
	return e
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func micros(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	us := t.UnixMicro()
	return &us
}

// PutEntry implements storage.Index in one statement on PostgreSQL (the
// intent's DELETE, the version row and the change in CTEs), one transaction
// of the group commit on SQLite (triggers record the version and the change):
// an upsert, or with IfVersion an update of that version.
func (db *DB) PutEntry(ctx context.Context, e *storage.Entry, c storage.PutCondition) error {
	now := e.Updated.UnixMicro()
	var got struct {
		Intent  int64  `db:"intent"`
		Version *int64 `db:"version"`
		Created *int64 `db:"created_at"`
	}
	query, consuming, args := putEntry, putEntryIntent, putEntryArgs(e, !c.NoOverwrite)
	if c.IfVersion > 0 {
		query, consuming, args = updateVersion, updateVersionIntent, []any{string(e.Type), e.Object, e.Size, e.Hash,
			e.Description, now, micros(e.Expires), e.Writer, e.Sensitive, e.Namespace, e.Key, c.IfVersion, now}
	}
	if db.batch == nil {
		query, args = consuming, append([]any{e.Namespace, e.Namespace, e.Object}, args...)
	}
	st, err := db.stmt(ctx, query)
	for attempt := 0; err == nil; attempt++ {
		if db.batch != nil {
			err = db.Err(db.batch.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
				if err := db.takeIntents(ctx, tx, []*storage.Entry{e}); err != nil {
					return err
				}
				got.Intent = 1
				return tx.StmtxContext(ctx, st).GetContext(ctx, &got, args...)
			}))
		} else {
			err = db.Err(st.GetContext(ctx, &got, args...))
			if err == nil && got.Intent == 0 {
				err = storage.ErrIntentGone
			} else if err == nil && got.Version == nil {
				err = &kvflow.Error{Code: kvflow.ENOTFOUND}
			}
		}
		// A unique violation here is a version number taken by a delete that
		// committed while this insert computed it: compute it again.
		if (kvflow.ErrorCode(err) == kvflow.ECONFLICT || db.deadlocked(err)) && attempt < 5 {
			err = nil
			continue
		}
		break
	}
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return kvflow.Errorf(kvflow.ECONFLICT, "Key '%s' in namespace '%s' exists or changed.", e.Key, e.Namespace)
	} else if err != nil {
		return err
	}
	e.Version, e.Created = *got.Version, fromMicros(*got.Created)
	return nil
}

// On PostgreSQL the statement that writes an entry also writes its version
// row and its change, in CTEs after the write: cheaper than the row trigger
// that does it on SQLite (015_history_in_statements.sql). A single write
// first locks the namespace's feed counter (see lockFeeds) and consumes the
// object's intent, writing only if there was one; the data dependencies order
// them: put reads intent, whose DELETE joins feed. Such a statement always
// returns one row: intent 0 when the intent was gone, a NULL version when the
// write's condition failed. A batch's statement, whose counters and intents
// were taken first in its transaction, returns no row when the condition
// failed.
var (
	putEntryIntent      = pgWrite(putSQL, true)
	updateVersionIntent = pgWrite(updateSQL, true)
	putEntryHistory     = pgWrite(putSQL, false)
)

func pgWrite(put string, consume bool) string {
	if !consume {
		return `WITH put AS (` + fmt.Sprintf(put, "", "", entryCols) + `)` + historyCTEs + `
SELECT version, created_at FROM put`
	}
	return `WITH feed AS (SELECT count(*) FROM (SELECT 1 FROM kv_change_seqs WHERE namespace = ? FOR UPDATE) AS locked),
intent AS (DELETE FROM kv_intents USING feed WHERE namespace = ? AND object = ? RETURNING 1),
put AS (` + fmt.Sprintf(put, "FROM intent", "AND EXISTS (SELECT 1 FROM intent)", entryCols) + `)` + historyCTEs + `
SELECT (SELECT count(*) FROM intent) AS intent, put.version, put.created_at FROM (SELECT 1) AS one LEFT JOIN put ON TRUE`
}

// historyCTEs record what put wrote: its version row, the namespace's next
// feed number and the change under it.
const historyCTEs = `,
ver AS (INSERT INTO kv_versions (` + entryVersionCols + `, change)
	SELECT ` + entryVersionCols + `, 'SET' FROM put),
seq AS (INSERT INTO kv_change_seqs AS c (namespace, seq) SELECT namespace, 1 FROM put
	ON CONFLICT (namespace) DO UPDATE SET seq = c.seq + 1 RETURNING seq),
chg AS (INSERT INTO kv_changes (namespace, seq, key, change, version, type, writer, at)
	SELECT put.namespace, seq.seq, put.key, 'SET', put.version, put.type, put.writer, put.updated_at FROM put, seq)`

// entryVersionCols are the columns an entry and its version rows share.
const entryVersionCols = `namespace, key, version, type, object, size, hash, description, created_at, updated_at, expires_at, writer, sensitive`

// PutEntries implements storage.Index: the entries' intents taken, then the
// putEntry statement for each entry, in one transaction (the group commit's
// on SQLite, its own on PostgreSQL).
func (db *DB) PutEntries(ctx context.Context, es []*storage.Entry) error {
	_, err := db.putEntries(ctx, es, false, false)
	return err
}

// PutEntriesCond implements storage.Index as PutEntries does, refusing to
// replace a live entry when noOverwrite is set.
func (db *DB) PutEntriesCond(ctx context.Context, es []*storage.Entry, noOverwrite, stopAtConflict bool) ([]bool, error) {
	return db.putEntries(ctx, es, noOverwrite, stopAtConflict)
}

func (db *DB) putEntries(ctx context.Context, es []*storage.Entry, noOverwrite, stopAtConflict bool) ([]bool, error) {
	query := putEntry
	if db.Dialect == Postgres {
		query = putEntryHistory
	}
	st, err := db.stmt(ctx, query)
	if err != nil {
		return nil, db.Err(err)
	}
	var written []bool
	err = db.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		written = make([]bool, len(es)) // afresh: a retried batch starts over
		nss := make([]string, len(es))
		for i, e := range es {
			nss[i] = e.Namespace
		}
		if err := db.lockFeeds(ctx, tx, nss, true); err != nil {
			return err
		}
		if err := db.takeIntents(ctx, tx, es); err != nil {
			return err
		}
		txst := tx.StmtxContext(ctx, st)
		for i, e := range es {
			var got struct {
				Version int64 `db:"version"`
				Created int64 `db:"created_at"`
			}
			err := db.Err(txst.GetContext(ctx, &got, putEntryArgs(e, !noOverwrite)...))
			switch {
			case kvflow.ErrorCode(err) == kvflow.ENOTFOUND && stopAtConflict:
				return nil
			case kvflow.ErrorCode(err) == kvflow.ENOTFOUND:
				continue
			case err != nil:
				return err
			}
			e.Version, e.Created = got.Version, fromMicros(got.Created)
			written[i] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return written, nil
}

// putEntryArgs are putEntry's arguments for e.
func putEntryArgs(e *storage.Entry, overwrite bool) []any {
	now := e.Updated.UnixMicro()
	return []any{e.Namespace, e.Key, string(e.Type), e.Object, e.Namespace, e.Key,
		e.Size, e.Hash, e.Description, now, now, micros(e.Expires), e.Writer, e.Sensitive, overwrite}
}

// updateSQL replaces a live entry only if it is still at the given version.
// Its %[1]s and %[2]s are for pgWrite, %[3]s what it returns.
const updateSQL = `
UPDATE kv_entries SET type = ?, object = ?, size = ?, hash = ?, description = ?, updated_at = ?, expires_at = ?,
	writer = ?, sensitive = ?, version = version + 1
WHERE namespace = ? AND key = ? AND version = ? AND (expires_at IS NULL OR expires_at > ?) %[2]s
RETURNING %[3]s`

// putSQL upserts an entry. Versions go on from the key's history, so a key
// deleted at version 4 (tombstone 5) comes back as version 6. An expired
// entry is replaced as if new (a new creation date); a live one only when
// overwrite is true, otherwise no row comes back. Its %[1]s and %[2]s are for pgWrite, %[3]s
// what it returns.
const putSQL = `
INSERT INTO kv_entries AS e (` + entryCols + `)
SELECT ?, ?, ?, ?, COALESCE((SELECT MAX(version) FROM kv_versions WHERE namespace = ? AND key = ?), 0) + 1,
	?, ?, ?, ?, ?, ?, ?, ? %[1]s WHERE TRUE -- WHERE: SQLite's parser needs it before ON CONFLICT
ON CONFLICT (namespace, key) DO UPDATE SET
	type = excluded.type, object = excluded.object, size = excluded.size, hash = excluded.hash,
	description = excluded.description, updated_at = excluded.updated_at, expires_at = excluded.expires_at,
	writer = excluded.writer, sensitive = excluded.sensitive, version = e.version + 1,
	created_at = CASE WHEN e.expires_at <= excluded.updated_at THEN excluded.created_at ELSE e.created_at END
WHERE ? OR e.expires_at <= excluded.updated_at
RETURNING %[3]s`

// putEntry and updateVersion are the statements as they stand, for SQLite,
// whose intents are taken first in the same transaction.
var (
	putEntry      = fmt.Sprintf(putSQL, "", "", "version, created_at")
	updateVersion = fmt.Sprintf(updateSQL, "", "", "version, created_at")
)

const getEntry = `SELECT ` + entryCols + ` FROM kv_entries WHERE namespace = ? AND key = ?`

// GetEntry implements storage.Index.
func (db *DB) GetEntry(ctx context.Context, ns, key string) (*storage.Entry, error) {
	var r entryRow
	st, err := db.stmt(ctx, getEntry)
	if err != nil {
		return nil, err
	}
	if err := st.GetContext(ctx, &r, ns, key); err != nil {
		return nil, db.Err(err)
	}
	e := r.entry()
	return &e, nil
}

// ListEntries implements storage.Index. A prefix becomes a key range, so the
// primary key index serves it.
func (db *DB) ListEntries(ctx context.Context, ns string, q storage.ListQuery) ([]storage.Entry, error) {
	where, args := db.listWhere(ns, q)
	if q.After != "" {
		where = append(where, "key > ?")
		args = append(args, q.After)
	}
	args = append(args, q.Limit, q.Offset)
	query := `SELECT ` + entryCols + ` FROM kv_entries WHERE ` + strings.Join(where, " AND ") + ` ORDER BY key LIMIT ? OFFSET ?`
	var rows []entryRow
	st, err := db.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if err := st.SelectContext(ctx, &rows, args...); err != nil {
		return nil, db.Err(err)
	}
	return entries(rows), nil
}

// CountEntries implements storage.Index.
func (db *DB) CountEntries(ctx context.Context, ns string, q storage.ListQuery) (int, error) {
	where, args := db.listWhere(ns, q)
	st, err := db.stmt(ctx, `SELECT COUNT(*) FROM kv_entries WHERE `+strings.Join(where, " AND "))
	if err != nil {
		return 0, err
	}
	var n int
	if err := st.GetContext(ctx, &n, args...); err != nil {
		return 0, db.Err(err)
	}
	return n, nil
}

// listWhere is the filter of ListEntries and CountEntries.
func (db *DB) listWhere(ns string, q storage.ListQuery) ([]string, []any) {
	where := []string{"namespace = ?", "(expires_at IS NULL OR expires_at > ?)"}
	args := []any{ns, q.Now.UnixMicro()}
	if q.Prefix != "" {
		where = append(where, "key >= ?")
		args = append(args, q.Prefix)
		if upper, ok := prefixEnd(q.Prefix); ok {
			where = append(where, "key < ?")
			args = append(args, upper)
		}
	}
	if q.Contains != "" {
		// A position function, not LIKE: no wildcard to escape, and SQLite's
		// LIKE ignores case where PostgreSQL's does not.
		find := "instr(%s, ?) > 0"
		if db.Dialect == Postgres {
			find = "strpos(%s, ?) > 0"
		}
		col, sub := "key", q.Contains
		if q.Fold {
			col, sub = "lower(key)", strings.ToLower(sub)
		}
		where = append(where, fmt.Sprintf(find, col))
		args = append(args, sub)
	}
	return where, args
}

// prefixEnd is the smallest string greater than every string starting with p.
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0x7f { // keys are ASCII; stay in it so PostgreSQL sees valid UTF-8
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

func entries(rows []entryRow) []storage.Entry {
	out := make([]storage.Entry, len(rows))
	for i := range rows {
		out[i] = rows[i].entry()
	}
	return out
}

// DeleteEntry implements storage.Index: the entry is marked with who deletes
// it and when, then deleted, in one transaction; a trigger writes the tombstone.
func (db *DB) DeleteEntry(ctx context.Context, ns, key, writer string, at time.Time) (*storage.Entry, error) {
	var gone []entryRow
	err := db.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		gone = gone[:0]
		if err := db.lockFeeds(ctx, tx, []string{ns}, false); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE kv_entries SET deleted_by = ?, deleted_at = ? WHERE namespace = ? AND key = ?`),
			writer, at.UnixMicro(), ns, key); err != nil {
			return db.Err(err)
		}
		return db.Err(tx.SelectContext(ctx, &gone, db.Rebind(`DELETE FROM kv_entries WHERE namespace = ? AND key = ? RETURNING `+entryCols), ns, key))
	})
	if err != nil || len(gone) == 0 {
		return nil, err
	}
	e := gone[0].entry()
	return &e, nil
}

// DeleteEntryIf implements storage.Index: as DeleteEntry, guarded by the
// version and liveness in the statement that marks the row.
func (db *DB) DeleteEntryIf(ctx context.Context, ns, key string, version int64, writer string, now time.Time) (*storage.Entry, error) {
	var gone []entryRow
	err := db.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		gone = gone[:0]
		if err := db.lockFeeds(ctx, tx, []string{ns}, false); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, db.Rebind(`UPDATE kv_entries SET deleted_by = ?, deleted_at = ?
			WHERE namespace = ? AND key = ? AND version = ? AND (expires_at IS NULL OR expires_at > ?)`),
			writer, now.UnixMicro(), ns, key, version, now.UnixMicro())
		if err != nil {
			return db.Err(err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return db.Err(err)
		}
		// The row is ours (locked, or SQLite's one writer) until the commit.
		return db.Err(tx.SelectContext(ctx, &gone, db.Rebind(`DELETE FROM kv_entries WHERE namespace = ? AND key = ? RETURNING `+entryCols), ns, key))
	})
	if err != nil || len(gone) == 0 {
		return nil, err
	}
	e := gone[0].entry()
	return &e, nil
}

// PurgeEntries implements storage.Index.
func (db *DB) PurgeEntries(ctx context.Context, q storage.PurgeQuery) ([]storage.Entry, error) {
	var where []string
	var args []any
	if q.Namespaces != nil {
		var or []string
		for _, ns := range q.Namespaces {
			or = append(or, "namespace = ?")
			args = append(args, ns)
			if q.IncludeChildren {
				or = append(or, `namespace LIKE ? ESCAPE '\'`)
				args = append(args, escapeLike(ns)+".%")
			}
		}
		if len(or) == 0 {
			return nil, nil
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	if q.KeyLike != "" {
		where = append(where, `key LIKE ? ESCAPE '\'`)
		args = append(args, q.KeyLike)
	}
	if q.ExpiredOnly {
		where = append(where, "expires_at <= ?")
		args = append(args, q.Now.UnixMicro())
	}
	if len(where) == 0 {
		where = append(where, "1 = 1")
	}
	// The conditions are repeated outside the subquery and the object is
	// matched too: under PostgreSQL's READ COMMITTED a row rewritten after the
	// subquery ran is re-checked against the outer conditions only, so without
	// them a purge would delete the live entry that replaced an expired one.
	cond := strings.Join(where, " AND ")
	var rows []entryRow
	err := db.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		rows = rows[:0]
		c, a := cond, args
		if db.Dialect == Postgres {
			// The counters of the namespaces to purge first (lockFeeds), then
			// the delete, limited to those namespaces, whose writers now wait.
			var nss []string
			if err := tx.SelectContext(ctx, &nss, db.Rebind(`SELECT DISTINCT namespace FROM (SELECT namespace FROM kv_entries WHERE `+cond+
				` LIMIT ?) AS c`), append(append([]any{}, args...), q.Limit)...); err != nil || len(nss) == 0 {
				return db.Err(err)
			}
			if err := db.lockFeeds(ctx, tx, nss, false); err != nil {
				return err
			}
			c, a = cond+` AND namespace = ANY(?)`, append(append([]any{}, args...), pq.Array(nss))
		}
		return db.Err(tx.SelectContext(ctx, &rows, db.Rebind(`DELETE FROM kv_entries WHERE (namespace, key, object) IN (
			SELECT namespace, key, object FROM kv_entries WHERE `+c+` LIMIT ?) AND `+c+` RETURNING `+entryCols),
			append(append(append([]any{}, a...), q.Limit), a...)...))
	})
	if err != nil {
		return nil, err
	}
	return entries(rows), nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Namespaces implements storage.Index.
func (db *DB) Namespaces(ctx context.Context, now time.Time) ([]storage.NamespaceStat, error) {
	var rows []struct {
		Namespace string `db:"namespace"`
		Keys      int    `db:"keys"`
	}
	err := db.X.SelectContext(ctx, &rows, db.Rebind(`SELECT namespace, COUNT(*) AS keys FROM kv_entries
		WHERE expires_at IS NULL OR expires_at > ? GROUP BY namespace ORDER BY namespace`), now.UnixMicro())
	if err != nil {
		return nil, db.Err(err)
	}
	out := make([]storage.NamespaceStat, len(rows))
	for i, r := range rows {
		out[i] = storage.NamespaceStat{Namespace: r.Namespace, Keys: r.Keys}
	}
	return out, nil
}

// Garbage implements storage.Index.
func (db *DB) Garbage(ctx context.Context, olderThan time.Time, limit int) ([]string, error) {
	var names []string
	// A version's object is never garbage, whatever queued it.
	err := db.X.SelectContext(ctx, &names, db.Rebind(`SELECT object FROM kv_garbage g WHERE queued_at < ?
		AND NOT EXISTS (SELECT 1 FROM kv_versions v WHERE v.object = g.object) ORDER BY queued_at LIMIT ?`), olderThan.UnixMicro(), limit)
	return names, db.Err(err)
}

// DropGarbage implements storage.Index.
func (db *DB) DropGarbage(ctx context.Context, objects []string) error {
	if len(objects) == 0 {
		return nil
	}
	q, args, err := sqlx.In(`DELETE FROM kv_garbage WHERE object IN (?)`, objects)
	if err != nil {
		return err
	}
	_, err = db.X.ExecContext(ctx, db.Rebind(q), args...)
	return db.Err(err)
}

// Referenced implements storage.Index.
func (db *DB) Referenced(ctx context.Context, objects []string) (map[string]bool, error) {
	ref := map[string]bool{}
	// A chunk at a time: four parameters a name, and SQLite takes 32,766.
	for chunk := range slices.Chunk(objects, 1000) {
		q, args, err := sqlx.In(`SELECT object FROM kv_entries WHERE object IN (?) UNION SELECT object FROM kv_versions WHERE object IN (?)
		UNION SELECT object FROM kv_garbage WHERE object IN (?) UNION SELECT object FROM kv_intents WHERE object IN (?)`, chunk, chunk, chunk, chunk)
		if err != nil {
			return nil, err
		}
		var names []string
		if err := db.X.SelectContext(ctx, &names, db.Rebind(q), args...); err != nil {
			return nil, db.Err(err)
		}
		for _, n := range names {
			ref[n] = true
		}
	}
	return ref, nil
}
