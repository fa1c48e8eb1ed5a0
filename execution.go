package kvflow

import (
	"context"
	"time"
)

// State is the state of an execution, a task run or an attempt.
type State string

const (
	CREATED State = "CREATED"
	RUNNING State = "RUNNING"
	SUCCESS State = "SUCCESS"
	WARNING State = "WARNING" // done, but a task failed with allowFailure (or succeeded after a retry with warningOnRetry)
	FAILED  State = "FAILED"
	KILLED  State = "KILLED" // stopped: killed through the API, the caller's context ended or the engine shut down
)

// Terminated reports whether s is a final state.
func (s State) Terminated() bool {
	return s == SUCCESS || s == WARNING || s == FAILED || s == KILLED
}

// Failed reports whether s ends a run badly: FAILED or KILLED.
func (s State) Failed() bool { return s == FAILED || s == KILLED }

// Execution is one run of a flow. The ExecutionRepository holds its states,
// dates, attempts and errors; object storage holds its inputs and outputs.
type Execution struct {
	ID           string            `json:"id"`
	Namespace    string            `json:"namespace"`
	FlowID       string            `json:"flowId"`
	FlowRevision int64             `json:"flowRevision,omitempty"`
	State        State             `json:"state"`
	Labels       map[string]string `json:"labels,omitempty"`
	Inputs       map[string]any    `json:"inputs,omitempty"`
	TaskRuns     []*TaskRun        `json:"taskRuns"`
	Outputs      map[string]any    `json:"outputs,omitempty"` // the flow's outputs
	Error        string            `json:"error,omitempty"`   // why it failed, when it did
	Start        time.Time         `json:"startDate"`
	End          *time.Time        `json:"endDate,omitempty"`
	// Trigger says what started the execution (nil: an API call or the CLI).
	Trigger *TriggerInfo `json:"trigger,omitempty"`
	// Worker is the process running the execution, while one does.
	Worker     string     `json:"worker,omitempty"`
	KVSnapshot *time.Time `json:"kvSnapshot,omitempty"` // the flow's kvSnapshot: when its KV reads are pinned
	Logs       []LogLine  `json:"logs,omitempty"`       // filled by Run and Wait
	// Claim is the worker's hold it was last saved under (0: never
	// claimed); it names the object that holds its end (engine.ObjectName).
	Claim int64 `json:"-"`

	// Scope is what the execution may reach (the flow's scope narrowed by
	// whoever started it); kept so a worker resuming the execution obeys it.
	Scope Scope `json:"-"`
}

// TriggerInfo names the trigger that created an execution. Its variables
// (trigger.date, trigger.body…) are kept with the inputs, in object storage.
type TriggerInfo struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Key makes the execution unique: a second creation with the same key
	// is refused (a schedule tick fires once however many servers run).
	Key       string         `json:"-"`
	Variables map[string]any `json:"variables,omitempty"`
}

// TaskRun is one run of a task: once per execution, or once per value for
// the tasks inside a ForEach.
type TaskRun struct {
	ID       string         `json:"id"`
	TaskID   string         `json:"taskId"`
	ParentID string         `json:"parentTaskRunId,omitempty"`
	Value    string         `json:"value,omitempty"` // the ForEach value
	State    State          `json:"state"`
	Attempts []Attempt      `json:"attempts,omitempty"`
	Outputs  map[string]any `json:"outputs,omitempty"`
	Error    string         `json:"error,omitempty"`
	Start    time.Time      `json:"startDate"`
	End      *time.Time     `json:"endDate,omitempty"`
	Seq      int            `json:"-"` // its place in Execution.TaskRuns
}

// Attempt is one try of a task run.
type Attempt struct {
	State  State      `json:"state"`
	Start  time.Time  `json:"startDate"`
	End    *time.Time `json:"endDate,omitempty"`
	Worker string     `json:"worker,omitempty"` // the process that ran it
}

