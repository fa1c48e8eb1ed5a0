package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// The engine's records: flows, executions, task runs and logs. Inputs and
// outputs are not here: the engine keeps them in object storage.
var _ kvflow.ExecutionRepository = (*DB)(nil)

func flowTime(f *kvflow.FlowRecord) {
	if f.Updated.IsZero() {
		f.Updated = time.Now()
	}
	f.Updated = f.Updated.UTC().Truncate(time.Microsecond)
}

// CreateFlow implements kvflow.FlowRepository: a plain INSERT, so the
// database's unique key decides between racing creates.
func (db *DB) CreateFlow(ctx context.Context, f kvflow.FlowRecord) (kvflow.FlowRecord, error) {
	flowTime(&f)
	_, err := db.X.ExecContext(ctx, db.Rebind(`INSERT INTO flows (namespace, id, revision, source, updated_at, triggers, scope) VALUES (?, ?, 1, ?, ?, ?, ?)`),
		f.Namespace, f.ID, f.Source, f.Updated.UnixMicro(), strings.Join(f.Triggers, ","), scopeText(f.Scope))
	if err = db.Err(err); kvflow.ErrorCode(err) == kvflow.ECONFLICT {
		return kvflow.FlowRecord{}, kvflow.Errorf(kvflow.ECONFLICT, "Flow '%s' already exists in namespace '%s': update it with PUT /api/v1/flows/%s/%s.", f.ID, f.Namespace, f.Namespace, f.ID)
	} else if err != nil {
		return kvflow.FlowRecord{}, err
	}
	f.Revision = 1
	return f, nil
}

// UpdateFlow implements kvflow.FlowRepository.
func (db *DB) UpdateFlow(ctx context.Context, f kvflow.FlowRecord) (kvflow.FlowRecord, error) {
	flowTime(&f)
	err := db.Err(db.X.GetContext(ctx, &f.Revision, db.Rebind(`UPDATE flows SET revision = revision + 1, source = ?, updated_at = ?, triggers = ?, scope = ?
		WHERE namespace = ? AND id = ? RETURNING revision`), f.Source, f.Updated.UnixMicro(), strings.Join(f.Triggers, ","), scopeText(f.Scope), f.Namespace, f.ID))
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return kvflow.FlowRecord{}, kvflow.Errorf(kvflow.ENOTFOUND, "Flow '%s' does not exist in namespace '%s'.", f.ID, f.Namespace)
	} else if err != nil {
		return kvflow.FlowRecord{}, err
	}
	return f, nil
}

// SaveFlow implements kvflow.FlowRepository.
func (db *DB) SaveFlow(ctx context.Context, f kvflow.FlowRecord) (kvflow.FlowRecord, error) {
	flowTime(&f)
	err := db.Err(db.X.GetContext(ctx, &f.Revision, db.Rebind(`
		INSERT INTO flows (namespace, id, revision, source, updated_at, triggers, scope) VALUES (?, ?, 1, ?, ?, ?, ?)
		ON CONFLICT (namespace, id) DO UPDATE SET revision = flows.revision + 1, source = excluded.source,
			updated_at = excluded.updated_at, triggers = excluded.triggers, scope = excluded.scope
		RETURNING revision`), f.Namespace, f.ID, f.Source, f.Updated.UnixMicro(), strings.Join(f.Triggers, ","), scopeText(f.Scope)))
	if err != nil {
		return kvflow.FlowRecord{}, err
	}
	return f, nil
}

type flowRow struct {
	Namespace string         `db:"namespace"`
	ID        string         `db:"id"`
	Revision  int64          `db:"revision"`
	Source    string         `db:"source"`
	Updated   int64          `db:"updated_at"`
	Triggers  string         `db:"triggers"`
	Scope     sql.NullString `db:"scope"`
}

const flowCols = `namespace, id, revision, source, updated_at, triggers, scope`

// UnmarshalJSON reads a flow row as readExecutionQuery's flow column lists
// it: a JSON array of flowCols.
func (r *flowRow) UnmarshalJSON(b []byte) error {
	var scope *string
	if err := json.Unmarshal(b, &[]any{&r.Namespace, &r.ID, &r.Revision, &r.Source, &r.Updated, &r.Triggers, &scope}); err != nil {
		return err
	}
	if scope != nil {
		r.Scope = sql.NullString{String: *scope, Valid: true}
	}
	return nil
}

