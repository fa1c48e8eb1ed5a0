package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flosch/pongo2/v6"
	"github.com/kvflow/kvflow"
)

// evalError is a failure at an offset of the template source. undefined
// marks a name, key or index that does not exist (or a read through null):
// the failures that ??, is defined and default turn into null.
type evalError struct {
	pos       int
	code      string
	msg       string
	cause     error
	undefined bool
}

func (e *evalError) Error() string { return e.msg }

// evaluator evaluates expressions of one render.
type evaluator struct {
	st   *renderState
	data Context                  // the render's data
	ec   *pongo2.ExecutionContext // inside pongo2 tags: loop and set variables; nil for a lone expression
	n    int                      // evaluations, for the deadline check
}

func (ev *evaluator) fail(at *expr, format string, args ...any) error {
	return &evalError{pos: at.pos, code: kvflow.EINVALID, msg: fmt.Sprintf(format, args...)}
}

func (ev *evaluator) undefined(at *expr, format string, args ...any) error {
	return &evalError{pos: at.pos, code: kvflow.EINVALID, msg: fmt.Sprintf(format, args...), undefined: true}
}

// wrapErr places an error from a function or filter at e.
func wrapErr(at *expr, err error) error {
	var ee *evalError
	if errors.As(err, &ee) {
		return err
	}
	return &evalError{pos: at.pos, code: kvflow.ErrorCode(err), msg: kvflow.ErrorMessage(err), cause: err}
}

func isUndefined(err error) bool {
	var ee *evalError
	return errors.As(err, &ee) && ee.undefined
}

// lookup finds a name: pongo2's private context (loop and set variables)
// first, then the data, then the engine's constants.
func (ev *evaluator) lookup(name string) (any, bool) {
	if ev.ec != nil {
		if name != "pongo2" {
			if v, ok := ev.ec.Private[name]; ok {
				if pv, ok := v.(*pongo2.Value); ok {
					return pv.Interface(), true // loop and set variables
				}
				return v, true
			}
		}
		if name == "loop" {
			if info, ok := ev.ec.Private["forloop"]; ok {
				return loopInfo(info), true
			}
		}
	}
	v, ok := ev.data[name]
	return v, ok
}

// readScalar taints the render when a variable's scalar value holds a
// sensitive text (see read). Maps and lists are looked into only when a
// filter takes them: a name such as outputs reaches every task's outputs.
func (ev *evaluator) readScalar(v any) {
	switch v.(type) {
	case map[string]any, []any:
	default:
		ev.st.read(v)
	}
}

// loopInfo gives Pebble's loop variable from pongo2's forloop.
func loopInfo(info any) map[string]any {
	rv := reflect.Indirect(reflect.ValueOf(info))
	if rv.Kind() != reflect.Struct {
		return nil
	}
	get := func(name string) any {
		f := rv.FieldByName(name)
		if !f.IsValid() {
			return nil
		}
		return f.Interface()
	}
	c0, _ := get("Counter0").(int)
	rc0, _ := get("Revcounter0").(int)
	return map[string]any{
		"index": int64(c0), "revindex": int64(rc0), "length": int64(c0 + rc0 + 1),
		"first": get("First"), "last": get("Last"),
	}
}

