package client

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
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
	// ShadowedBy names the nearer namespace whose key of the same name hides
	// this inherited one (GET .../kv/inheritance?shadowed=true only).
	ShadowedBy string `json:"shadowedBy,omitempty"`
	Sensitive  bool   `json:"sensitive,omitempty"` // the value is sealed at rest and masked unless revealed
}

// TypedValue is the body of GET .../kv/{key}: {"type":"STRING","value":"Hello World"}.
type TypedValue struct {
	Type      string `json:"type"`
	Value     any    `json:"value"`
	Sensitive bool   `json:"sensitive,omitempty"`
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

// TotalCountHeader carries how many entries a list selects across its pages.
const TotalCountHeader = "X-Total-Count"

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
	// KeyCount is Keys again, under the name the namespace list documents.
	KeyCount int `json:"keyCount"`
	// TotalKeyCount counts the live KV entries of this namespace and of every
	// listed namespace below it.
	TotalKeyCount int    `json:"totalKeyCount"`
	Parent        string `json:"parent,omitempty"` // the namespace one segment up; "" at the top
	// Implicit marks a parent listed only because namespaces below it exist:
	// it holds no flows or keys and was never created.
	Implicit bool `json:"implicit,omitempty"`
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
	Triggers    []FlowTrigger     `json:"triggers,omitempty"`
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

// FlowTrigger is a trigger of a flow, with when or where it fires.
type FlowTrigger struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Disabled bool   `json:"disabled,omitempty"`
	Cron     string `json:"cron,omitempty"`     // Schedule
	Timezone string `json:"timezone,omitempty"` // Schedule
	NextDate Time   `json:"nextDate,omitzero"`  // Schedule, when enabled: its next tick
	// WebhookPath is where a Webhook trigger listens (POST or GET), key included.
	WebhookPath string `json:"webhookPath,omitempty"`
	// A KV trigger's namespace (the flow's unless it names one), the key or
	// the prefix of the keys it watches (neither: every key), and the
	// changes it fires on.
	Namespace string   `json:"namespace,omitempty"`
	Key       string   `json:"key,omitempty"`
	Prefix    string   `json:"prefix,omitempty"`
	On        []string `json:"on,omitempty"`
	// Conditions of a Flow trigger: an ended execution fires it when it
	// meets every one.
	Conditions []FlowCondition `json:"conditions,omitempty"`
}

// FlowCondition is one condition of a Flow trigger on the ended execution:
// its namespace (with Prefix, or one below it), its flow, its final state
// in In and not in NotIn. An empty field asks nothing.
type FlowCondition struct {
	Namespace string   `json:"namespace,omitempty"`
	Prefix    bool     `json:"prefix,omitempty"`
	FlowID    string   `json:"flowId,omitempty"`
	In        []string `json:"in,omitempty"`
	NotIn     []string `json:"notIn,omitempty"`
}

// FieldError is one problem of an invalid flow, placed by line and field;
// FieldErrors, the error of a 422 answer, lists every one (code EINVALID).
type (
	FieldError  = kvflow.FieldError
	FieldErrors = kvflow.FieldErrors
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Message string `json:"message"`
	// Errors lists each problem of an invalid flow, with its place.
	Errors []FieldError `json:"errors,omitempty"`
}

// Executions as the API shows them are the domain's records.
type (
	State     = kvflow.State
	Execution = kvflow.Execution
	TaskRun   = kvflow.TaskRun
	Attempt   = kvflow.Attempt
	LogLine   = kvflow.LogLine
)

// The states.
const (
	CREATED = kvflow.CREATED
	RUNNING = kvflow.RUNNING
	SUCCESS = kvflow.SUCCESS
	WARNING = kvflow.WARNING
	FAILED  = kvflow.FAILED
	KILLED  = kvflow.KILLED
)

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
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return kvflow.EUNAVAILABLE
	case http.StatusGatewayTimeout:
		return kvflow.ETIMEOUT
	}
	if status >= 400 && status < 500 {
		return kvflow.EINVALID
	}
	return kvflow.EINTERNAL
}

// PreconditionBody is the body of a 412.
type PreconditionBody struct {
	Message string `json:"message"`
	Version *int64 `json:"version"`
}

// IncrementBody is the body of POST .../kv/{key}/increment; by defaults to 1,
// ttl (ISO-8601 or whole seconds) and description apply when given.
type IncrementBody struct {
	By          any    `json:"by"`
	TTL         any    `json:"ttl,omitempty"`
	Description string `json:"description,omitempty"`
}

// IncrementResult answers an increment.
type IncrementResult struct {
	Value     any   `json:"value"`
	Version   int64 `json:"version"`
	Sensitive bool  `json:"sensitive,omitempty"` // as GET says it
}

// BatchResult is one written entry of a batch write.
type BatchResult struct {
	Key     string `json:"key"`
	Version int64  `json:"version"`
}

// ImportError is a stopped import: the reason and what was done before it.
type ImportError struct {
	Message string `json:"message"`
	storage.ImportResult
}

// ETag is the entity tag of a version: the number, quoted.
func ETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// marshal encodes a request body as JSON without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// PatchResult answers PATCH .../kv/{key} (a JSON merge patch): the new value and version.
type PatchResult struct {
	Type      string `json:"type"`
	Value     any    `json:"value"`
	Version   int64  `json:"version"`
	Sensitive bool   `json:"sensitive,omitempty"` // as GET says it
}
