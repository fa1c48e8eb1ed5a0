package template

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/flosch/pongo2/v6"
	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

const (
	// stateKey holds the *renderState in pongo2's private context, which
	// child contexts copy. It is not an identifier: no template can name it.
	stateKey = "\x00state"
	// tmpKey and subKey are private-context slots used by strictVar; they are
	// not identifiers, so no template can name them.
	tmpKey = "\x00value"
	subKey = "\x00subscript"
)

// renderState is one render's data that functions and nodes need.
type renderState struct {
	ctx       context.Context
	ns        string // the flow's namespace, for kv()
	wantValue bool   // capture the typed result of the single expression
	value     any
	captured  bool
	funcErr   error         // first error a function returned, with its code
	pos       *pongo2.Token // last node started, to place a panic
	steps     int           // block bodies run, against MaxSteps
	overflow  bool
}

func stateOf(ec *pongo2.ExecutionContext) *renderState {
	st, _ := ec.Private[stateKey].(*renderState)
	return st
}

// interrupted returns an error when the render must stop: the context is done
// or the output is over its limit.
func (st *renderState) interrupted() error {
	if st.overflow {
		return kvflow.Errorf(kvflow.ETOOLARGE, "Template output is over the limit of %d bytes.", MaxOutput)
	}
	if err := st.ctx.Err(); err != nil {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Template rendering stopped: %w.", err)
	}
	return nil
}

// fail records a function's error so its code survives pongo2, which keeps
// only the message.
func (st *renderState) fail(err error) {
	if st != nil && st.funcErr == nil {
		st.funcErr = err
	}
}

// limitWriter collects output up to MaxOutput bytes.
type limitWriter struct {
	buf bytes.Buffer
	st  *renderState
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.st.overflow || w.buf.Len()+len(p) > MaxOutput {
		w.st.overflow = true
		return 0, nil // pongo2 ignores write errors; interrupted() reports it
	}
	return w.buf.Write(p)
}

func (w *limitWriter) WriteString(s string) (int, error) {
	if w.st.overflow || w.buf.Len()+len(s) > MaxOutput {
		w.st.overflow = true
		return 0, nil
	}
	return w.buf.WriteString(s)
}

// outputNode replaces pongo2's {{ expression }} node: it prints values as
// kvflow does and, in a single-expression template, captures the typed value.
type outputNode struct {
	expr  pongo2.IEvaluator
	tok   *pongo2.Token
	typed bool // the template's only expression
}

func (n *outputNode) Execute(ec *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	st := stateOf(ec)
	if st != nil {
		st.pos = n.tok
		if err := st.interrupted(); err != nil {
			return ec.OrigError(err, n.tok)
		}
	}
	v, perr := n.expr.Evaluate(ec)
	if perr != nil {
		return perr
	}
	x := v.Interface()
	if n.typed && st != nil && st.wantValue {
		st.value, st.captured = x, true
		return nil
	}
	w.WriteString(Text(x))
	return nil
}

// Text renders a value the way templates print it: strings as they are, nil as
// nothing, numbers in their shortest form (3.5, 42, 1e+21), booleans as
// true/false, instants in ISO-8601 UTC, maps, lists and structs as JSON.
func Text(x any) string {
	switch v := x.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case int32, int16, int8, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v)
	case float64:
		return storage.Value{Type: storage.NUMBER, V: v}.Text()
	case float32:
		return storage.Value{Type: storage.NUMBER, V: float64(v)}.Text()
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case time.Duration:
		return storage.FormatDuration(v)
	case storage.Value:
		return v.Text()
	case []byte:
		return string(v)
	case fmt.Stringer:
		return v.String()
	case error:
		return v.Error()
	}
	switch reflect.ValueOf(x).Kind() {
	case reflect.Map, reflect.Slice, reflect.Array, reflect.Struct, reflect.Pointer:
		if s, err := toJSON(x); err == nil {
			return s
		}
	}
	return fmt.Sprint(x)
}

// toJSON encodes x as compact JSON without HTML escaping.
func toJSON(x any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b.Bytes(), "\n")), nil
}

// normalize gives a typed result the types callers expect: integers as int64,
// floats as float64, inside map[string]any and []any too. Containers are copied
// only when something inside changes.
func normalize(x any) any {
	switch v := x.(type) {
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint:
		return normalizeUint(uint64(v))
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		return normalizeUint(v)
	case float32:
		return float64(v)
	case map[string]any:
		var out map[string]any
		for k, e := range v {
			n := normalize(e)
			if out == nil && !same(n, e) {
				out = make(map[string]any, len(v))
				for k2, e2 := range v {
					out[k2] = e2
				}
			}
			if out != nil {
				out[k] = n
			}
		}
		if out != nil {
			return out
		}
	case []any:
		var out []any
		for i, e := range v {
			n := normalize(e)
			if out == nil && !same(n, e) {
				out = append([]any(nil), v...)
			}
			if out != nil {
				out[i] = n
			}
		}
		if out != nil {
			return out
		}
	}
	return x
}