func (r flowRow) record() (kvflow.FlowRecord, error) {
	scope, err := scopeOf(r.Scope)
	if err != nil {
		return kvflow.FlowRecord{}, kvflow.Errorf(kvflow.EINTERNAL, "Flow '%s' in namespace '%s' has a broken scope: %s", r.ID, r.Namespace, kvflow.ErrorMessage(err))
	}
	f := kvflow.FlowRecord{Namespace: r.Namespace, ID: r.ID, Revision: r.Revision, Source: r.Source, Updated: fromMicros(r.Updated), Scope: scope}
	if r.Triggers != "" {
		f.Triggers = strings.Split(r.Triggers, ",")
	}
	return f, nil
}

// scopeText is a scope as its column holds it.
func scopeText(s kvflow.Scope) string {
	b, _ := s.MarshalText()
	return string(b)
}

// scopeOf reads a scope column; NULL (a row older than scopes) is unrestricted.
func scopeOf(col sql.NullString) (kvflow.Scope, error) {
	if !col.Valid {
		return kvflow.Scope{}, nil
	}
	return storage.ParseScope(col.String)
}

// GetFlow implements kvflow.FlowRepository.
func (db *DB) GetFlow(ctx context.Context, ns, id string) (kvflow.FlowRecord, error) {
	var r flowRow
	err := db.Err(db.X.GetContext(ctx, &r, db.Rebind(`SELECT `+flowCols+` FROM flows WHERE namespace = ? AND id = ?`), ns, id))
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return kvflow.FlowRecord{}, kvflow.Errorf(kvflow.ENOTFOUND, "Flow '%s' does not exist in namespace '%s'.", id, ns)
	} else if err != nil {
		return kvflow.FlowRecord{}, err
	}
	return r.record()
}

// ListFlows implements kvflow.FlowRepository.
func (db *DB) ListFlows(ctx context.Context, ns string) ([]kvflow.FlowRecord, error) {
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
	out := make([]kvflow.FlowRecord, len(rows))
	for i, r := range rows {
		var err error
		if out[i], err = r.record(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteFlow implements kvflow.FlowRepository.
// Its executions stay, but no longer say what its triggers fired: a flow
// created again under its name starts its triggers at its own save, as a
// new flow does, instead of replaying what came while it did not exist.
func (db *DB) DeleteFlow(ctx context.Context, ns, id string) (bool, error) {
	var n int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM flows WHERE namespace = ? AND id = ?`), ns, id)
		if err != nil {
			return db.Err(err)
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return db.Err(err)
		}
		for _, kind := range []string{"schedule:", "flow:", "kv:"} { // trigger keys start <kind><ns>/<flow>/
			prefix := kind + ns + "/" + id + "/"
			if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE executions SET trigger_key = NULL WHERE trigger_key >= ? AND trigger_key < ?`),
				prefix, prefix+"\U0010FFFF"); err != nil {
				return db.Err(err)
			}
		}
		return nil
	})
	return n > 0, err
}

// attemptRow is an attempt inside task_runs.attempts.
type attemptRow struct {
	State  string `json:"state"`
	Start  int64  `json:"start"`
	End    *int64 `json:"end,omitempty"`
	Worker string `json:"worker,omitempty"`
}

// Execer is a transaction or the pool: CreateExecutionTx runs on either.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// CreateExecution implements kvflow.ExecutionRepository: one statement,
// in a transaction only when there are task runs to insert too.
func (db *DB) CreateExecution(ctx context.Context, e *kvflow.Execution) error {
	if len(e.TaskRuns) == 0 {
		return db.CreateExecutionTx(ctx, db.X, e)
	}
	return db.Tx(ctx, func(tx *sql.Tx) error { return db.CreateExecutionTx(ctx, tx, e) })
}