// eval evaluates e.
func (ev *evaluator) eval(e *expr) (any, error) {
	if ev.n++; ev.n&63 == 0 {
		if err := ev.st.interrupted(); err != nil {
			return nil, &evalError{pos: e.pos, code: kvflow.ErrorCode(err), msg: kvflow.ErrorMessage(err), cause: err}
		}
	}
	switch e.kind {
	case eLit:
		return e.val, nil
	case eIdent:
		v, ok := ev.lookup(e.name)
		if !ok {
			return nil, ev.undefined(e, "Variable '%s' is not defined.", e.name)
		}
		ev.readScalar(v)
		return v, nil
	case eAttr:
		base, err := ev.eval(e.a)
		if err != nil {
			return nil, err
		}
		v, err := ev.member(e, base, e.name)
		ev.readScalar(v)
		return v, err
	case eIndex:
		base, err := ev.eval(e.a)
		if err != nil {
			return nil, err
		}
		sub, err := ev.eval(e.b)
		if err != nil {
			return nil, err
		}
		v, err := ev.index(e, base, sub)
		ev.readScalar(v)
		return v, err
	case eCall:
		return ev.call(e)
	case eFilter:
		return ev.filter(e)
	case eTest:
		return ev.test(e)
	case eUnary:
		a, err := ev.eval(e.a)
		if err != nil {
			return nil, err
		}
		switch e.name {
		case "not":
			return !truthy(a), nil
		case "-":
			if n, ok := a.(json.Number); ok { // exact: only the sign changes
				if s, neg := strings.CutPrefix(string(n), "-"); neg {
					return json.Number(s), nil
				}
				return "-" + n, nil
			}
			return arith(e, "-", int64(0), a)
		}
		if _, _, ok := number(a); !ok {
			return nil, ev.fail(e, "Unary '+' needs a number, not %s.", kindOf(a))
		}
		return a, nil
	case eAnd:
		a, err := ev.eval(e.a)
		if err != nil || !truthy(a) {
			return false, err
		}
		b, err := ev.eval(e.b)
		return truthy(b), err
	case eOr:
		a, err := ev.eval(e.a)
		if err != nil {
			return nil, err
		}
		if truthy(a) {
			return true, nil
		}
		b, err := ev.eval(e.b)
		return truthy(b), err
	case eCoalesce, eUndef:
		a, err := ev.eval(e.a)
		if err != nil && !isUndefined(err) {
			return nil, err
		}
		if err == nil && (a != nil || e.kind == eUndef) {
			return a, nil
		}
		return ev.eval(e.b)
	case eCond:
		c, err := ev.eval(e.a)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return ev.eval(e.b)
		}
		return ev.eval(e.c)
	case eList:
		out := make([]any, len(e.args))
		for i, a := range e.args {
			v, err := ev.eval(a)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case eMap:
		out := make(map[string]any, len(e.args))
		for i, k := range e.keys {
			kv, err := ev.eval(k)
			if err != nil {
				return nil, err
			}
			v, err := ev.eval(e.args[i])
			if err != nil {
				return nil, err
			}
			out[Text(kv)] = v
		}
		return out, nil
	case eRaise:
		msg := "An expression raised an error."
		if len(e.args) > 0 {
			v, err := ev.eval(e.args[0])
			if err != nil {
				return nil, err
			}
			msg = sentence(Text(v))
		}
		return nil, ev.fail(e, "%s", msg)
	case eBinary:
		return ev.binary(e)
	}
	return nil, ev.fail(e, "Unknown expression.")
}

func (ev *evaluator) binary(e *expr) (any, error) {
	a, err := ev.eval(e.a)
	if err != nil {
		return nil, err
	}
	b, err := ev.eval(e.b)
	if err != nil {
		return nil, err
	}
	switch e.name {
	case "~":
		s := Text(a) + Text(b)
		if len(s) > MaxOutput {
			return nil, wrapErr(e, tooLong())
		}
		return s, nil
	case "+":
		if as, ok := a.(string); ok {
			// pongo2 concatenates strings with +; kvflow keeps that.
			s := as + Text(b)
			if len(s) > MaxOutput {
				return nil, wrapErr(e, tooLong())
			}
			return s, nil
		}
		if al, ok := toList(a); ok {
			if bl, ok := toList(b); ok {
				return append(append(make([]any, 0, len(al)+len(bl)), al...), bl...), nil
			}
		}
		return arith(e, "+", a, b)
	case "-", "*", "/", "%":
		return arith(e, e.name, a, b)
	case "==":
		return equal(a, b), nil
	case "!=":
		return !equal(a, b), nil
	case "<", ">", "<=", ">=":
		c, ok := compareExact(a, b)
		if !ok {
			c, ok = compare(a, b)
		}
		if !ok {
			return nil, ev.fail(e, "Cannot compare %s with %s.", kindOf(a), kindOf(b))
		}
		switch e.name {
		case "<":
			return c < 0, nil
		case ">":
			return c > 0, nil
		case "<=":
			return c <= 0, nil
		}
		return c >= 0, nil
	case "contains":
		return contains(a, b), nil
	case "in":
		return contains(b, a), nil
	case "not in":
		return !contains(b, a), nil
	case "..":
		from, ok1 := toInt(a)
		to, ok2 := toInt(b)
		if !ok1 || !ok2 {
			return nil, ev.fail(e, "A range needs whole numbers, not %s and %s.", kindOf(a), kindOf(b))
		}
		return makeRange(e, from, to, 1)
	}
	return nil, ev.fail(e, "Unknown operator '%s'.", e.name)
}

// makeRange lists from..to (inclusive) by step, within MaxSteps items.
func makeRange(at *expr, from, to, step int64) (any, error) {
	if step == 0 {
		return nil, &evalError{pos: at.pos, code: kvflow.EINVALID, msg: "A range step cannot be 0."}
	}
	n := (to-from)/step + 1
	if n < 0 {
		n = 0
	}
	if n > MaxSteps {
		return nil, &evalError{pos: at.pos, code: kvflow.ETOOLARGE, msg: fmt.Sprintf("A range of %d items is over the limit of %d.", n, MaxSteps)}
	}
	out := make([]any, 0, n)
	for i := int64(0); i < n; i++ {
		out = append(out, from+i*step)
	}
	return out, nil
}

