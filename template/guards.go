package template

import (
	"math"
	"reflect"

	"github.com/flosch/pongo2/v6"
	"github.com/kvflow/kvflow"
)

// Guards keep one render's memory and time bounded: pongo2 has filters whose
// output grows with an argument, string concatenation, and loops.

// checkNode starts every block body: it counts steps against MaxSteps and
// stops the render when the context is done.
type checkNode struct{}

func (checkNode) Execute(ec *pongo2.ExecutionContext, _ pongo2.TemplateWriter) *pongo2.Error {
	st := stateOf(ec)
	if st == nil {
		return nil
	}
	st.steps++
	if st.steps > MaxSteps {
		return ec.OrigError(kvflow.Errorf(kvflow.ETOOLARGE, "Template runs more than %d loop iterations and blocks.", MaxSteps), st.pos)
	}
	if st.steps&1023 == 0 || st.overflow {
		if err := st.interrupted(); err != nil {
			return ec.OrigError(err, st.pos)
		}
	}
	return nil
}

// sizeGuard wraps an expression that can build strings and refuses results
// over MaxOutput bytes.
type sizeGuard struct{ inner pongo2.IEvaluator }

func (g *sizeGuard) Evaluate(ec *pongo2.ExecutionContext) (*pongo2.Value, *pongo2.Error) {
	v, err := g.inner.Evaluate(ec)
	if err != nil {
		return nil, err
	}
	if v.IsString() && len(v.String()) > MaxOutput {
		return nil, ec.OrigError(tooLong(), g.inner.GetPositionToken())
	}
	return v, nil
}
func (g *sizeGuard) Execute(ec *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	v, err := g.Evaluate(ec)
	if err != nil {
		return err
	}
	w.WriteString(Text(v.Interface()))
	return nil
}
func (g *sizeGuard) GetPositionToken() *pongo2.Token { return g.inner.GetPositionToken() }
func (g *sizeGuard) FilterApplied(name string) bool  { return g.inner.FilterApplied(name) }

func tooLong() error {
	return kvflow.Errorf(kvflow.ETOOLARGE, "A value built by the template is over the limit of %d bytes.", MaxOutput)
}

// guardFilter wraps a pongo2 filter: arguments that would make an output of
// unbounded size are refused first, string results over MaxOutput after, and
// default follows Pebble (only null or empty takes the default).
func guardFilter(name string, orig pongo2.FilterFunction) pongo2.FilterFunction {
	refuse := func(format string, args ...any) (*pongo2.Value, *pongo2.Error) {
		return nil, &pongo2.Error{Sender: "filter:" + name, OrigError: kvflow.Errorf(kvflow.EINVALID, format, args...)}
	}
	var check func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error)
	switch name {
	case "default":
		return func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
			if isEmpty(in) {
				return param, nil
			}
			return in, nil
		}
	case "center", "ljust", "rjust":
		check = func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
			if param.Integer() > MaxOutput || param.Integer() < 0 {
				return refuse("The '%s' filter width must be between 0 and %d.", name, MaxOutput)
			}
			return nil, nil
		}
	case "floatformat":
		check = func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
			if !param.IsNil() && math.Abs(float64(param.Integer())) > 100 {
				return refuse("The 'floatformat' filter takes at most 100 decimals.")
			}
			return nil, nil
		}
	case "make_list", "split":
		check = func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
			if in.IsString() && len(in.String()) > MaxListInput {
				return refuse("The '%s' filter takes strings of at most %d bytes.", name, MaxListInput)
			}
			return nil, nil
		}
	case "join":
		check = func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
			if !in.CanSlice() {
				return nil, nil
			}
			n, total := in.Len(), 0
			sep := len(param.String())
			for i := 0; i < n; i++ {
				total += len(in.Index(i).String()) + sep
				if total > MaxOutput {
					return nil, &pongo2.Error{Sender: "filter:join", OrigError: tooLong()}
				}
			}
			return nil, nil
		}
	}
	return func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
		if check != nil {
			if _, err := check(in, param); err != nil {
				return nil, err
			}
		}
		out, err := orig(in, param)
		if err != nil {
			return nil, err
		}
		if out != nil && out.IsString() && len(out.String()) > MaxOutput {
			return nil, &pongo2.Error{Sender: "filter:" + name, OrigError: tooLong()}
		}
		return out, nil
	}
}

// isEmpty is Pebble's test for default: null, an empty string, list or map.
// false and 0 are values, not empty.
func isEmpty(v *pongo2.Value) bool {
	if v.IsNil() {
		return true
	}
	rv := deref(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return rv.Len() == 0
	}
	return false
}
