package template

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/kvflow/kvflow"
)

// kvflow relies on pongo2 for these behaviours, through its public API; if
// an upgrade changed one, strictness, the step guard or the sandbox could
// vanish quietly. Each is checked once, when the first Engine is made, and a
// failure panics with the probe's name.
type probe struct {
	name    string
	src     string
	want    string // the rendered text, or
	wantErr string // a part of the error, with its "line L, column C"
	steps   int    // loop steps the render must count, when > 0
}

var probes = []probe{
	{name: "functions receive the execution context and loop variables", src: "{% for x in [1, 2] %}{{ x }}{% endfor %}", want: "12"},
	{name: "for-loop information is readable as loop", src: "{% for x in ['a', 'b'] %}{{ loop.index }}{{ loop.last }};{% endfor %}", want: "0false;1true;"},
	{name: "set stores in the private context", src: "{% set y = 40 + 2 %}{{ y }}", want: "42"},
	{name: "with scopes a name", src: "{% with a={'b': 1} %}{{ a.b }}{% endwith %}", want: "1"},
	{name: "if, elif and else run the evaluator's truth", src: "{% if [] %}a{% elseif 0 %}b{% else %}c{% endif %}", want: "c"},
	{name: "for's else runs on an empty list", src: "{% for x in [] %}x{% else %}none{% endfor %}", want: "none"},
	{name: "printed values are not HTML-escaped", src: "{{ '<b>&' }}{% if true %}{{ '<' }}{% endif %}", want: "<b>&<"},
	{name: "whitespace control is kept", src: "a  {%- if true -%}  b  {%- endif -%}  c", want: "abc"},
	{name: "the step guard runs on every iteration", src: "{% for x in 1..3 %}{% for y in [1, 2] %}{% endfor %}{% endfor %}", want: "", steps: 9},
	{name: "an evaluator error inside a tag keeps its place", src: "{% if true %}\n  {{ nope }}{% endif %}", wantErr: "line 2, column 6: Variable 'nope' is not defined."},
	{name: "pongo2's banned tags are refused", src: "{% if true %}{{ 1 }}{% endif %}", want: "1"},
}

var (
	selfCheckOnce sync.Once
	selfCheckErr  error
)

// selfCheck runs the probes once per process.
func selfCheck() error {
	selfCheckOnce.Do(func() { selfCheckErr = runProbes(probes) })
	return selfCheckErr
}

func runProbes(list []probe) error {
	if err := registerTags(); err != nil {
		return err
	}
	e := newEngine(Options{})
	set := e.takeSet()
	for _, tag := range bannedTags {
		if _, err := set.FromString("{% " + tag + " %}"); err == nil || !strings.Contains(err.Error(), "sandbox") {
			return fmt.Errorf("template: pongo2 does not behave as kvflow relies on: the tag %q is not banned (%v)", tag, err)
		}
	}
	e.putSet(set)
	for _, p := range list {
		c := e.compile(p.src)
		var got any
		err := c.err
		var st *renderState
		if err == nil {
			st = e.newState(context.Background(), c, Context{})
			got, err = st.run(false)
		}
		var problem string
		switch {
		case p.wantErr != "" && (err == nil || !strings.Contains(err.Error(), p.wantErr)):
			problem = fmt.Sprintf("got %q, %v; want the error %q", got, err, p.wantErr)
		case p.wantErr == "" && (err != nil || got != p.want):
			problem = fmt.Sprintf("got %q, %v; want %q", got, err, p.want)
		case p.steps > 0 && st != nil && st.steps != p.steps:
			problem = fmt.Sprintf("counted %d steps, want %d", st.steps, p.steps)
		case err != nil && kvflow.ErrorCode(err) == kvflow.EINTERNAL:
			problem = err.Error()
		}
		if problem != "" {
			return fmt.Errorf("template: pongo2 does not behave as kvflow relies on (%s): %s", p.name, problem)
		}
	}
	return nil
}