// member reads base.name.
func (ev *evaluator) member(e *expr, base any, name string) (any, error) {
	if base == nil {
		return nil, ev.undefined(e, "'%s' is null, so '%s' cannot be read.", label(e.a), label(e))
	}
	if m, ok := base.(map[string]any); ok {
		v, found := m[name]
		if !found {
			return nil, ev.missing(e, fmt.Sprintf("key '%s'", name))
		}
		return v, nil
	}
	rv := reflect.Indirect(reflect.ValueOf(base))
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		v := rv.MapIndex(reflect.ValueOf(name).Convert(rv.Type().Key()))
		if !v.IsValid() {
			return nil, ev.missing(e, fmt.Sprintf("key '%s'", name))
		}
		return v.Interface(), nil
	case reflect.Struct:
		f := rv.FieldByName(name)
		if !f.IsValid() || !f.CanInterface() {
			return nil, ev.missing(e, fmt.Sprintf("field '%s'", name))
		}
		return f.Interface(), nil
	case reflect.Slice, reflect.Array:
		return nil, ev.undefined(e, "'%s' is a list, so '%s' cannot be read.", label(e.a), label(e))
	}
	return nil, ev.undefined(e, "'%s' is %s, so '%s' cannot be read.", label(e.a), kindOf(base), label(e))
}

// missing reports that e (a.name or a[key]) does not exist.
func (ev *evaluator) missing(e *expr, what string) error {
	if e.a.kind == eIdent && e.a.name == "outputs" {
		if e.kind == eAttr {
			return ev.undefined(e, "'%s' is not defined: there are no outputs of a task '%s'.", outerLabel(e), e.name)
		}
	}
	return ev.undefined(e, "'%s' is not defined: '%s' has no %s.", label(e), label(e.a), what)
}

// outerLabel is the label used for a missing task: the whole path is not
// known here, so the task's part is given.
func outerLabel(e *expr) string { return label(e) }

// index reads base[sub].
func (ev *evaluator) index(e *expr, base, sub any) (any, error) {
	if base == nil {
		return nil, ev.undefined(e, "'%s' is null, so '%s' cannot be read.", label(e.a), label(e))
	}
	if l, ok := toList(base); ok {
		i, ok := toIndex(sub)
		if !ok {
			if e.name == "." {
				return nil, ev.undefined(e, "'%s' is a list, so '%s' cannot be read.", label(e.a), label(e))
			}
			return nil, ev.fail(e, "A list index must be a whole number, not %s.", kindOf(sub))
		}
		if i < 0 || i >= int64(len(l)) {
			if e.name == "." {
				return nil, ev.undefined(e, "'%s' is not defined: '%s' has %d items.", label(e), label(e.a), len(l))
			}
			return nil, ev.undefined(e, "'%s' is not defined: '%s' has %d items and the index is %s.", label(e), label(e.a), len(l), kvflow.Clip(Text(sub)))
		}
		return l[i], nil
	}
	switch rv := reflect.Indirect(reflect.ValueOf(base)); rv.Kind() {
	case reflect.Map, reflect.Struct:
		if e.name == "." {
			return nil, ev.undefined(e, "'%s' is a map, not a list, so '%s' cannot be read.", label(e.a), label(e))
		}
		return ev.member(e, base, Text(sub))
	case reflect.String:
		s := rv.String()
		i, ok := toIndex(sub)
		if !ok || i < 0 || i >= int64(len(s)) {
			return nil, ev.undefined(e, "'%s' is not defined: '%s' has %d characters.", label(e), label(e.a), len(s))
		}
		return s[i : i+1], nil
	}
	return nil, ev.undefined(e, "'%s' is %s, so '%s' cannot be read.", label(e.a), kindOf(base), label(e))
}

func toIndex(v any) (int64, bool) {
	switch n := v.(type) {
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	}
	return toInt(v)
}

// truthy is Pebble's truth: false, null, 0, "" and empty lists or maps are false.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case int64:
		return x != 0
	case float64:
		return x != 0
	case int:
		return x != 0
	}
	if i, f, ok := number(v); ok {
		return i != 0 || f != 0
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.Array:
		return rv.Len() > 0
	case reflect.Pointer:
		return !rv.IsNil()
	}
	return true
}

