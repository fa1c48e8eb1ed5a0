package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/storage"
)

// The engine's records: flows, executions, task runs and logs. Inputs and
// outputs are not here: the engine keeps them in object storage.
var _ engine.Repository = (*DB)(nil)

// SaveFlow implements engine.Repository.
func (db *DB) SaveFlow(ctx context.Context, f engine.FlowRecord) (engine.FlowRecord, error) {
	if f.Updated.IsZero() {
		f.Updated = time.Now()
	}
	f.Updated = f.Updated.UTC().Truncate(time.Microsecond)
	scope, _ := f.Scope.MarshalText()
	err := db.tx(ctx, func(tx *sqlx.Tx) error {
		return db.Err(tx.GetContext(ctx, &f.Revision, db.Rebind(`
			INSERT INTO flows (namespace, id, revision, source, updated_at, scope) VALUES (?, ?, 1, ?, ?, ?)
			ON CONFLICT (namespace, id) DO UPDATE SET revision = flows.revision + 1, source = excluded.source,
				updated_at = excluded.updated_at, scope = excluded.scope
			RETURNING revision`), f.Namespace, f.ID, f.Source, f.Updated.UnixMicro(), string(scope)))
	})
	if err != nil {
		return engine.FlowRecord{}, err
	}
	return f, nil
}

type flowRow struct {
	Namespace string         `db:"namespace"`
	ID        string         `db:"id"`
	Revision  int64          `db:"revision"`
	Source    string         `db:"source"`
	Updated   int64          `db:"updated_at"`
	Scope     sql.NullString `db:"scope"`
}

const flowCols = `namespace, id, revision, source, updated_at, scope`

func (r flowRow) record() (engine.FlowRecord, error) {
	scope, err := scopeOf(r.Scope)
	if err != nil {
		return engine.FlowRecord{}, kvflow.Errorf(kvflow.EINTERNAL, "Flow '%s' in namespace '%s' has a broken scope: %s", r.ID, r.Namespace, kvflow.ErrorMessage(err))
	}
	return engine.FlowRecord{Namespace: r.Namespace, ID: r.ID, Revision: r.Revision, Source: r.Source, Updated: fromMicros(r.Updated), Scope: scope}, nil
}

// scopeOf reads a scope column; NULL (a row older than scopes) is unrestricted.
func scopeOf(col sql.NullString) (storage.Scope, error) {
	var s storage.Scope
	if !col.Valid {
		return s, nil
	}
	err := s.UnmarshalText([]byte(col.String))
	return s, err
}

// GetFlow implements engine.Repository.
func (db *DB) GetFlow(ctx context.Context, ns, id string) (engine.FlowRecord, error) {
	var r flowRow
	err := db.Err(db.X.GetContext(ctx, &r, db.Rebind(`SELECT `+flowCols+` FROM flows WHERE namespace = ? AND id = ?`), ns, id))
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return engine.FlowRecord{}, kvflow.Errorf(kvflow.ENOTFOUND, "Flow '%s' does not exist in namespace '%s'.", id, ns)
	} else if err != nil {
		return engine.FlowRecord{}, err
	}
	return r.record()
}

