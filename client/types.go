package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
)

// The bodies of the REST API. The server (package api) writes these same
// types; executions mirror engine.Execution's JSON, a test in api keeps the
// two in step.

// Time is a date in API bodies: UTC with milliseconds, as Kestra writes it
// (2024-07-15T06:10:33.422Z).
type Time struct{ time.Time }

// TimeFormat is how Time is written.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(TimeFormat) + `"`), nil
}

func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = tm.UTC()
	return nil
}

// Entry is a key's metadata as the list routes return it. Namespace is set
// by the inheritance and detail routes only; an empty description and a
// missing expiration date are left out, as Kestra leaves out nulls.
type Entry struct {
	Namespace      string `json:"namespace,omitempty"`
	Key            string `json:"key"`
	Type           string `json:"type"`
	Description    string `json:"description,omitempty"`
	Version        int64  `json:"version"`
	CreationDate   Time   `json:"creationDate"`
	UpdateDate     Time   `json:"updateDate"`
	ExpirationDate Time   `json:"expirationDate,omitzero"`
}

// TypedValue is the body of GET .../kv/{key}: {"type":"STRING","value":"Hello World"}.
type TypedValue struct {
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// EntryDetail is the body of GET .../kv/{key}/detail: the metadata and the value.
type EntryDetail struct {
	Entry
	Value any `json:"value"`
}

// KeysBody is the body and the answer of the bulk delete: {"keys":[…]}.
type KeysBody struct {
	Keys []string `json:"keys"`
}

// NextCursorHeader carries the cursor of the next page of a list.
const NextCursorHeader = "X-Next-Cursor"

// PurgeRequest is the body of POST /api/v1/kv/purge.
type PurgeRequest struct {
	Namespaces      []string `json:"namespaces,omitempty"`      // none: every namespace
	IncludeChildren bool     `json:"includeChildren,omitempty"` // also the namespaces below each
	KeyGlob         string   `json:"keyGlob,omitempty"`         // * and ? wildcards
	All             bool     `json:"all,omitempty"`             // also entries that have not expired
}

// PurgeResult is the answer of a purge: entries removed per namespace.
type PurgeResult struct {
	Purged map[string]int `json:"purged"`
	Total  int            `json:"total"`
}

// Namespace is one entry of GET /api/v1/namespaces.
type Namespace struct {
	ID    string `json:"id"`
	Flows int    `json:"flows"` // flows saved in it
	Keys  int    `json:"keys"`  // live KV entries in it
}

// Flow is a stored flow as the API shows it.
type Flow struct {
	ID          string            `json:"id"`
	Namespace   string            `json:"namespace"`
	Revision    int64             `json:"revision"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Inputs      []FlowInput       `json:"inputs,omitempty"`
	Tasks       []FlowTask        `json:"tasks,omitempty"`
	Updated     Time              `json:"updated,omitzero"`
	Source      string            `json:"source"`
	// Error says why the stored source no longer loads (a task type gone).
	Error string `json:"error,omitempty"`
}

// FlowInput is a declared input of a flow.
type FlowInput struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Required    bool   `json:"required"`
	Defaults    any    `json:"defaults,omitempty"`
	Description string `json:"description,omitempty"`
}

// FlowTask is a top-level task of a flow.
type FlowTask struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// FieldError is one problem of an invalid flow, placed by line and field.
type FieldError struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Error reads "flow.yaml:12:7: tasks[1].ttl: <message>", as engine.ValidationError.
func (e FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Column > 0 {
				fmt.Fprintf(&b, ":%d", e.Column)
			}
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// FieldErrors is the error of a 422 answer that lists every problem of a
// flow. Its kvflow code is EINVALID.
type FieldErrors []FieldError

// Error lists the problems, one per line.
func (v FieldErrors) Error() string {
	lines := make([]string, len(v))
	for i, e := range v {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives kvflow.ErrorCode and kvflow.ErrorMessage an EINVALID error.
func (v FieldErrors) Unwrap() error {
	return &kvflow.Error{Code: kvflow.EINVALID, Message: v.Error()}
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Message string `json:"message"`
	// Errors lists each problem of an invalid flow, with its place.
	Errors []FieldError `json:"errors,omitempty"`
}

// State is the state of an execution, a task run or an attempt.
type State string

// The states, as engine names them.
const (
	CREATED State = "CREATED"
	RUNNING State = "RUNNING"
	SUCCESS State = "SUCCESS"
	WARNING State = "WARNING"
	FAILED  State = "FAILED"
	KILLED  State = "KILLED"
)

// Terminated reports whether s is a final state.
func (s State) Terminated() bool {
	return s == SUCCESS || s == WARNING || s == FAILED || s == KILLED
}

// Failed reports whether s ends a run badly: FAILED or KILLED.
func (s State) Failed() bool { return s == FAILED || s == KILLED }

// Execution is one run of a flow, as GET /api/v1/executions/{id} shows it.
type Execution struct {
	ID           string            `json:"id"`
	Namespace    string            `json:"namespace"`
	FlowID       string            `json:"flowId"`
	FlowRevision int64             `json:"flowRevision,omitempty"`
	State        State             `json:"state"`
	Labels       map[string]string `json:"labels,omitempty"`
	Inputs       map[string]any    `json:"inputs,omitempty"`
	TaskRuns     []*TaskRun        `json:"taskRuns"`
	Outputs      map[string]any    `json:"outputs,omitempty"`
	Error        string            `json:"error,omitempty"`
	Start        time.Time         `json:"startDate"`
	End          *time.Time        `json:"endDate,omitempty"`
	Logs         []LogLine         `json:"logs,omitempty"`
}

// TaskRun is one run of a task: once per execution, or once per ForEach value.
type TaskRun struct {
	ID       string         `json:"id"`
	TaskID   string         `json:"taskId"`
	ParentID string         `json:"parentTaskRunId,omitempty"`
	Value    string         `json:"value,omitempty"`
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
	Level       string    `json:"level"`
	Message     string    `json:"message"`
}

// CodeOf maps an answer's status back to a kvflow code (the inverse of the
// server's map): other 4xx are EINVALID, other 5xx EINTERNAL.
func CodeOf(status int) string {
	switch status {
	case http.StatusUnprocessableEntity, http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusMethodNotAllowed:
		return kvflow.EINVALID
	case http.StatusNotFound:
		return kvflow.ENOTFOUND
	case http.StatusGone:
		return kvflow.EEXPIRED
	case http.StatusConflict:
		return kvflow.ECONFLICT
	case http.StatusPreconditionFailed:
		return kvflow.EPRECONDITION
	case http.StatusForbidden:
		return kvflow.EFORBIDDEN
	case http.StatusUnauthorized:
		return kvflow.EUNAUTHORIZED
	case http.StatusRequestEntityTooLarge:
		return kvflow.ETOOLARGE
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return kvflow.EUNAVAILABLE
	}
	if status >= 400 && status < 500 {
		return kvflow.EINVALID
	}
	return kvflow.EINTERNAL
}
