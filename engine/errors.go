package engine

import (
	"fmt"
	"sort"

	"github.com/kvflow/kvflow"
)

// ValidationError is one problem in a flow file, or in the inputs given to
// a run (kvflow.FieldError).
type ValidationError = kvflow.FieldError

// ValidationErrors are all the problems found at once, in file order; as an
// error their code is EINVALID.
type ValidationErrors = kvflow.FieldErrors

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

func (e *errs) addField(fe []kvflow.FieldError) {
	for _, f := range fe {
		f.File = e.file
		e.list = append(e.list, f)
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
