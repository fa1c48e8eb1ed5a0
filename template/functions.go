package template

import (
	"fmt"

	"github.com/flosch/pongo2/v6"
	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// function is the shape pongo2 calls with the execution context first.
type function func(ec *pongo2.ExecutionContext, args ...*pongo2.Value) (*pongo2.Value, error)

// wrap records a function's error in the render state so its code survives.
func wrap(fn func(st *renderState, args []*pongo2.Value) (any, error)) function {
	return func(ec *pongo2.ExecutionContext, args ...*pongo2.Value) (*pongo2.Value, error) {
		st := stateOf(ec)
		if st == nil {
			return nil, kvflow.Errorf(kvflow.EINTERNAL, "Template functions are unavailable outside a kvflow render.")
		}
		v, err := fn(st, args)
		if err != nil {
			st.fail(err)
			return nil, err
		}
		return pongo2.AsValue(v), nil
	}
}

// namedArg is a kv() argument given by name (see prepare).
type namedArg struct {
	name  string
	value *pongo2.Value
}

func (a namedArg) String() string { return a.name + "=" + Text(a.value.Interface()) }

// namedArgFunc is the marker function prepare puts in place of name=value.
func namedArgFunc(name string) func(args ...*pongo2.Value) (any, error) {
	return func(args ...*pongo2.Value) (any, error) {
		if len(args) != 1 {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The named argument '%s' needs one value.", name)
		}
		return namedArg{name, args[0]}, nil
	}
}

// kvParams are kv()'s parameters in order.
var kvParams = []string{"key", "namespace", "errorOnMissing", "default"}

// kvArgs puts positional and named arguments in parameter order.
func kvArgs(in []*pongo2.Value) ([]*pongo2.Value, error) {
	out := make([]*pongo2.Value, 0, len(kvParams))
	named := false
	for _, a := range in {
		na, ok := a.Interface().(namedArg)
		if !ok {
			if named {
				return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function takes its positional arguments before the named ones.")
			}
			out = append(out, a)
			continue
		}
		named = true
		i := 0
		for kvParams[i] != na.name {
			i++
		}
		for len(out) <= i {
			out = append(out, pongo2.AsValue(nil))
		}
		if !out[i].IsNil() {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function got the argument '%s' twice.", na.name)
		}
		out[i] = na.value
	}
	return out, nil
}

// kv implements kv(key[, namespace[, errorOnMissing[, default]]]); namespace,
// errorOnMissing and default may be given by name. A default (not null) is
// returned for a missing or expired key, whatever errorOnMissing says.
func (e *Engine) kv(st *renderState, args []*pongo2.Value) (any, error) {
	args, err := kvArgs(args)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 || args[0].IsNil() {
		return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function expects an argument 'key'.")
	}
	if len(args) > 4 {
		return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function takes at most 4 arguments (key, namespace, errorOnMissing, default), not %d.", len(args))
	}
	var dflt any
	if len(args) > 3 && !args[3].IsNil() {
		dflt = args[3].Interface()
	}
	if !args[0].IsString() {
		return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function expects the key to be a string, not %s.", typeName(args[0]))
	}
	key := args[0].String()
	ns := ""
	if len(args) > 1 && !args[1].IsNil() {
		if !args[1].IsString() {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function expects the namespace to be a string, not %s.", typeName(args[1]))
		}
		ns = args[1].String()
	}
	errorOnMissing := true
	if len(args) > 2 && !args[2].IsNil() {
		if !args[2].IsBool() {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function expects errorOnMissing to be true or false, not %s.", typeName(args[2]))
		}
		errorOnMissing = args[2].Bool()
	}
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	if e.store == nil {
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "The 'kv' function cannot read key '%s': no KV store is configured.", clip(key))
	}

	from := st.ns
	access := storage.Access{Policy: e.policy, Scope: storage.ScopeFrom(st.ctx)}
	var candidates []string
	if ns != "" {
		if err := storage.ValidateNamespace(ns); err != nil {
			return nil, err
		}
		if err := access.Check(from, ns); err != nil {
			return nil, err
		}
		candidates = []string{ns}
	} else {
		if from == "" {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function needs a namespace: give one as its second argument, or render with flow.namespace set.")
		}
		// Nearest first; the first hit wins. Namespaces outside the scope
		// are left out, so inheritance stops at the caller's scope.
		candidates = access.Inherited(from)
		if len(candidates) == 0 {
			return nil, access.Check(from, from)
		}
	}

	expiredIn := ""
	for _, cand := range candidates {
		_, val, err := e.store.Get(st.ctx, cand, key)
		switch kvflow.ErrorCode(err) {
		case "":
			return kvValue(val), nil
		case kvflow.ENOTFOUND:
			continue
		case kvflow.EEXPIRED:
			if expiredIn == "" {
				expiredIn = cand
			}
			continue
		default:
			return nil, err
		}
	}
	if dflt != nil {
		return dflt, nil
	}
	if !errorOnMissing {
		return nil, nil
	}
	if expiredIn != "" {
		return nil, kvflow.Errorf(kvflow.EEXPIRED, "The key '%s' in the namespace '%s' has expired.", key, expiredIn)
	}
	return nil, kvflow.Errorf(kvflow.ENOTFOUND, "The key '%s' does not exist in the namespace '%s'.", key, candidates[0])
}

// kvValue is what kv() returns for a stored value: strings, numbers, booleans
// and JSON maps or lists as such; instants, dates and durations as ISO text,
// which prints well and compares in order.
func kvValue(v storage.Value) any {
	switch v.Type {
	case storage.DATETIME, storage.DATE, storage.DURATION:
		return v.Text()
	}
	return v.V
}

// fromJSON implements fromJson(x) and its alias json(x): a JSON string is
// parsed (numbers become int64 or float64); anything else passes through.
func fromJSON(name string) func(st *renderState, args []*pongo2.Value) (any, error) {
	return func(st *renderState, args []*pongo2.Value) (any, error) {
		if len(args) != 1 {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The '%s' function expects one argument, not %d.", name, len(args))
		}
		s, ok := args[0].Interface().(string)
		if !ok {
			return args[0].Interface(), nil
		}
		v, err := decodeJSON(s)
		if err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The '%s' function cannot parse its argument (%s): %s.", name, storage.Describe(s), storage.JSONErrorText(err))
		}
		return v, nil
	}
}

// toJSONFunc implements toJson(x).
func toJSONFunc(st *renderState, args []*pongo2.Value) (any, error) {
	if len(args) != 1 {
		return nil, kvflow.Errorf(kvflow.EINVALID, "The 'toJson' function expects one argument, not %d.", len(args))
	}
	s, err := toJSON(args[0].Interface())
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "The 'toJson' function cannot encode a %s: %v.", typeName(args[0]), err)
	}
	return s, nil
}

func typeName(v *pongo2.Value) string {
	switch {
	case v.IsNil():
		return "null"
	case v.IsString():
		return "a string"
	case v.IsBool():
		return "a boolean"
	case v.IsNumber():
		return "a number"
	}
	return fmt.Sprintf("a %T", v.Interface())
}

// decodeJSON reads one JSON document as storage does: numbers become int64,
// or float64 when they have a fraction or an exponent.
func decodeJSON(s string) (any, error) { return storage.DecodeJSON([]byte(s)) }