// number reads a Go number: (i, 0, true) for whole types, (0, f, true) with
// f set for floats. The second form is told apart by isFloat.
func number(v any) (int64, float64, bool) {
	switch n := v.(type) {
	case int64:
		return n, 0, true
	case int:
		return int64(n), 0, true
	case float64:
		return 0, n, true
	case int32:
		return int64(n), 0, true
	case int16:
		return int64(n), 0, true
	case int8:
		return int64(n), 0, true
	case uint8:
		return int64(n), 0, true
	case uint16:
		return int64(n), 0, true
	case uint32:
		return int64(n), 0, true
	case uint:
		if uint64(n) > math.MaxInt64 {
			return 0, float64(n), true
		}
		return int64(n), 0, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, float64(n), true
		}
		return int64(n), 0, true
	case float32:
		return 0, float64(n), true
	}
	return 0, 0, false
}

func isFloat(v any) bool {
	switch v.(type) {
	case float64, float32:
		return true
	}
	if u, ok := v.(uint64); ok && u > math.MaxInt64 {
		return true
	}
	return false
}

// toFloat reads any number as a float64.
func toFloat(v any) (float64, bool) {
	i, f, ok := number(v)
	if !ok {
		return 0, false
	}
	if isFloat(v) {
		return f, true
	}
	return float64(i), true
}

// toInt reads a whole number.
func toInt(v any) (int64, bool) {
	i, f, ok := number(v)
	if !ok {
		return 0, false
	}
	if isFloat(v) {
		if f != math.Trunc(f) || math.Abs(f) > 1<<62 {
			return 0, false
		}
		return int64(f), true
	}
	return i, true
}

// exactOnly refuses to compute with a NUMBER beyond int64 and float64 (a
// json.Number): printed or passed whole it keeps every digit, computed with
// it would not.
func exactOnly(at *expr, op string, a, b any) error {
	for _, x := range []any{a, b} {
		if n, ok := x.(json.Number); ok {
			return &evalError{pos: at.pos, code: kvflow.EINVALID, msg: fmt.Sprintf("Templates cannot compute '%s' exactly with %s, a number beyond 64-bit integers and float64: use it whole ({{ kv('key') }}), or change it with io.kvflow.kv.Increment, which is exact.", op, kvflow.Clip(string(n)))}
		}
	}
	return nil
}

// compareExact compares two numbers one of which is beyond int64 and
// float64 (a json.Number), exactly; ok is false for anything else.
func compareExact(a, b any) (int, bool) {
	_, aBig := a.(json.Number)
	_, bBig := b.(json.Number)
	if !aBig && !bBig {
		return 0, false
	}
	ra, aok := ratOf(a)
	rb, bok := ratOf(b)
	if !aok || !bok {
		return 0, false
	}
	return ra.Cmp(rb), true
}

// ratOf is a number's exact value.
func ratOf(x any) (*big.Rat, bool) {
	if n, ok := x.(json.Number); ok {
		return new(big.Rat).SetString(string(n))
	}
	i, f, ok := number(x)
	switch {
	case !ok:
		return nil, false
	case isFloat(x):
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, false
		}
		return new(big.Rat).SetFloat64(f), true
	}
	return new(big.Rat).SetInt64(i), true
}

// arith computes a op b on numbers: whole numbers stay whole (Pebble's long
// arithmetic, so 10 / 4 is 2), anything else is a float.
func arith(at *expr, op string, a, b any) (any, error) {
	if err := exactOnly(at, op, a, b); err != nil {
		return nil, err
	}
	ai, _, aok := number(a)
	bi, _, bok := number(b)
	if !aok || !bok {
		return nil, &evalError{pos: at.pos, code: kvflow.EINVALID, msg: fmt.Sprintf("'%s' needs numbers, not %s and %s.", op, kindOf(a), kindOf(b))}
	}
	if !isFloat(a) && !isFloat(b) {
		switch op {
		case "+":
			if r := ai + bi; (r > ai) == (bi > 0) {
				return r, nil
			}
		case "-":
			if r := ai - bi; (r < ai) == (bi > 0) {
				return r, nil
			}
		case "*":
			if ai == 0 || bi == 0 {
				return int64(0), nil
			}
			if r := ai * bi; r/bi == ai && !(ai == -1 && bi == math.MinInt64) && !(bi == -1 && ai == math.MinInt64) {
				return r, nil
			}
		case "/", "%":
			if bi == 0 {
				return nil, &evalError{pos: at.pos, code: kvflow.EINVALID, msg: "The template failed: division by zero."}
			}
			if ai == math.MinInt64 && bi == -1 {
				if op == "%" {
					return int64(0), nil
				}
				break
			}
			if op == "/" {
				return ai / bi, nil
			}
			return ai % bi, nil
		}
		// Whole numbers whose result passes int64: a float would drop digits.
		return nil, &evalError{pos: at.pos, code: kvflow.EINVALID, msg: fmt.Sprintf("Templates cannot compute '%s' exactly: the result of %d %s %d is beyond 64-bit integers; change a counter with io.kvflow.kv.Increment, which is exact.", op, ai, op, bi)}
	}
	af, _ := toFloat(a)
	bf, _ := toFloat(b)
	switch op {
	case "+":
		return af + bf, nil
	case "-":
		return af - bf, nil
	case "*":
		return af * bf, nil
	case "/":
		if bf == 0 {
			return nil, &evalError{pos: at.pos, code: kvflow.EINVALID, msg: "The template failed: division by zero."}
		}
		return af / bf, nil
	}
	if bf == 0 {
		return nil, &evalError{pos: at.pos, code: kvflow.EINVALID, msg: "The template failed: division by zero."}
	}
	return math.Mod(af, bf), nil
}