// CreateExecutionTx inserts a new execution inside the caller's transaction
// (the queue adds the execution's job to the same one): ECONFLICT when its
// id or its trigger key exists. With e.Worker set, the execution is
// created claimed by that worker (claim 1, heartbeat now).
func (db *DB) CreateExecutionTx(ctx context.Context, tx Execer, e *kvflow.Execution) error {
	labels, err := json.Marshal(e.Labels)
	if err != nil {
		return kvflow.Errorf(kvflow.EINVALID, "Labels of execution '%s' cannot be encoded: %v.", e.ID, err)
	}
	if e.Labels == nil {
		labels = []byte("{}")
	}
	var tid, ttype string
	var tkey *string
	if t := e.Trigger; t != nil {
		tid, ttype = t.ID, t.Type
		if t.Key != "" {
			tkey = &t.Key
		}
	}
	var heartbeat, claim int64 // an execution created with a worker is created claimed by it
	if e.Worker != "" {
		heartbeat, claim = time.Now().UnixMicro(), 1
	}
	_, err = tx.ExecContext(ctx, db.Rebind(`
		INSERT INTO executions (id, namespace, flow_id, flow_revision, state, labels, error, started_at, ended_at, trigger_id, trigger_type, trigger_key, scope, kv_snapshot, end_pending,
			worker, heartbeat_at, claim)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		e.ID, e.Namespace, e.FlowID, e.FlowRevision, string(e.State), string(labels), e.Error, e.Start.UnixMicro(), micros(e.End), tid, ttype, tkey, scopeText(e.Scope), micros(e.KVSnapshot), endPending(e.State),
		e.Worker, heartbeat, claim)
	if err = db.Err(err); kvflow.ErrorCode(err) == kvflow.ECONFLICT {
		return kvflow.Errorf(kvflow.ECONFLICT, "Execution '%s' already exists (or its trigger already fired).", e.ID)
	} else if err != nil {
		return err
	}
	return db.upsertTaskRuns(ctx, tx, e.ID, e.TaskRuns)
}

// endPending is the end_pending of a row in state st: 1 once it has ended.
func endPending(st kvflow.State) int {
	if st.Terminated() {
		return 1
	}
	return 0
}

// PendingEnds implements kvflow.ExecutionRepository.
func (db *DB) PendingEnds(ctx context.Context, endedBefore time.Time, limit int) ([]*kvflow.Execution, error) {
	var rows []struct {
		ID        string `db:"id"`
		Namespace string `db:"namespace"`
		FlowID    string `db:"flow_id"`
		State     string `db:"state"`
	}
	err := db.X.SelectContext(ctx, &rows, db.Rebind(`SELECT id, namespace, flow_id, state FROM executions
		WHERE end_pending = 1 AND ended_at < ? ORDER BY ended_at LIMIT ?`), endedBefore.UnixMicro(), limit)
	out := make([]*kvflow.Execution, len(rows))
	for i, r := range rows {
		out[i] = &kvflow.Execution{ID: r.ID, Namespace: r.Namespace, FlowID: r.FlowID, State: kvflow.State(r.State)}
	}
	return out, db.Err(err)
}

// ExecutionStates implements kvflow.ExecutionRepository.
func (db *DB) ExecutionStates(ctx context.Context, ids []string) (map[string]kvflow.State, error) {
	out := make(map[string]kvflow.State, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT id, state FROM executions WHERE id IN (?)`, ids)
	if err != nil {
		return nil, db.Err(err)
	}
	var rows []struct {
		ID    string `db:"id"`
		State string `db:"state"`
	}
	if err := db.X.SelectContext(ctx, &rows, db.Rebind(q), args...); err != nil {
		return nil, db.Err(err)
	}
	for _, r := range rows {
		out[r.ID] = kvflow.State(r.State)
	}
	return out, nil
}

// EndsHandled implements kvflow.ExecutionRepository.
func (db *DB) EndsHandled(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	q, args, err := sqlx.In(`UPDATE executions SET end_pending = 0 WHERE id IN (?)`, ids)
	if err != nil {
		return db.Err(err)
	}
	_, err = db.X.ExecContext(ctx, db.Rebind(q), args...)
	return db.Err(err)
}

// SaveExecution implements kvflow.ExecutionRepository: in one transaction,
// it updates the execution's row, upserts the task runs that changed and
// appends the new log lines.
func (db *DB) SaveExecution(ctx context.Context, s kvflow.ExecutionSave) error {
	if db.Dialect == Postgres {
		return db.saveExecutionPG(ctx, s)
	}
	e := s.Execution
	return db.Tx(ctx, func(tx *sql.Tx) error {
		q := `UPDATE executions SET state = ?, error = ?, ended_at = ?, end_pending = ? WHERE id = ?`
		args := []any{string(e.State), e.Error, micros(e.End), endPending(e.State), e.ID}
		if s.Claim != 0 {
			q += ` AND claim = ?`
			args = append(args, s.Claim)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		var n int64
		if err == nil {
			n, err = res.RowsAffected()
		}
		if err != nil {
			return db.Err(err)
		}
		if err := notHeld(e.ID, s.Claim, n); err != nil {
			return err
		}
		if err := db.upsertTaskRuns(ctx, tx, e.ID, s.TaskRuns); err != nil {
			return err
		}
		return db.appendLogs(ctx, tx, s.Logs)
	})
}

// notHeld is why a save that updated n rows of execution id failed, or nil.
func notHeld(id string, claim, n int64) error {
	if n == 0 && claim != 0 {
		return kvflow.Errorf(kvflow.ECONFLICT, "Execution '%s' is no longer held by this worker (claim %d): another worker took it over.", id, claim)
	} else if n == 0 {
		return kvflow.Errorf(kvflow.ENOTFOUND, "Execution '%s' does not exist.", id)
	}
	return nil
}

// saveExecutionPG is SaveExecution on PostgreSQL in one statement, with
// no BEGIN and COMMIT round trips: the update of the execution, then, only
// when it matched (the claim fences it), the upsert of the changed task
// runs and the new log lines, passed as arrays.
func (db *DB) saveExecutionPG(ctx context.Context, s kvflow.ExecutionSave) error {
	e := s.Execution
	args := []any{string(e.State), e.Error, micros(e.End), endPending(e.State), e.ID}
	up := `UPDATE executions SET state = ?, error = ?, ended_at = ?, end_pending = ? WHERE id = ?`
	if s.Claim != 0 {
		up += ` AND claim = ?`
		args = append(args, s.Claim)
	}
	args = append(args, taskRunArrays(s.TaskRuns)...)
	args = append(args, logArrays(s.Logs)...)
	result := `SELECT count(*) FROM up`
	if e.State.Terminated() { // the end wakes waiters of every process, at commit
		result = `SELECT count(pg_notify('` + endChannel + `', id)) FROM up`
	}
	q := `WITH up AS (` + up + ` RETURNING id),
	runs AS (` + insertTaskRuns + ` SELECT t.id, up.id, ` + unnestedRunCols + ` FROM up, ` + unnestTaskRuns + taskRunConflict + `),
	logs AS (` + insertLogs + ` SELECT ` + unnestedLogCols + ` FROM up, ` + unnestLogs + `)
	` + result
	var matched int64
	if err := db.X.QueryRowContext(ctx, db.Rebind(q), args...).Scan(&matched); err != nil {
		return db.Err(err)
	}
	return notHeld(e.ID, s.Claim, matched)
}

// attemptsJSON is the attempts column of tr.
func attemptsJSON(tr *kvflow.TaskRun) string {
	atts := make([]attemptRow, len(tr.Attempts))
	for j, a := range tr.Attempts {
		atts[j] = attemptRow{State: string(a.State), Start: a.Start.UnixMicro(), End: micros(a.End), Worker: a.Worker}
	}
	ab, _ := json.Marshal(atts)
	return string(ab)
}

func (db *DB) upsertTaskRuns(ctx context.Context, tx Execer, execID string, trs []*kvflow.TaskRun) error {
	if len(trs) == 0 {
		return nil
	}
	if db.Dialect == SQLite {
		// In-process: one statement run per row beats parsing a long
		// multi-row statement.
		for _, tr := range trs {
			if _, err := tx.ExecContext(ctx, insertTaskRuns+` VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`+taskRunConflict,
				tr.ID, execID, tr.Seq, tr.TaskID, tr.ParentID, string(tr.State), attemptsJSON(tr), tr.Error, tr.Start.UnixMicro(), micros(tr.End)); err != nil {
				return db.Err(err)
			}
		}
		return nil
	}
	// Over the network: every row in one statement, as arrays.
	args := append([]any{execID}, taskRunArrays(trs)...)
	_, err := tx.ExecContext(ctx, db.Rebind(insertTaskRuns+` SELECT t.id, ?::text, `+unnestedRunCols+` FROM `+unnestTaskRuns+taskRunConflict), args...)
	return db.Err(err)
}

// The task runs' and log lines' inserts. On PostgreSQL their rows come as
// one array per column (taskRunArrays, logArrays), unnested.
const (
	insertTaskRuns  = `INSERT INTO task_runs (id, execution_id, seq, task_id, parent_id, state, attempts, error, started_at, ended_at)`
	taskRunConflict = ` ON CONFLICT (id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts, error = excluded.error,
		ended_at = excluded.ended_at, seq = excluded.seq`
	// unnestedRunCols follows id and execution_id in a SELECT from unnestTaskRuns.
	unnestedRunCols = `t.seq, t.task_id, t.parent_id, t.state, t.attempts, t.error, t.started_at, t.ended_at`
	unnestTaskRuns  = `unnest(?::text[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[])
		AS t(id, seq, task_id, parent_id, state, attempts, error, started_at, ended_at)`
	insertLogs      = `INSERT INTO execution_logs (execution_id, task_id, task_run_id, time, level, message)`
	unnestedLogCols = `l.execution_id, l.task_id, l.task_run_id, l.time, l.level, l.message`
	// unnestLogs keeps the lines' order, which their ids follow.
	unnestLogs = `unnest(?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[]) WITH ORDINALITY
		AS l(execution_id, task_id, task_run_id, time, level, message, n) ORDER BY l.n`
)

// taskRunArrays are the arguments of unnestTaskRuns.
func taskRunArrays(trs []*kvflow.TaskRun) []any {
	n := len(trs)
	ids, tasks, parents, states, atts, errs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seqs, starts, ends := make([]int64, n), make([]int64, n), make([]sql.NullInt64, n)
	for i, tr := range trs {
		ids[i], tasks[i], parents[i], states[i], atts[i], errs[i] = tr.ID, tr.TaskID, tr.ParentID, string(tr.State), attemptsJSON(tr), tr.Error
		seqs[i], starts[i] = int64(tr.Seq), tr.Start.UnixMicro()
		if tr.End != nil {
			ends[i] = sql.NullInt64{Int64: tr.End.UnixMicro(), Valid: true}
		}
	}
	return []any{pq.StringArray(ids), pq.Int64Array(seqs), pq.StringArray(tasks), pq.StringArray(parents), pq.StringArray(states),
		pq.StringArray(atts), pq.StringArray(errs), pq.Int64Array(starts), pq.GenericArray{A: ends}}
}

// logArrays are the arguments of unnestLogs.
func logArrays(lines []kvflow.LogLine) []any {
	n := len(lines)
	execs, tasks, runs, levels, msgs, times := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]int64, n)
	for i, l := range lines {
		execs[i], tasks[i], runs[i], levels[i], msgs[i], times[i] = l.ExecutionID, l.TaskID, l.TaskRunID, l.Level, l.Message, l.Time.UnixMicro()
	}
	return []any{pq.StringArray(execs), pq.StringArray(tasks), pq.StringArray(runs), pq.Int64Array(times), pq.StringArray(levels), pq.StringArray(msgs)}
}

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
	Worker       string         `db:"worker"`
	TriggerID    string         `db:"trigger_id"`
	TriggerType  string         `db:"trigger_type"`
	Scope        sql.NullString `db:"scope"`
	KVSnapshot   *int64         `db:"kv_snapshot"`
	Claim        int64          `db:"claim"`
}