// ListFlows implements engine.Repository.
func (db *DB) ListFlows(ctx context.Context, ns string) ([]engine.FlowRecord, error) {
	q := `SELECT ` + flowCols + ` FROM flows`
	var args []any
	if ns != "" {
		q += ` WHERE namespace = ?`
		args = append(args, ns)
	}
	var rows []flowRow
	if err := db.X.SelectContext(ctx, &rows, db.Rebind(q+` ORDER BY namespace, id`), args...); err != nil {
		return nil, db.Err(err)
	}
	out := make([]engine.FlowRecord, len(rows))
	for i, r := range rows {
		var err error
		if out[i], err = r.record(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteFlow implements engine.Repository.
func (db *DB) DeleteFlow(ctx context.Context, ns, id string) (bool, error) {
	res, err := db.X.ExecContext(ctx, db.Rebind(`DELETE FROM flows WHERE namespace = ? AND id = ?`), ns, id)
	if err != nil {
		return false, db.Err(err)
	}
	n, err := res.RowsAffected()
	return n > 0, db.Err(err)
}

// attemptRow is an attempt inside task_runs.attempts.
type attemptRow struct {
	State string `json:"state"`
	Start int64  `json:"start"`
	End   *int64 `json:"end,omitempty"`
}

// taskRunBatch bounds the rows of one INSERT (10 parameters each).
const taskRunBatch = 200

// SaveExecution implements engine.Repository: one transaction upserts the
// execution and its task runs, many rows per statement.
func (db *DB) SaveExecution(ctx context.Context, e *engine.Execution) error {
	labels, err := json.Marshal(e.Labels)
	if err != nil {
		return kvflow.Errorf(kvflow.EINVALID, "Labels of execution '%s' cannot be encoded: %v.", e.ID, err)
	}
	if e.Labels == nil {
		labels = []byte("{}")
	}
	scope, _ := e.Scope.MarshalText()
	return db.tx(ctx, func(tx *sqlx.Tx) error {
		// The scope is set once, when the execution is created.
		_, err := tx.ExecContext(ctx, db.Rebind(`
			INSERT INTO executions (id, namespace, flow_id, flow_revision, state, labels, error, started_at, ended_at, scope)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET state = excluded.state, error = excluded.error, ended_at = excluded.ended_at,
				labels = excluded.labels, flow_revision = excluded.flow_revision`),
			e.ID, e.Namespace, e.FlowID, e.FlowRevision, string(e.State), string(labels), e.Error, e.Start.UnixMicro(), micros(e.End), string(scope))
		if err != nil {
			return db.Err(err)
		}
		rows := func(from, to int) []any {
			args := make([]any, 0, 10*(to-from))
			for i := from; i < to; i++ {
				tr := e.TaskRuns[i]
				atts := make([]attemptRow, len(tr.Attempts))
				for j, a := range tr.Attempts {
					atts[j] = attemptRow{State: string(a.State), Start: a.Start.UnixMicro(), End: micros(a.End)}
				}
				ab, _ := json.Marshal(atts)
				args = append(args, tr.ID, e.ID, i, tr.TaskID, tr.ParentID, string(tr.State), string(ab), tr.Error, tr.Start.UnixMicro(), micros(tr.End))
			}
			return args
		}
		if db.Dialect == SQLite {
			// In-process: one prepared statement run per row beats parsing a
			// long multi-row statement.
			stmt, err := tx.PreparexContext(ctx, upsertTaskRuns+taskRunValues+taskRunConflict)
			if err != nil {
				return db.Err(err)
			}
			defer stmt.Close()
			for i := range e.TaskRuns {
				if _, err := stmt.ExecContext(ctx, rows(i, i+1)...); err != nil {
					return db.Err(err)
				}
			}
			return nil
		}
		// Over the network: many rows per statement.
		for from := 0; from < len(e.TaskRuns); from += taskRunBatch {
			to := min(from+taskRunBatch, len(e.TaskRuns))
			values := strings.TrimSuffix(strings.Repeat(taskRunValues+", ", to-from), ", ")
			if _, err := tx.ExecContext(ctx, db.Rebind(upsertTaskRuns+values+taskRunConflict), rows(from, to)...); err != nil {
				return db.Err(err)
			}
		}
		return nil
	})
}

const (
	upsertTaskRuns  = `INSERT INTO task_runs (id, execution_id, seq, task_id, parent_id, state, attempts, error, started_at, ended_at) VALUES `
	taskRunValues   = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	taskRunConflict = ` ON CONFLICT (id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts, error = excluded.error,
		ended_at = excluded.ended_at, seq = excluded.seq`
)

type executionRow struct {
	ID           string         `db:"id"`
	Namespace    string         `db:"namespace"`
	FlowID       string         `db:"flow_id"`
	FlowRevision int64          `db:"flow_revision"`
	State        string         `db:"state"`
	Labels       string         `db:"labels"`
	Error        string         `db:"error"`
	Started      int64          `db:"started_at"`
	Ended        *int64         `db:"ended_at"`
	Scope        sql.NullString `db:"scope"`
}

const executionCols = `id, namespace, flow_id, flow_revision, state, labels, error, started_at, ended_at, scope`

func (r *executionRow) execution() (*engine.Execution, error) {
	scope, err := scopeOf(r.Scope)
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINTERNAL, "Execution '%s' has a broken scope: %s", r.ID, kvflow.ErrorMessage(err))
	}
	e := &engine.Execution{
		ID: r.ID, Namespace: r.Namespace, FlowID: r.FlowID, FlowRevision: r.FlowRevision, Scope: scope,
		State: engine.State(r.State), Error: r.Error, Start: fromMicros(r.Started), End: timePtr(r.Ended),
	}
	if r.Labels != "" && r.Labels != "{}" && r.Labels != "null" {
		_ = json.Unmarshal([]byte(r.Labels), &e.Labels)
	}
	return e, nil
}

func timePtr(us *int64) *time.Time {
	if us == nil {
		return nil
	}
	t := fromMicros(*us)
	return &t
}

type taskRunRow struct {
	ID       string `db:"id"`
	TaskID   string `db:"task_id"`
	ParentID string `db:"parent_id"`
	State    string `db:"state"`
	Attempts string `db:"attempts"`
	Error    string `db:"error"`
	Started  int64  `db:"started_at"`
	Ended    *int64 `db:"ended_at"`
}

// GetExecution implements engine.Repository.
func (db *DB) GetExecution(ctx context.Context, id string) (*engine.Execution, error) {
	var r executionRow
	err := db.Err(db.X.GetContext(ctx, &r, db.Rebind(`SELECT `+executionCols+` FROM executions WHERE id = ?`), id))
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return nil, kvflow.Errorf(kvflow.ENOTFOUND, "Execution '%s' does not exist.", id)
	} else if err != nil {
		return nil, err
	}
	e, err := r.execution()
	if err != nil {
		return nil, err
	}
	var rows []taskRunRow
	if err := db.X.SelectContext(ctx, &rows, db.Rebind(`SELECT id, task_id, parent_id, state, attempts, error, started_at, ended_at
		FROM task_runs WHERE execution_id = ? ORDER BY seq`), id); err != nil {
		return nil, db.Err(err)
	}
	e.TaskRuns = make([]*engine.TaskRun, len(rows))
	for i, tr := range rows {
		t := &engine.TaskRun{ID: tr.ID, TaskID: tr.TaskID, ParentID: tr.ParentID, State: engine.State(tr.State),
			Error: tr.Error, Start: fromMicros(tr.Started), End: timePtr(tr.Ended)}
		var atts []attemptRow
		if err := json.Unmarshal([]byte(tr.Attempts), &atts); err != nil {
			return nil, kvflow.Errorf(kvflow.EINTERNAL, "Attempts of task run '%s' are not valid JSON: %v.", tr.ID, err)
		}
		for _, a := range atts {
			t.Attempts = append(t.Attempts, engine.Attempt{State: engine.State(a.State), Start: fromMicros(a.Start), End: timePtr(a.End)})
		}
		e.TaskRuns[i] = t
	}
	return e, nil
}

