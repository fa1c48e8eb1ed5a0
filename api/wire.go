package api

import (
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/engine"
)

// The API's bodies are package client's types, so the server and the client
// cannot disagree on them.
type (
	Time             = client.Time
	Entry            = client.Entry
	TypedValue       = client.TypedValue
	EntryDetail      = client.EntryDetail
	KeysBody         = client.KeysBody
	PurgeRequest     = client.PurgeRequest
	PurgeResult      = client.PurgeResult
	Namespace        = client.Namespace
	Flow             = client.Flow
	FlowInput        = client.FlowInput
	FlowTask         = client.FlowTask
	FlowTrigger      = client.FlowTrigger
	FlowCondition    = client.FlowCondition
	FieldError       = client.FieldError
	ErrorBody        = client.ErrorBody
	Version          = client.Version
	Change           = client.Change
	RestoreRequest   = client.RestoreRequest
	PreconditionBody = client.PreconditionBody
	IncrementBody    = client.IncrementBody
	IncrementResult  = client.IncrementResult
	BatchResult      = client.BatchResult
	ImportError      = client.ImportError
	PatchResult      = client.PatchResult
	// LogLine is one line of an execution's logs.
	LogLine = engine.LogLine
)

// TimeFormat is how Time is written.
const TimeFormat = client.TimeFormat

// NextCursorHeader carries the cursor of the next page of a list.
const NextCursorHeader = client.NextCursorHeader
