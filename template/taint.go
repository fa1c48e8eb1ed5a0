package template

// Taint: an expression that read a sensitive value — through kv(), or a
// variable holding a recorded text, such as a Get task's output — is
// tainted, and its result's text is added to the storage.Secrets of the
// render's context (storage.WithSecrets), next to the raw value the store
// added. So `{{ kv('pw') | upper }}` and `{{ outputs.get.value | upper }}`
// are masked in a log line although the upper-cased text is not the stored
// one. A render through pongo2's tags (for, set…) that read one also adds
// its whole output, since a value set in one tag may be printed by another.

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
	sec := st.sec
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

// read taints the render when v, read from a variable or given to a filter,
// holds a recorded text: a scalar whose text is or contains one, or a map or
// list with such a leaf.
func (st *renderState) read(v any) {
	if st.tainted {
		return
	}
	sec := st.sec
	if sec.Empty() {
		return
	}
	var holds func(x any) bool
	holds = func(x any) bool {
		switch t := x.(type) {
		case nil, bool:
			return false
		case map[string]any:
			for _, e := range t {
				if holds(e) {
					return true
				}
			}
			return false
		case []any:
			for _, e := range t {
				if holds(e) {
					return true
				}
			}
			return false
		}
		return sec.Holds(Text(x), minDerived)
	}
	st.tainted = holds(v)
}