func normalizeUint(u uint64) any {
	if u > math.MaxInt64 {
		return float64(u)
	}
	return int64(u)
}

// same reports whether normalize left e unchanged. Containers come back as the
// same object when unchanged, so comparing their identity is enough.
func same(n, e any) bool {
	switch nv := n.(type) {
	case map[string]any:
		ev, ok := e.(map[string]any)
		return ok && reflect.ValueOf(nv).Pointer() == reflect.ValueOf(ev).Pointer()
	case []any:
		ev, ok := e.([]any)
		return ok && len(nv) == len(ev) && (len(nv) == 0 || &nv[0] == &ev[0])
	}
	return reflect.TypeOf(n) == reflect.TypeOf(e)
}

// privEval hands strictVar's already evaluated subscript to pongo2.
type privEval struct{ key string }

func (p privEval) Evaluate(ec *pongo2.ExecutionContext) (*pongo2.Value, *pongo2.Error) {
	if v, ok := ec.Private[p.key].(*pongo2.Value); ok {
		return v, nil
	}
	return pongo2.AsValue(nil), nil
}
func (p privEval) Execute(ec *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	v, _ := p.Evaluate(ec)
	w.WriteString(Text(v.Interface()))
	return nil
}
func (privEval) GetPositionToken() *pongo2.Token { return nil }
func (privEval) FilterApplied(string) bool       { return false }

// strictVar replaces pongo2's variable resolver: a name or key that does not
// exist is an error instead of an empty value, unless a default filter follows
// (lenient).
type strictVar struct {
	orig    pongo2.IEvaluator   // pongo2's own resolver, used when lenient
	steps   []pongo2.IEvaluator // one resolver per path part, see newStrictVar
	parts   []part
	tok     *pongo2.Token
	lenient bool
}

func (s *strictVar) Execute(ec *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	v, err := s.Evaluate(ec)
	if err != nil {
		return err
	}
	w.WriteString(Text(v.Interface()))
	return nil
}
func (s *strictVar) GetPositionToken() *pongo2.Token { return s.tok }
func (s *strictVar) FilterApplied(string) bool       { return false }

func (s *strictVar) Evaluate(ec *pongo2.ExecutionContext) (*pongo2.Value, *pongo2.Error) {
	st := stateOf(ec)
	if st != nil {
		st.pos = s.tok
		if err := st.interrupted(); err != nil {
			return nil, ec.OrigError(err, s.tok)
		}
	}
	first := s.parts[0].name
	if s.lenient {
		return s.orig.Evaluate(ec)
	}
	x, ok := ec.Private[first]
	if !ok {
		if x, ok = ec.Public[first]; !ok {
			return nil, s.fail(ec, "Variable '%s' is not defined.", first)
		}
	}
	var v *pongo2.Value
	var err *pongo2.Error
	if s.parts[0].call || !plain(x) {
		if v, err = s.steps[0].Evaluate(ec); err != nil {
			return nil, err
		}
	} else {
		v = pongo2.AsValue(x) // what pongo2 would find, without reflection
	}
	for k := 1; k < len(s.parts); k++ {
		p := s.parts[k]
		if v.IsNil() {
			return nil, s.fail(ec, "'%s' is null, so '%s' cannot be read.", s.path(k), s.path(k+1))
		}
		if m, ok := v.Interface().(map[string]any); ok && p.kind == partIdent && !p.call {
			// The common case, a key of a JSON-like map, read directly.
			x, found := m[p.name]
			if !found {
				return nil, s.missing(ec, k, fmt.Sprintf("key '%s'", p.name))
			}
			if plain(x) {
				v = pongo2.AsValue(x)
				continue
			}
		}
		switch p.kind {
		case partIdent:
			found, container := hasMember(v, p.name)
			if !container {
				return nil, s.fail(ec, "'%s' is %s, so '%s' cannot be read.", s.path(k), kindName(v), s.path(k+1))
			}
			if !found {
				return nil, s.missing(ec, k, fmt.Sprintf("key '%s'", p.name))
			}
		case partIndex:
			n, ok := length(v)
			if !ok {
				return nil, s.fail(ec, "'%s' is %s, not a list, so '%s' cannot be read.", s.path(k), kindName(v), s.path(k+1))
			}
			if p.index < 0 || p.index >= n {
				return nil, s.fail(ec, "'%s' is not defined: '%s' has %d items.", s.path(k+1), s.path(k), n)
			}
		case partSubscript:
			sv, err := p.sub.Evaluate(ec)
			if err != nil {
				return nil, err
			}
			if n, ok := length(v); ok {
				if i, ok := indexOf(sv); !ok || i < 0 || i >= n {
					return nil, s.fail(ec, "'%s' is not defined: '%s' has %d items and the index is %s.", s.path(k+1), s.path(k), n, clip(Text(sv.Interface())))
				}
			} else if !hasKey(v, sv) {
				return nil, s.missing(ec, k, fmt.Sprintf("key '%s'", clip(Text(sv.Interface()))))
			}
			ec.Private[subKey] = sv
		}
		ec.Private[tmpKey] = v
		v, err = s.steps[k].Evaluate(ec)
		if err != nil {
			if err.OrigError != nil && strings.Contains(err.OrigError.Error(), tmpKey) {
				// pongo2 names the variable in some messages: give the user's path.
				msg := strings.ReplaceAll(err.OrigError.Error(), tmpKey, s.path(k))
				return nil, ec.OrigError(errors.New(msg), s.tok)
			}
			return nil, err
		}
	}
	return v, nil
}

