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

// Nearest is the name closest to typed (same letters in another case, or
// at most two edits away), or "": what a "did you mean" hint offers
// for a misspelled setting, filter or function.
func Nearest(typed string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if strings.EqualFold(n, typed) {
			return n
		}
		if d := editDistance(strings.ToLower(typed), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