const executionCols = `id, namespace, flow_id, flow_revision, state, labels, error, started_at, ended_at, worker, trigger_id, trigger_type, scope, kv_snapshot, claim`

func (r *executionRow) execution() (*kvflow.Execution, error) {
	scope, err := scopeOf(r.Scope)
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINTERNAL, "Execution '%s' has a broken scope: %s", r.ID, kvflow.ErrorMessage(err))
	}
	e := &kvflow.Execution{
		ID: r.ID, Namespace: r.Namespace, FlowID: r.FlowID, FlowRevision: r.FlowRevision, Scope: scope, KVSnapshot: timePtr(r.KVSnapshot),
		State: kvflow.State(r.State), Error: r.Error, Start: fromMicros(r.Started), End: timePtr(r.Ended), Worker: r.Worker, Claim: r.Claim,
	}
	if r.TriggerID != "" {
		e.Trigger = &kvflow.TriggerInfo{ID: r.TriggerID, Type: r.TriggerType}
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

// taskRunRow is one task run as readExecutionQuery's task_runs column
// lists it: a JSON array of its columns.
type taskRunRow struct {
	ID, TaskID, ParentID, State, Attempts, Error string
	Seq                                          int
	Started                                      int64
	Ended                                        *int64
}

func (t *taskRunRow) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &[]any{&t.ID, &t.Seq, &t.TaskID, &t.ParentID, &t.State, &t.Attempts, &t.Error, &t.Started, &t.Ended})
}