// plain reports whether pongo2 would use x as it is: not a function (which
// pongo2 calls) nor a *pongo2.Value (which it unpacks).
func plain(x any) bool {
	switch x.(type) {
	case nil, string, bool, int, int64, float64, map[string]any, []any:
		return true
	case *pongo2.Value:
		return false
	}
	return reflect.TypeOf(x).Kind() != reflect.Func
}

// missing reports that path part k does not exist, naming the task for outputs.
func (s *strictVar) missing(ec *pongo2.ExecutionContext, k int, what string) *pongo2.Error {
	if k == 1 && s.parts[0].name == "outputs" && s.parts[1].kind == partIdent {
		return s.fail(ec, "'%s' is not defined: there are no outputs of a task '%s'.", s.path(len(s.parts)), s.parts[1].name)
	}
	return s.fail(ec, "'%s' is not defined: '%s' has no %s.", s.path(k+1), s.path(k), what)
}

func (s *strictVar) fail(ec *pongo2.ExecutionContext, format string, args ...any) *pongo2.Error {
	return ec.OrigError(kvflow.Errorf(kvflow.EINVALID, format, args...), s.tok)
}

// path writes the first n parts as the template does: outputs.task.value.
func (s *strictVar) path(n int) string {
	var b []byte
	for _, p := range s.parts[:n] {
		b = append(b, p.label...)
	}
	return string(b)
}

// deref returns v's underlying value, through pointers.
func deref(v *pongo2.Value) reflect.Value {
	rv := reflect.ValueOf(v.Interface())
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		rv = rv.Elem()
	}
	return rv
}

// hasMember mirrors how pongo2 reads .name: a method, a struct field or a map
// key. container is false for values that have no members at all.
func hasMember(v *pongo2.Value, name string) (found, container bool) {
	raw := reflect.ValueOf(v.Interface())
	if raw.IsValid() && raw.MethodByName(name).IsValid() {
		return true, true
	}
	rv := deref(v)
	switch rv.Kind() {
	case reflect.Map:
		kt := rv.Type().Key()
		if kt.Kind() != reflect.String {
			return true, true // pongo2 reports its own error
		}
		return rv.MapIndex(reflect.ValueOf(name).Convert(kt)).IsValid(), true
	case reflect.Struct:
		return rv.FieldByName(name).IsValid(), true
	}
	return false, false
}

// kindName describes a value's kind for messages.
func kindName(v *pongo2.Value) string {
	rv := deref(v)
	switch rv.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map:
		return "a map"
	case reflect.Func:
		return "a function"
	}
	return "a " + rv.Kind().String()
}

// hasKey mirrors pongo2's [subscript] on maps and structs.
func hasKey(v *pongo2.Value, key *pongo2.Value) bool {
	rv := deref(v)
	switch rv.Kind() {
	case reflect.Map:
		kv := reflect.ValueOf(key.Interface())
		if !kv.IsValid() || !kv.Type().AssignableTo(rv.Type().Key()) {
			return false
		}
		return rv.MapIndex(kv).IsValid()
	case reflect.Struct:
		return rv.FieldByName(key.String()).IsValid()
	}
	return true
}

// indexOf reads a list index the way pongo2 does, refusing what is not a number.
func indexOf(sv *pongo2.Value) (int, bool) {
	switch {
	case sv.IsInteger():
		return sv.Integer(), true
	case sv.IsFloat():
		return sv.Integer(), sv.Float() == math.Trunc(sv.Float())
	case sv.IsString():
		i, err := strconv.Atoi(sv.String())
		return i, err == nil
	}
	return 0, false
}

// length returns the length of a list or string value.
func length(v *pongo2.Value) (int, bool) {
	rv := deref(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.String:
		return rv.Len(), true
	}
	return 0, false
}

// clip shortens text quoted in a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
