package template

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/flosch/pongo2/v6"
	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// renderState is one render's data that the evaluator needs.
type renderState struct {
	ctx      context.Context
	engine   *Engine
	c        *compiled
	data     Context
	ns       string // the flow's namespace, for kv()
	deadline time.Time
	limit    time.Duration // the engine's render time limit, for messages
	steps    int           // loop iterations run, against MaxSteps
	overflow bool
	depth    int   // render() nesting
	err      error // the evaluator's error, placed in the source
	// tainted: what is being evaluated read a sensitive value, so its
	// result is recorded in sec, the context's storage.Secrets (see taint).
	tainted bool
	sec     *storage.Secrets
}

// interrupted returns an error when the render must stop: the output is over
// its limit, the context is done, or the render has run out of time.
func (st *renderState) interrupted() error {
	if st.overflow {
		return kvflow.Errorf(kvflow.ETOOLARGE, "Template output is over the limit of %d bytes.", MaxOutput)
	}
	if err := st.ctx.Err(); err != nil {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Template rendering stopped: %w.", err)
	}
	if time.Now().After(st.deadline) {
		return kvflow.Errorf(kvflow.ETOOLARGE, "Template rendering took longer than %s and was stopped: make the template do less work (loops, large strings).", st.limit)
	}
	return nil
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

// The evaluator's entry points in pongo2's context. pongo2 passes the
// execution context first, which holds the loop and set variables.

func evalIn(ec *pongo2.ExecutionContext, n *pongo2.Value) (any, *renderState, error) {
	st, _ := ec.Public[ctxKey].(*renderState)
	if st == nil || !n.IsInteger() || n.Integer() < 0 || n.Integer() >= len(st.c.t.exprs) {
		return nil, nil, kvflow.Errorf(kvflow.EINTERNAL, "Template functions are unavailable outside a kvflow render.")
	}
	ev := &evaluator{st: st, data: st.data, ec: ec}
	v, err := st.evalTainting(ev, st.c.t.exprs[n.Integer()])
	if err != nil && st.err == nil {
		st.err = err
	}
	return v, st, err
}

func evalFunc(ec *pongo2.ExecutionContext, n *pongo2.Value) (*pongo2.Value, error) {
	v, _, err := evalIn(ec, n)
	if err != nil {
		return nil, err
	}
	return pongo2.AsSafeValue(v), nil
}

// eachFunc gives a one-variable loop its items; a map's are its entries
// {key, value} in key order, as in Pebble.
func eachFunc(ec *pongo2.ExecutionContext, n *pongo2.Value) (*pongo2.Value, error) {
	v, _, err := evalIn(ec, n)
	if err != nil {
		return nil, err
	}
	if _, isList := toList(v); !isList {
		if m, ok := toMap(v); ok {
			keys := sortedMapKeys(m)
			entries := make([]any, len(keys))
			for i, k := range keys {
				entries[i] = map[string]any{"key": k, "value": m[k.(string)]}
			}
			v = entries
		}
	}
	return pongo2.AsSafeValue(v), nil
}

// pairsFunc gives a two-variable loop (pongo2's for k, v in ... sorted) a map:
// a list becomes index → item, so sorting keeps its order.
func pairsFunc(ec *pongo2.ExecutionContext, n *pongo2.Value) (*pongo2.Value, error) {
	v, _, err := evalIn(ec, n)
	if err != nil {
		return nil, err
	}
	if l, ok := toList(v); ok {
		m := make(map[int]any, len(l))
		for i, x := range l {
			m[i] = x
		}
		v = m
	}
	return pongo2.AsSafeValue(v), nil
}

func boolFunc(ec *pongo2.ExecutionContext, n *pongo2.Value) (*pongo2.Value, error) {
	v, _, err := evalIn(ec, n)
	if err != nil {
		return nil, err
	}
	return pongo2.AsValue(truthy(v)), nil
}

// stepFunc starts every loop iteration ({% kvflow_s %}): it counts steps
// against MaxSteps and stops the render when its time is up or its context
// is done.
func stepFunc(ec *pongo2.ExecutionContext) (*pongo2.Value, error) {
	st, _ := ec.Public[ctxKey].(*renderState)
	if st == nil {
		return nil, kvflow.Errorf(kvflow.EINTERNAL, "Template functions are unavailable outside a kvflow render.")
	}
	st.steps++
	var err error
	if st.steps > MaxSteps {
		err = kvflow.Errorf(kvflow.ETOOLARGE, "Template runs more than %d loop iterations.", MaxSteps)
	} else if st.steps&15 == 0 {
		err = st.interrupted() // the deadline, every 16 steps
	}
	if err != nil {
		if st.err == nil {
			st.err = err
		}
		return nil, err
	}
	return pongo2.AsSafeValue(""), nil
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
		return v.Format(time.RFC3339Nano) // in its own offset, as Kestra prints a zoned date
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

func tooLong() error {
	return kvflow.Errorf(kvflow.ETOOLARGE, "A value built by the template is over the limit of %d bytes.", MaxOutput)
}
