package template

import (
	"github.com/kvflow/kvflow/storage"
)

// Taint: an expression that read a sensitive value through kv() is tainted,
// and its result's text is added to the storage.Secrets of the render's
// context (storage.WithSecrets), next to the raw value the store added. So
// `{{ kv('pw') | upper }}` is masked in a log line although the upper-cased
// text is not the stored one. A render through pongo2's tags (for, set…)
// that read one also adds its whole output, since a value set in one tag may
// be printed by another.

// minDerived is the shortest derived text recorded: a one-character result
// such as a length would mask that character everywhere. Raw values are
// recorded whatever their length.
const minDerived = 4

// evalTainting evaluates x and records its result when it read a
// sensitive value. The flag stays set for the rest of the render.
func (st *renderState) evalTainting(ev *evaluator, x *expr) (any, error) {
	before := st.tainted
	st.tainted = false
	v, err := ev.eval(x)
	if st.tainted {
		st.taint(v)
	}
	st.tainted = st.tainted || before
	return v, err
}

// taint records v's text and, for a map or list, its leaves.
func (st *renderState) taint(v any) {
	sec := storage.SecretsFrom(st.ctx)
	if sec == nil {
		return
	}
	var add func(x any)
	add = func(x any) {
		switch t := x.(type) {
		case nil, bool:
			return
		case map[string]any:
			for _, e := range t {
				add(e)
			}
		case []any:
			for _, e := range t {
				add(e)
			}
		}
		if text := Text(x); len(text) >= minDerived {
			sec.Add(text)
		}
	}
	add(v)
}