const taskRunCols = `id, seq, task_id, parent_id, state, attempts, error, started_at, ended_at`

// readExecutionQuery reads an execution with its task runs in seq order,
// and the parts with asks for, in one statement: each a JSON array.
func (db *DB) readExecutionQuery(with kvflow.ExecutionParts) string {
	agg, array := "json_agg", "json_build_array"
	if db.Dialect == SQLite {
		agg, array = "json_group_array", "json_array"
	}
	q := `SELECT ` + executionCols + `, (SELECT ` + agg + `(` + array + `(` + taskRunCols + `) ORDER BY seq)
		FROM task_runs WHERE execution_id = executions.id) AS task_runs`
	if with.Logs {
		q += `, (SELECT ` + agg + `(` + array + `(` + logCols + `) ORDER BY id)
			FROM execution_logs WHERE execution_id = executions.id) AS logs`
	}
	if with.Flow {
		q += `, (SELECT ` + array + `(` + flowCols + `) FROM flows f
			WHERE f.namespace = executions.namespace AND f.id = executions.flow_id) AS flow`
	}
	return db.Rebind(q + ` FROM executions WHERE id = ?`)
}

// GetExecution implements kvflow.ExecutionRepository.
func (db *DB) GetExecution(ctx context.Context, id string) (*kvflow.Execution, error) {
	e, _, err := db.ReadExecution(ctx, id, kvflow.ExecutionParts{})
	return e, err
}

