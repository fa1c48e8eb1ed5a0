package engine

import (
	"context"
	"time"

	"github.com/kvflow/kvflow/storage"
)

// State is the state of an execution, a task run or an attempt.
type State string

const (
	CREATED State = "CREATED"
	RUNNING State = "RUNNING"
	SUCCESS State = "SUCCESS"
	WARNING State = "WARNING" // done, but a task failed with allowFailure (or succeeded after a retry with warningOnRetry)
	FAILED  State = "FAILED"
	KILLED  State = "KILLED" // stopped: the caller's context ended or the engine shut down
)

// Terminated reports whether s is a final state.
func (s State) Terminated() bool {
	return s == SUCCESS || s == WARNING || s == FAILED || s == KILLED
}

// Failed reports whether s ends a run badly: FAILED or KILLED.
func (s State) Failed() bool { return s == FAILED || s == KILLED }

// rank orders final states from best to worst.
func (s State) rank() int {
	switch s {
	case WARNING:
		return 1
	case FAILED:
		return 2
	case KILLED:
		return 3
	}
	return 0
}

func worst(a, b State) State {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Execution is one run of a flow. The Repository holds its states, dates,
// attempts and errors; the Bucket holds its inputs and outputs (see
// Engine.Execution, which joins both).
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
	KVSnapshot   *time.Time        `json:"kvSnapshot,omitempty"` // the flow's kvSnapshot: when its KV reads are pinned
	Logs         []LogLine         `json:"logs,omitempty"`       // filled by Run and Wait

	// Scope is what the execution may reach (Flow.Scope when it started);
	// the Repository keeps it so a worker resuming the execution obeys it.
	Scope storage.Scope `json:"-"`
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
}

// Attempt is one try of a task run.
type Attempt struct {
	State State      `json:"state"`
	Start time.Time  `json:"startDate"`
	End   *time.Time `json:"endDate,omitempty"`
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

	// Scope is the scope of whoever deployed the flow; executions that
	// triggers start keep it (Flow.Scope).
	Scope storage.Scope `json:"-"`
}

// ExecutionQuery selects executions, newest first.
type ExecutionQuery struct {
	Namespace string // "" for all
	FlowID    string // "" for all; needs Namespace
	Limit     int    // 0: 100
}

// Repository keeps flows, executions, task runs and logs in the metadata
// database (storage/sqldb implements it). It never holds inputs or outputs:
// SaveExecution ignores Execution.Inputs, Outputs, TaskRun.Outputs and
// TaskRun.Value, and GetExecution leaves them empty.
type Repository interface {
	// SaveFlow stores a flow's source, one revision more than the stored
	// one (1 for a new flow), and returns the record as saved.
	SaveFlow(ctx context.Context, f FlowRecord) (FlowRecord, error)
	// GetFlow returns a flow, or ENOTFOUND.
	GetFlow(ctx context.Context, namespace, id string) (FlowRecord, error)
	// ListFlows returns the flows of a namespace ("" for all) by namespace and id.
	ListFlows(ctx context.Context, namespace string) ([]FlowRecord, error)
	// DeleteFlow removes a flow and reports whether it existed.
	DeleteFlow(ctx context.Context, namespace, id string) (bool, error)

	// SaveExecution creates or updates an execution and its task runs.
	SaveExecution(ctx context.Context, e *Execution) error
	// GetExecution returns an execution with its task runs, or ENOTFOUND.
	GetExecution(ctx context.Context, id string) (*Execution, error)
	// ListExecutions returns executions without their task runs.
	ListExecutions(ctx context.Context, q ExecutionQuery) ([]*Execution, error)

	// AppendLogs adds log lines; Logs returns an execution's lines in order.
	AppendLogs(ctx context.Context, lines []LogLine) error
	Logs(ctx context.Context, executionID string) ([]LogLine, error)
}

// clone copies an execution deeply enough that the copy can be read while
// the original keeps changing: task runs and attempts are copied; maps of
// values are shared, as they are never changed once set.
func (e *Execution) clone() *Execution {
	c := *e
	c.TaskRuns = make([]*TaskRun, len(e.TaskRuns))
	for i, tr := range e.TaskRuns {
		t := *tr
		t.Attempts = append([]Attempt(nil), tr.Attempts...)
		c.TaskRuns[i] = &t
	}
	c.Logs = nil
	return &c
}
