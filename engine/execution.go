package engine

import (
	"github.com/kvflow/kvflow"
)

// The execution records live in the domain package (kvflow); these names
// keep engine's API readable.
type (
	State          = kvflow.State
	Execution      = kvflow.Execution
	TaskRun        = kvflow.TaskRun
	Attempt        = kvflow.Attempt
	LogLine        = kvflow.LogLine
	FlowRecord     = kvflow.FlowRecord
	ExecutionQuery = kvflow.ExecutionQuery
	// Repository keeps flows, executions, task runs and logs
	// (storage/sqldb implements it).
	Repository = kvflow.ExecutionRepository
)

const (
	CREATED = kvflow.CREATED
	RUNNING = kvflow.RUNNING
	SUCCESS = kvflow.SUCCESS
	WARNING = kvflow.WARNING
	FAILED  = kvflow.FAILED
	KILLED  = kvflow.KILLED
)

// rank orders final states from best to worst.
func rank(s State) int {
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
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// clone copies an execution deeply enough that the copy can be read while
// the original keeps changing: task runs and attempts are copied; maps of
// values are shared, as they are never changed once set.
func clone(e *Execution) *Execution {
	c := *e
	c.TaskRuns = make([]*TaskRun, len(e.TaskRuns))
	for i, tr := range e.TaskRuns {
		c.TaskRuns[i] = cloneTaskRun(tr)
	}
	c.Logs = nil
	return &c
}

func cloneTaskRun(tr *TaskRun) *TaskRun {
	t := *tr
	t.Attempts = append([]Attempt(nil), tr.Attempts...)
	return &t
}