// LogLine is one line of an execution's logs.
type LogLine struct {
	ExecutionID string    `json:"executionId"`
	TaskID      string    `json:"taskId,omitempty"`
	TaskRunID   string    `json:"taskRunId,omitempty"`
	Time        time.Time `json:"timestamp"`
	Level       string    `json:"level"` // TRACE, DEBUG, INFO, WARN, ERROR
	Message     string    `json:"message"`
}

// FlowRecord is a stored flow: its YAML source and revision.
type FlowRecord struct {
	Namespace string    `json:"namespace"`
	ID        string    `json:"id"`
	Revision  int64     `json:"revision"`
	Source    string    `json:"source"`
	Updated   time.Time `json:"updated"`
	// Triggers lists the flow's trigger types (for the trigger loops).
	Triggers []string `json:"-"`
	// Scope is the scope of whoever deployed the flow; executions that
	// triggers start keep it.
	Scope Scope `json:"-"`
}

// ExecutionParts are what ReadExecution reads besides an execution and its
// task runs.
type ExecutionParts struct {
	Logs bool // its log lines, as Logs returns them
	Flow bool // its flow's current record: what a worker runs it with
}

// ExecutionQuery selects executions, newest first.
type ExecutionQuery struct {
	Namespace string // "" for all
	FlowID    string // "" for all; needs Namespace
	Limit     int    // 0: 100
}

// ExecutionSave is one incremental save of a running execution: the
// execution's own fields, the task runs that changed since the last save
// and the new log lines, written in one transaction.
type ExecutionSave struct {
	Execution *Execution // its fields, not its task runs
	TaskRuns  []*TaskRun // changed ones, with their Seq
	Logs      []LogLine
	// Claim, when not 0, fences the save: it fails with ECONFLICT unless the
	// execution is still held under this claim.
	Claim int64
}

// Claim is a worker's hold on an execution.
type Claim struct {
	Claim    int64 // grows by one at each claim
	Previous string
	// Takeover is true when another worker held the execution before.
	Takeover bool
	// OverLimit is true when the flow's concurrency limit refused the claim.
	OverLimit bool
}

// Held is an execution a heartbeat found still held by its worker.
type Held struct {
	ID    string
	Claim int64 // the claim the worker holds it under
	Kill  bool  // a kill was requested
}

// FlowRepository keeps flows.
type FlowRepository interface {
	// CreateFlow stores a new flow at revision 1, or fails with ECONFLICT
	// when it exists (the database decides: of two racing creates one wins).
	CreateFlow(ctx context.Context, f FlowRecord) (FlowRecord, error)
	// UpdateFlow stores a new revision of an existing flow, or ENOTFOUND.
	UpdateFlow(ctx context.Context, f FlowRecord) (FlowRecord, error)
	// SaveFlow creates or updates a flow, one revision more than the stored one.
	SaveFlow(ctx context.Context, f FlowRecord) (FlowRecord, error)
	// GetFlow returns a flow, or ENOTFOUND.
	GetFlow(ctx context.Context, namespace, id string) (FlowRecord, error)
	// ListFlows returns the flows of a namespace ("" for all) by namespace and id.
	ListFlows(ctx context.Context, namespace string) ([]FlowRecord, error)
	// DeleteFlow removes a flow and reports whether it existed.
	DeleteFlow(ctx context.Context, namespace, id string) (bool, error)
}