// equal compares values: numbers by value (1 == 1.0), the rest deeply.
func equal(a, b any) bool {
	if af, ok := toFloat(a); ok {
		if bf, ok := toFloat(b); ok {
			ai, aw := toInt(a)
			bi, bw := toInt(b)
			if aw && bw {
				return ai == bi
			}
			return af == bf
		}
		return false
	}
	if at, ok := a.(time.Time); ok {
		bt, ok := b.(time.Time)
		return ok && at.Equal(bt)
	}
	switch a.(type) {
	case nil, string, bool:
		return a == b
	}
	return reflect.DeepEqual(normalize(a), normalize(b))
}

// compare orders numbers, strings and instants.
func compare(a, b any) (int, bool) {
	if af, ok := toFloat(a); ok {
		bf, ok := toFloat(b)
		if !ok {
			return 0, false
		}
		ai, aw := toInt(a)
		bi, bw := toInt(b)
		switch {
		case aw && bw && ai < bi, !(aw && bw) && af < bf:
			return -1, true
		case aw && bw && ai > bi, !(aw && bw) && af > bf:
			return 1, true
		}
		return 0, true
	}
	if as, ok := a.(string); ok {
		bs, ok := b.(string)
		return strings.Compare(as, bs), ok
	}
	if at, ok := a.(time.Time); ok {
		bt, ok := b.(time.Time)
		return at.Compare(bt), ok
	}
	return 0, false
}

// contains is Pebble's contains: an item of a list, a key of a map, a
// substring of a string; a list on the right must be contained whole.
func contains(container, item any) bool {
	switch c := container.(type) {
	case string:
		s, ok := item.(string)
		return ok && strings.Contains(c, s)
	case map[string]any:
		_, ok := c[Text(item)]
		return ok
	}
	if l, ok := toList(container); ok {
		if il, ok := toList(item); ok {
			for _, x := range il {
				if !contains(l, x) {
					return false
				}
			}
			return true
		}
		for _, x := range l {
			if equal(x, item) {
				return true
			}
		}
		return false
	}
	rv := reflect.ValueOf(container)
	if rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String {
		return rv.MapIndex(reflect.ValueOf(Text(item)).Convert(rv.Type().Key())).IsValid()
	}
	return false
}

// toList reads a list of any element type.
func toList(v any) ([]any, bool) {
	switch l := v.(type) {
	case []any:
		return l, true
	case []string:
		out := make([]any, len(l))
		for i, s := range l {
			out[i] = s
		}
		return out, true
	case nil, string, map[string]any:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	if rv.Type().Elem().Kind() == reflect.Uint8 {
		return nil, false // []byte is text
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

// toMap reads a map with string keys.
func toMap(v any) (map[string]any, bool) {
	if m, ok := v.(map[string]any); ok {
		return m, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	out := make(map[string]any, rv.Len())
	it := rv.MapRange()
	for it.Next() {
		out[it.Key().String()] = it.Value().Interface()
	}
	return out, true
}

// sortedMapKeys lists a map's keys in order.
func sortedMapKeys(m map[string]any) []any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return out
}

// kindOf describes a value for messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date"
	}
	if _, _, ok := number(v); ok {
		return "a number"
	}
	if _, ok := toList(v); ok {
		return "a list"
	}
	switch reflect.Indirect(reflect.ValueOf(v)).Kind() {
	case reflect.Map, reflect.Struct:
		return "a map"
	case reflect.Func:
		return "a function"
	}
	return fmt.Sprintf("a %T", v)
}