// ReadExecution implements kvflow.ExecutionRepository.
func (db *DB) ReadExecution(ctx context.Context, id string, with kvflow.ExecutionParts) (*kvflow.Execution, *kvflow.FlowRecord, error) {
	var r struct {
		executionRow
		TaskRuns sql.NullString `db:"task_runs"`
		Logs     sql.NullString `db:"logs"`
		Flow     sql.NullString `db:"flow"`
	}
	err := db.Err(db.X.GetContext(ctx, &r, db.readExecutionQuery(with), id))
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return nil, nil, kvflow.Errorf(kvflow.ENOTFOUND, "Execution '%s' does not exist.", id)
	} else if err != nil {
		return nil, nil, err
	}
	e, err := r.execution()
	if err != nil {
		return nil, nil, err
	}
	if with.Logs {
		var rows []logRow
		if r.Logs.Valid { // NULL on PostgreSQL when there are none
			if err := json.Unmarshal([]byte(r.Logs.String), &rows); err != nil {
				return nil, nil, kvflow.Errorf(kvflow.EINTERNAL, "Log lines of execution '%s' cannot be read: %v.", id, err)
			}
		}
		e.Logs = make([]kvflow.LogLine, len(rows))
		for i, l := range rows {
			e.Logs[i] = l.line(id)
		}
	}
	var flow *kvflow.FlowRecord
	if r.Flow.Valid { // NULL when the flow is gone
		var fr flowRow
		if err := json.Unmarshal([]byte(r.Flow.String), &fr); err != nil {
			return nil, nil, kvflow.Errorf(kvflow.EINTERNAL, "The flow of execution '%s' cannot be read: %v.", id, err)
		}
		rec, err := fr.record()
		if err != nil {
			return nil, nil, err
		}
		flow = &rec
	}
	var rows []taskRunRow
	if r.TaskRuns.Valid { // NULL on PostgreSQL when there are none
		if err := json.Unmarshal([]byte(r.TaskRuns.String), &rows); err != nil {
			return nil, nil, kvflow.Errorf(kvflow.EINTERNAL, "Task runs of execution '%s' cannot be read: %v.", id, err)
		}
	}
	e.TaskRuns = make([]*kvflow.TaskRun, len(rows))
	for i, tr := range rows {
		t := &kvflow.TaskRun{ID: tr.ID, Seq: tr.Seq, TaskID: tr.TaskID, ParentID: tr.ParentID, State: kvflow.State(tr.State),
			Error: tr.Error, Start: fromMicros(tr.Started), End: timePtr(tr.Ended)}
		var atts []attemptRow
		if err := json.Unmarshal([]byte(tr.Attempts), &atts); err != nil {
			return nil, nil, kvflow.Errorf(kvflow.EINTERNAL, "Attempts of task run '%s' are not valid JSON: %v.", tr.ID, err)
		}
		for _, a := range atts {
			t.Attempts = append(t.Attempts, kvflow.Attempt{State: kvflow.State(a.State), Start: fromMicros(a.Start), End: timePtr(a.End), Worker: a.Worker})
		}
		e.TaskRuns[i] = t
	}
	return e, flow, nil
}