// ExecutionRepository keeps executions, task runs and logs in the metadata
// database. It never holds inputs or outputs (object storage does).
type ExecutionRepository interface {
	FlowRepository
	// CreateExecution inserts a new execution (with its task runs, if any);
	// ECONFLICT when its id or its trigger key exists.
	CreateExecution(ctx context.Context, e *Execution) error
	// SaveExecution writes what changed; ECONFLICT when Claim no longer holds.
	SaveExecution(ctx context.Context, s ExecutionSave) error
	// GetExecution returns an execution with its task runs, or ENOTFOUND.
	GetExecution(ctx context.Context, id string) (*Execution, error)
	// ReadExecution is GetExecution that also reads, in the same statement,
	// what with asks for: the execution's log lines (into its Logs), and its
	// flow's current record (nil when the flow is gone).
	ReadExecution(ctx context.Context, id string, with ExecutionParts) (*Execution, *FlowRecord, error)
	// ListExecutions returns executions without their task runs.
	ListExecutions(ctx context.Context, q ExecutionQuery) ([]*Execution, error)
	// ExecutionStates returns the state of each execution of ids that
	// exists, in one query.
	ExecutionStates(ctx context.Context, ids []string) (map[string]State, error)
	// Logs returns an execution's lines in order.
	Logs(ctx context.Context, executionID string) ([]LogLine, error)

	// ClaimExecution gives worker the execution when it is not terminal and
	// no live worker holds it (none, or one whose heartbeat is older than
	// stale);
	// ENOTFOUND when it is terminal or held by a live worker. With limit > 0
	// it is claimed only while fewer than limit other executions of its flow
	// are held (Claim.OverLimit otherwise), atomically across workers. With
	// atCreation, executions of the flow that were running when this one was
	// created count too (CANCEL and FAIL judge an execution by the moment it
	// was created, as Kestra does, not by when a worker slot came free);
	// without, older executions of the flow that wait count too (QUEUE runs
	// them in creation order, as Kestra does).
	ClaimExecution(ctx context.Context, id, worker string, stale time.Time, limit int, atCreation bool) (Claim, error)
	// LastTriggerKey returns the greatest trigger key starting with prefix
	// ("" when none): where a schedule stopped.
	LastTriggerKey(ctx context.Context, prefix string) (string, error)
	// ReleaseExecution lets any worker take the execution over at once, if
	// it is still held under claim: its heartbeat goes back to the epoch
	// (a worker handing it over as it stops).
	ReleaseExecution(ctx context.Context, id string, claim int64) error
	// Heartbeat marks the executions of ids that worker holds as alive (the
	// ones it runs: one it holds but no longer runs goes silent and is taken
	// over) and returns them: one of ids missing is over, or another
	// worker took it over.
	Heartbeat(ctx context.Context, worker string, ids []string) ([]Held, error)
	// PendingEnds returns up to limit executions (id, namespace, flow and
	// state only), oldest end first, that ended before endedBefore and whose
	// end the trigger loops have not handled yet (see EndsHandled).
	PendingEnds(ctx context.Context, endedBefore time.Time, limit int) ([]*Execution, error)
	// EndsHandled records that the Flow triggers of these ended executions
	// have fired.
	EndsHandled(ctx context.Context, ids []string) error
	// RequestKill asks for an execution to be killed: one not yet running
	// is KILLED at once (true), a running one by its worker (false).
	RequestKill(ctx context.Context, id string) (killedNow bool, err error)
}

// ErrWaitTurn is what a worker answers for an execution its flow's
// concurrency limit holds back (behavior QUEUE): the queue offers it again
// a little later.
var ErrWaitTurn = &Error{Code: ECONFLICT, Message: "The flow's concurrency limit is reached: the execution waits for its turn."}

// Queue hands executions to workers.
type Queue interface {
	// Submit creates the execution (state CREATED) and its job in one
	// transaction: an execution Submit acknowledged is never lost. write,
	// when not nil, runs inside the transaction once the row is in (the
	// engine stores the inputs there), so an execution refused as a
	// duplicate leaves nothing behind.
	Submit(ctx context.Context, e *Execution, write func(context.Context) error) error
	// SubmitHere is Submit for an execution the calling process runs itself
	// at once: it is created claimed by e.Worker (claim 1), with no job.
	// Should the process die before it ends, the execution goes silent and
	// is taken over like any other.
	SubmitHere(ctx context.Context, e *Execution, write func(context.Context) error) error
}