// ListExecutions implements engine.Repository.
func (db *DB) ListExecutions(ctx context.Context, q engine.ExecutionQuery) ([]*engine.Execution, error) {
	var where []string
	var args []any
	if q.Namespace != "" {
		where = append(where, "namespace = ?")
		args = append(args, q.Namespace)
	}
	if q.FlowID != "" {
		where = append(where, "flow_id = ?")
		args = append(args, q.FlowID)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT ` + executionCols + ` FROM executions`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY started_at DESC, id DESC LIMIT ?`
	args = append(args, limit)
	var rows []executionRow
	if err := db.X.SelectContext(ctx, &rows, db.Rebind(query), args...); err != nil {
		return nil, db.Err(err)
	}
	out := make([]*engine.Execution, len(rows))
	for i := range rows {
		var err error
		if out[i], err = rows[i].execution(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// logBatch bounds the rows of one INSERT (6 parameters each).
const logBatch = 500

// AppendLogs implements engine.Repository.
func (db *DB) AppendLogs(ctx context.Context, lines []engine.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	return db.tx(ctx, func(tx *sqlx.Tx) error {
		if db.Dialect == SQLite {
			stmt, err := tx.PreparexContext(ctx, `INSERT INTO execution_logs (execution_id, task_id, task_run_id, time, level, message) VALUES (?, ?, ?, ?, ?, ?)`)
			if err != nil {
				return db.Err(err)
			}
			defer stmt.Close()
			for _, l := range lines {
				if _, err := stmt.ExecContext(ctx, l.ExecutionID, l.TaskID, l.TaskRunID, l.Time.UnixMicro(), l.Level, l.Message); err != nil {
					return db.Err(err)
				}
			}
			return nil
		}
		for from := 0; from < len(lines); from += logBatch {
			to := min(from+logBatch, len(lines))
			values := make([]string, 0, to-from)
			args := make([]any, 0, 6*(to-from))
			for _, l := range lines[from:to] {
				values = append(values, "(?, ?, ?, ?, ?, ?)")
				args = append(args, l.ExecutionID, l.TaskID, l.TaskRunID, l.Time.UnixMicro(), l.Level, l.Message)
			}
			if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO execution_logs (execution_id, task_id, task_run_id, time, level, message) VALUES `+
				strings.Join(values, ", ")), args...); err != nil {
				return db.Err(err)
			}
		}
		return nil
	})
}

// Logs implements engine.Repository.
func (db *DB) Logs(ctx context.Context, executionID string) ([]engine.LogLine, error) {
	var rows []struct {
		ExecutionID string `db:"execution_id"`
		TaskID      string `db:"task_id"`
		TaskRunID   string `db:"task_run_id"`
		Time        int64  `db:"time"`
		Level       string `db:"level"`
		Message     string `db:"message"`
	}
	if err := db.X.SelectContext(ctx, &rows, db.Rebind(`SELECT execution_id, task_id, task_run_id, time, level, message
		FROM execution_logs WHERE execution_id = ? ORDER BY id`), executionID); err != nil {
		return nil, db.Err(err)
	}
	out := make([]engine.LogLine, len(rows))
	for i, r := range rows {
		out[i] = engine.LogLine{ExecutionID: r.ExecutionID, TaskID: r.TaskID, TaskRunID: r.TaskRunID, Time: fromMicros(r.Time), Level: r.Level, Message: r.Message}
	}
	return out, nil
}
