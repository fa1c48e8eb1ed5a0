// Package kvflow holds what every other package shares: the error type and its codes.
package kvflow

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Error codes. The HTTP layer (api) holds the only code-to-status map.
const (
	ECONFLICT     = "conflict"     // a write that would replace what the caller said to keep
	EEXPIRED      = "expired"      // the entry exists but its TTL has passed
	EFORBIDDEN    = "forbidden"    // a namespace the caller may not reach
	EINTERNAL     = "internal"     // a bug or a broken invariant
	EINVALID      = "invalid"      // bad input: a key, a namespace, a value, a flow
	ENOTFOUND     = "not_found"    // no such key, flow or execution
	ETIMEOUT      = "timeout"      // a task or an operation ran past its time limit
	EPRECONDITION = "precondition" // a conditional request (If-Match, If-None-Match) whose condition fails
	ETOOLARGE     = "too_large"    // a body or value over a documented limit
	EUNAUTHORIZED = "unauthorized" // no or a wrong API token
	EUNAVAILABLE  = "unavailable"  // the database or the object store cannot be reached
)

// Error is kvflow's one error type. Message is a sentence fit for a user; Err,
// when set, is the underlying cause, kept for errors.Is/As and logs.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the code and a formatted message. A %w verb
// keeps the wrapped error reachable through Unwrap.
func Errorf(code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic sentence for any other error so internals do not leak to users.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Error()
	}
	return "Internal error."
}

// Clip shortens s for a message: at most 80 bytes, cut on a character
// boundary and ended with "..." when it was longer.
func Clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	cut := max - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