// ListExecutions implements kvflow.ExecutionRepository.
func (db *DB) ListExecutions(ctx context.Context, q kvflow.ExecutionQuery) ([]*kvflow.Execution, error) {
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
	out := make([]*kvflow.Execution, len(rows))
	for i := range rows {
		var err error
		if out[i], err = rows[i].execution(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ClaimExecution implements kvflow.ExecutionRepository.
func (db *DB) ClaimExecution(ctx context.Context, id, worker string, stale time.Time, limit int, atCreation bool) (kvflow.Claim, error) {
	var c kvflow.Claim
	now := time.Now().UnixMicro()
	const claim = `UPDATE executions SET worker = ?, heartbeat_at = ?, claim = claim + 1
		WHERE id = ? AND state IN ('CREATED', 'RUNNING') AND (worker = '' OR heartbeat_at < ?) RETURNING claim`
	var err error
	if limit <= 0 {
		err = db.Err(db.X.GetContext(ctx, &c.Claim, db.Rebind(claim), worker, now, id, stale.UnixMicro()))
	} else {
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			var ns, flow string
			var created int64
			if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT namespace, flow_id, started_at FROM executions WHERE id = ?`), id).Scan(&ns, &flow, &created); err != nil {
				return db.Err(err)
			}
			if db.Dialect == Postgres { // SQLite's write transactions are serial already
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "kvflow.concurrency/"+ns+"/"+flow); err != nil {
					return db.Err(err)
				}
			}
			// Held now, or (atCreation) run at some time and not over when
			// this one was created. One never claimed was not running.
			// Waiting (QUEUE), an older execution not held goes first, so
			// a flow's queue runs in creation order, as Kestra's does.
			var held int
			if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM executions WHERE namespace = ? AND flow_id = ? AND id <> ?
				AND ((worker <> '' AND state IN ('CREATED', 'RUNNING'))
					OR (? AND claim > 0 AND started_at <= ? AND (ended_at IS NULL OR ended_at > ?))
					OR (? AND worker = '' AND state IN ('CREATED', 'RUNNING') AND (started_at < ? OR (started_at = ? AND id < ?))))`),
				ns, flow, id, atCreation, created, created, !atCreation, created, created, id).Scan(&held); err != nil {
				return db.Err(err)
			}
			if held >= limit {
				c.OverLimit = true
				return nil
			}
			return db.Err(tx.QueryRowContext(ctx, db.Rebind(claim), worker, now, id, stale.UnixMicro()).Scan(&c.Claim))
		})
	}
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return c, kvflow.Errorf(kvflow.ENOTFOUND, "Execution '%s' is over or held by a live worker.", id)
	} else if err != nil {
		return c, err
	}
	c.Takeover = c.Claim > 1
	return c, nil
}

// LastTriggerKey implements kvflow.ExecutionRepository.
func (db *DB) LastTriggerKey(ctx context.Context, prefix string) (string, error) {
	var key sql.NullString
	// The range uses the unique index; every key of a prefix sorts below prefix + U+10FFFF.
	err := db.X.QueryRowContext(ctx, db.Rebind(`SELECT MAX(trigger_key) FROM executions WHERE trigger_key >= ? AND trigger_key < ?`), prefix, prefix+"\U0010FFFF").Scan(&key)
	return key.String, db.Err(err)
}

// Heartbeat implements kvflow.ExecutionRepository.
func (db *DB) Heartbeat(ctx context.Context, worker string, ids []string) ([]kvflow.Held, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var rows []struct {
		ID    string `db:"id"`
		Claim int64  `db:"claim"`
		Kill  int    `db:"kill_requested"`
	}
	q, args, err := sqlx.In(`UPDATE executions SET heartbeat_at = ?
		WHERE worker = ? AND id IN (?) AND state IN ('CREATED', 'RUNNING') RETURNING id, claim, kill_requested`, time.Now().UnixMicro(), worker, ids)
	if err != nil {
		return nil, db.Err(err)
	}
	if err := db.X.SelectContext(ctx, &rows, db.Rebind(q), args...); err != nil {
		return nil, db.Err(err)
	}
	held := make([]kvflow.Held, len(rows))
	for i, r := range rows {
		held[i] = kvflow.Held{ID: r.ID, Claim: r.Claim, Kill: r.Kill != 0}
	}
	return held, nil
}

