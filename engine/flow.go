// Package engine loads Kestra-style YAML flows and runs them: strict
// parsing with every error placed by file, line and field; executions with
// task runs, attempts, retries, timeouts and the flowable tasks Sequential,
// Parallel, If and ForEach; and their records in a Repository (states,
// dates and logs) and in object storage (inputs and outputs).
//
// Every string in a task's properties is a template that sees:
//
//	flow.id, flow.namespace, flow.revision
//	execution.id, execution.startDate
//	execution.state, execution.error    in the errors branch only
//	inputs.<id>                         converted to the input's type
//	vars.<name>                         the flow's variables, rendered at the start
//	labels.<key>
//	outputs.<taskId>.<name>             tasks that returned outputs
//	outputs.<taskId>[value].<name>      a task inside a ForEach, per value
//	taskrun.id, taskrun.taskId, taskrun.startDate, taskrun.attemptsCount,
//	taskrun.parentId, taskrun.value     the ForEach value, as text
//	parent.taskrun.value, parents[i]    the values of enclosing ForEach loops
//	task.id, task.type
package engine

import (
	"time"

	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// Flow is a loaded, valid flow.
type Flow struct {
	ID          string
	Namespace   string
	Revision    int64 // set by whoever stores flows; 0 for a file
	Description string
	Labels      map[string]string
	Inputs      []Input
	Variables   map[string]any // rendered when an execution starts
	Tasks       []*Task
	Errors      []*Task // run when the flow fails
	Outputs     []Output
	KVSnapshot  bool         // kv() and Get read the store as it was when the execution started (own writes excepted)
	Triggers    []*Trigger   // what starts executions besides the API
	Concurrency *Concurrency // limit on running executions of the flow; nil: none
	Saved       time.Time    // when its revision was stored (FlowRecord.Updated)

	File   string // where it was read from, for messages
	Source string // the YAML as given

	// Scope bounds what its executions may reach: the scope of whoever
	// deployed it (FlowRecord.Scope), narrowed by whoever starts it. The
	// zero Scope is unrestricted (a local file run by the CLI).
	Scope storage.Scope
}

// InputType is the declared type of an input or an output.
type InputType string

const (
	STRING   InputType = "STRING"
	INT      InputType = "INT"
	FLOAT    InputType = "FLOAT"
	BOOLEAN  InputType = "BOOLEAN"
	DATETIME InputType = "DATETIME"
	DURATION InputType = "DURATION"
	JSON     InputType = "JSON"
)

// InputTypes lists the input types.
var InputTypes = []InputType{STRING, INT, FLOAT, BOOLEAN, DATETIME, DURATION, JSON}

// Input is a declared input of a flow.
type Input struct {
	ID          string
	Type        InputType
	Defaults    any  // already converted to Type; nil when none
	HasDefault  bool // Defaults was given
	Required    bool // Kestra's default: true
	Description string
}

// Output is a flow output: a template rendered when the flow succeeds.
type Output struct {
	ID    string
	Value any
	Type  InputType // "" keeps the rendered value as it is
}

// Task is one task of a flow.
type Task struct {
	ID           string
	Type         string
	Description  string
	Disabled     bool
	Timeout      time.Duration // 0: none
	Retry        *Retry
	AllowFailure bool

	// Impl holds the decoded properties and runs the task. For the flowable
	// types it is a *Sequential, *Parallel, *If or *ForEach.
	Impl plugin.Task

	Line int    // line of the task in the flow file
	Path string // tasks[1].then[0], for messages
}

// Retry is a constant retry policy.
type Retry struct {
	Interval       time.Duration
	MaxAttempts    int           // attempts in all, the first included
	MaxDuration    time.Duration // 0: no limit
	WarningOnRetry bool          // a success after a retry ends in WARNING
}

// Children returns the tasks a flowable task holds, in order.
func (t *Task) Children() []*Task {
	switch x := t.Impl.(type) {
	case *Sequential:
		return x.Tasks
	case *Parallel:
		return x.Tasks
	case *If:
		return append(append([]*Task(nil), x.Then...), x.Else...)
	case *ForEach:
		return x.Tasks
	}
	return nil
}

// AllTasks returns every task of the flow, nested ones and the errors
// branch included, depth first.
func (f *Flow) AllTasks() []*Task {
	var out []*Task
	var walk func([]*Task)
	walk = func(ts []*Task) {
		for _, t := range ts {
			out = append(out, t)
			walk(t.Children())
		}
	}
	walk(f.Tasks)
	walk(f.Errors)
	return out
}

// Record is the flow as the FlowRepository stores it.
func (f *Flow) Record() FlowRecord {
	rec := FlowRecord{Namespace: f.Namespace, ID: f.ID, Source: f.Source, Revision: f.Revision}
	seen := map[string]bool{}
	for _, t := range f.Triggers {
		if !t.Disabled && !seen[t.Type] {
			seen[t.Type] = true
			rec.Triggers = append(rec.Triggers, t.Type)
		}
	}
	return rec
}
