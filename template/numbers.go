package template

import (
	"encoding/json"
	"reflect"

	"github.com/flosch/pongo2/v6"
	"github.com/kvflow/kvflow"
)

// A NUMBER beyond int64 or float64 (12345678901234567890) reaches templates
// as a json.Number: printed or passed whole it keeps every digit, but pongo2's
// arithmetic would treat it as a string (+ concatenates) or as 0. So an
// operand of +, -, *, /, %, ^, < or > that is such a number is refused with a
// clear error rather than computed wrongly.

// bigOperand wraps one operand of an arithmetic or ordering expression.
type bigOperand struct {
	inner pongo2.IEvaluator
	op    string
}

func (g *bigOperand) Evaluate(ec *pongo2.ExecutionContext) (*pongo2.Value, *pongo2.Error) {
	v, err := g.inner.Evaluate(ec)
	if err != nil {
		return nil, err
	}
	if n, ok := v.Interface().(json.Number); ok {
		return nil, ec.OrigError(kvflow.Errorf(kvflow.EINVALID,
			"Templates cannot compute '%s' exactly with a NUMBER of %d characters, beyond 64-bit integers and float64: use it whole ({{ kv('key') }}), or change it with io.kvflow.kv.Increment, which is exact.",
			g.op, len(n)), g.inner.GetPositionToken())
	}
	return v, nil
}
func (g *bigOperand) Execute(ec *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	v, err := g.Evaluate(ec)
	if err != nil {
		return err
	}
	w.WriteString(Text(v.Interface()))
	return nil
}
func (g *bigOperand) GetPositionToken() *pongo2.Token { return g.inner.GetPositionToken() }
func (g *bigOperand) FilterApplied(name string) bool  { return g.inner.FilterApplied(name) }

// guardBigOperands wraps the operands of a pongo2 simpleExpression, term,
// power or relationalExpression (e, a pointer) that computes with numbers.
func guardBigOperands(e reflect.Value) {
	s := e.Elem()
	var first, second, tok string
	switch s.Type().Name() {
	case "simpleExpression":
		first, second, tok = "term1", "term2", "opToken"
		if field(s, "negativeSign").Bool() {
			wrapOperand(field(s, first), "-")
		}
	case "term":
		first, second, tok = "factor1", "factor2", "opToken"
	case "power":
		first, second = "power1", "power2"
	case "relationalExpression":
		first, second, tok = "expr1", "expr2", "opToken"
	default:
		return
	}
	op := "^"
	if t, ok := field(s, tok).Interface().(*pongo2.Token); tok != "" && ok && t != nil {
		op = t.Val
	}
	switch op {
	case "==", "!=", "<>", "in", "not in":
		return // equality of exact texts and membership stay right
	}
	if f := field(s, second); f.IsValid() && !f.IsNil() {
		wrapOperand(field(s, first), op)
		wrapOperand(f, op)
	}
}

func wrapOperand(f reflect.Value, op string) {
	if !f.IsValid() || f.IsNil() {
		return
	}
	if _, done := f.Interface().(*bigOperand); done {
		return
	}
	inner, ok := f.Interface().(pongo2.IEvaluator)
	g := &bigOperand{inner: inner, op: op}
	if ok && reflect.TypeOf(g).AssignableTo(f.Type()) {
		f.Set(reflect.ValueOf(g))
	}
}
