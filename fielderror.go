package kvflow

import (
	"fmt"
	"strings"
)

// FieldError is one problem of an input — a flow file, a run's inputs, a
// task's properties: the file, line and column when known, the path of the
// field (tasks[1].ttl) and what is wrong with it.
type FieldError struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Error reads "flow.yaml:12: tasks[1].ttl: <message>", or
// "flow.yaml:12:9: ..." when the column is known; without a file, only
// "tasks[1].ttl: <message>".
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
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// FieldErrors are all the problems found at once, in file order. As an
// error its code is EINVALID.
type FieldErrors []FieldError

// Error lists the problems, one per line.
func (v FieldErrors) Error() string {
	lines := make([]string, len(v))
	for i, e := range v {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives ErrorCode and ErrorMessage an EINVALID error with the same text.
func (v FieldErrors) Unwrap() error {
	return &Error{Code: EINVALID, Message: v.Error()}
}
