package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
)

// ValidationError is one problem in a flow file, or in the inputs given to
// a run: the file and line (when known), the path of the field
// (tasks[1].ttl) and what is wrong.
type ValidationError struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Error reads "flow.yaml:12: tasks[1].ttl: <message>", or
// "flow.yaml:12:9: ..." when the column is known.
func (e ValidationError) Error() string {
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

// ValidationErrors are all the problems found at once, in file order. As an
// error its kvflow code is EINVALID.
type ValidationErrors []ValidationError

// Error lists the problems, one per line.
func (v ValidationErrors) Error() string {
	lines := make([]string, len(v))
	for i, e := range v {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives kvflow.ErrorCode and kvflow.ErrorMessage an EINVALID error
// with the same text.
func (v ValidationErrors) Unwrap() error {
	return &kvflow.Error{Code: kvflow.EINVALID, Message: v.Error()}
}

// errs collects validation errors for one file.
type errs struct {
	file string
	list ValidationErrors
}

func (e *errs) add(line int, field, format string, args ...any) {
	e.list = append(e.list, ValidationError{File: e.file, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (e *errs) addAt(line, col int, field, format string, args ...any) {
	e.list = append(e.list, ValidationError{File: e.file, Line: line, Column: col, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (e *errs) addField(fe []plugin.FieldError) {
	for _, f := range fe {
		e.list = append(e.list, ValidationError{File: e.file, Line: f.Line, Field: f.Field, Message: f.Message})
	}
}

// err returns the collected errors sorted by line, or nil.
func (e *errs) err() error {
	if len(e.list) == 0 {
		return nil
	}
	sort.SliceStable(e.list, func(i, j int) bool {
		a, b := e.list[i], e.list[j]
		return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
	})
	return e.list
}