// RequestKill implements kvflow.ExecutionRepository.
func (db *DB) RequestKill(ctx context.Context, id string) (bool, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	res, err := db.X.ExecContext(ctx, db.Rebind(`UPDATE executions SET state = 'KILLED', ended_at = ?, kill_requested = 1, end_pending = 1
		WHERE id = ? AND state = 'CREATED' AND worker = ''`), now.UnixMicro(), id)
	if err != nil {
		return false, db.Err(err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		_ = db.appendLogs(ctx, db.X, []kvflow.LogLine{{ExecutionID: id, Time: now, Level: "WARN", Message: "Execution killed before it started."}})
		return true, nil
	}
	res, err = db.X.ExecContext(ctx, db.Rebind(`UPDATE executions SET kill_requested = 1 WHERE id = ? AND state IN ('CREATED', 'RUNNING')`), id)
	if err != nil {
		return false, db.Err(err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return false, nil
	}
	if _, err := db.GetExecution(ctx, id); err != nil {
		return false, err
	}
	return false, kvflow.Errorf(kvflow.ECONFLICT, "Execution '%s' is already over.", id)
}

// ReleaseStale releases, inside the caller's transaction, the executions
// held by workers whose heartbeat is older than before, and returns them:
// the caller queues each one again.
func (db *DB) ReleaseStale(ctx context.Context, tx *sql.Tx, before time.Time, limit int) ([]string, error) {
	// The outer WHERE repeats the test: under READ COMMITTED it is what is
	// checked again on the row as locked, should a heartbeat commit between.
	const stale = `worker <> '' AND state IN ('CREATED', 'RUNNING') AND heartbeat_at < ?`
	lock := ""
	if db.Dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	q := `UPDATE executions SET worker = '' WHERE id IN (SELECT id FROM executions WHERE ` + stale + ` LIMIT ?` + lock + `)
		AND ` + stale + ` RETURNING id`
	at := before.UnixMicro()
	rows, err := tx.QueryContext(ctx, db.Rebind(q), at, limit, at)
	if err != nil {
		return nil, db.Err(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, db.Err(err)
		}
		ids = append(ids, id)
	}
	return ids, db.Err(rows.Err())
}

// ReleaseExecution implements kvflow.ExecutionRepository.
func (db *DB) ReleaseExecution(ctx context.Context, id string, claim int64) error {
	_, err := db.X.ExecContext(ctx, db.Rebind(`UPDATE executions SET heartbeat_at = 0
		WHERE id = ? AND claim = ? AND state IN ('CREATED', 'RUNNING')`), id, claim)
	return db.Err(err)
}

// QueueDepth counts executions waiting for a worker, and running ones.
func (db *DB) QueueDepth(ctx context.Context) (waiting, running int, err error) {
	err = db.Err(db.X.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN state = 'CREATED' THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN state = 'RUNNING' THEN 1 ELSE 0 END), 0)
		FROM executions WHERE state IN ('CREATED', 'RUNNING')`).Scan(&waiting, &running))
	return waiting, running, err
}

// AppendLogs adds log lines outside a save.
func (db *DB) AppendLogs(ctx context.Context, lines []kvflow.LogLine) error {
	return db.appendLogs(ctx, db.X, lines)
}

func (db *DB) appendLogs(ctx context.Context, tx Execer, lines []kvflow.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	if db.Dialect == SQLite {
		for _, l := range lines {
			if _, err := tx.ExecContext(ctx, insertLogs+` VALUES (?, ?, ?, ?, ?, ?)`, l.ExecutionID, l.TaskID, l.TaskRunID, l.Time.UnixMicro(), l.Level, l.Message); err != nil {
				return db.Err(err)
			}
		}
		return nil
	}
	_, err := tx.ExecContext(ctx, db.Rebind(insertLogs+` SELECT `+unnestedLogCols+` FROM `+unnestLogs), logArrays(lines)...)
	return db.Err(err)
}

// Logs implements kvflow.ExecutionRepository.
func (db *DB) Logs(ctx context.Context, executionID string) ([]kvflow.LogLine, error) {
	var rows []logRow
	if err := db.X.SelectContext(ctx, &rows, db.Rebind(`SELECT `+logCols+` FROM execution_logs WHERE execution_id = ? ORDER BY id`), executionID); err != nil {
		return nil, db.Err(err)
	}
	out := make([]kvflow.LogLine, len(rows))
	for i, r := range rows {
		out[i] = r.line(executionID)
	}
	return out, nil
}

// logRow is one log line, as a row or as readExecutionQuery's logs column
// lists it: a JSON array of logCols.
type logRow struct {
	TaskID    string `db:"task_id"`
	TaskRunID string `db:"task_run_id"`
	Time      int64  `db:"time"`
	Level     string `db:"level"`
	Message   string `db:"message"`
}

const logCols = `task_id, task_run_id, time, level, message`

func (l *logRow) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &[]any{&l.TaskID, &l.TaskRunID, &l.Time, &l.Level, &l.Message})
}

func (l logRow) line(executionID string) kvflow.LogLine {
	return kvflow.LogLine{ExecutionID: executionID, TaskID: l.TaskID, TaskRunID: l.TaskRunID, Time: fromMicros(l.Time), Level: l.Level, Message: l.Message}
}
