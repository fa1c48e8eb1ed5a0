package template

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
)

var startDate = time.Date(2024, 7, 15, 6, 10, 33, 500000000, time.UTC)

// testData is a render context shaped like the engine's.
func testData() Context {
	return Context{
		"flow":      map[string]any{"id": "kv_flow", "namespace": "company.team"},
		"execution": map[string]any{"id": "exec1", "startDate": startDate},
		"inputs": map[string]any{
			"count": int64(42), "ratio": 3.5, "whole": 3.0, "on": true, "off": false, "zero": int64(0),
			"name": "Ada", "html": "<b>&</b>", "empty": "", "none": nil,
			"list":   []any{"a", "b", int64(3)},
			"person": map[string]any{"name": "John", "age": int64(32), "address": map[string]any{"city": "Paris"}},
			"goInt":  7, // a Go int, as YAML decoding gives
		},
		"vars":    map[string]any{"greeting": "hello"},
		"outputs": map[string]any{"get": map[string]any{"value": `{"address":{"country":"France"}}`}, "keys": map[string]any{"keys": []any{"k1", "k2"}}},
		"taskrun": map[string]any{"value": "item"},
	}
}

func mustRender(t *testing.T, e *Engine, src string, data Context) any {
	t.Helper()
	v, err := e.Render(context.Background(), src, data)
	if err != nil {
		t.Fatalf("Render(%q): %v", src, err)
	}
	return v
}

// wantError checks err's code, that its message contains want, and returns its Location.
func wantError(t *testing.T, err error, code, want string) *Location {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %q", code, want)
	}
	var ke *kvflow.Error
	if !errors.As(err, &ke) {
		t.Fatalf("error %T %v is not a *kvflow.Error", err, err)
	}
	if got := kvflow.ErrorCode(err); got != code {
		t.Errorf("code = %q, want %q (%v)", got, code, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	var loc *Location
	errors.As(err, &loc)
	return loc
}

func TestRender_SingleExpressionKeepsType(t *testing.T) {
	e := New(Options{})
	tests := []struct {
		src  string
		want any
	}{
		{"{{ inputs.count }}", int64(42)},
		{"{{ inputs.goInt }}", int64(7)},
		{"{{ 42 }}", int64(42)},
		{"{{ inputs.ratio }}", 3.5},
		{"{{ inputs.whole }}", 3.0},
		{"{{ inputs.on }}", true},
		{"{{ inputs.off }}", false},
		{"{{ inputs.name }}", "Ada"},
		{"{{ inputs.html }}", "<b>&</b>"}, // no HTML escaping
		{"{{ inputs.none }}", nil},
		{"{{ inputs.list }}", []any{"a", "b", int64(3)}},
		{"{{ inputs.person }}", map[string]any{"name": "John", "age": int64(32), "address": map[string]any{"city": "Paris"}}},
		{"{{ inputs.person.address }}", map[string]any{"city": "Paris"}},
		{"{{ execution.startDate }}", startDate},
		{"  {{ inputs.count }}\n", int64(42)},
		{"{{- inputs.count -}}", int64(42)},
		{"{{ inputs.count + 1 }}", int64(43)},
		{"{{ inputs.ratio * 2 }}", 7.0},
		{"{{ inputs.count > 40 }}", true},
		{"{{ inputs.name|upper }}", "ADA"},
		{"{{ inputs.list|length }}", int64(3)},
		{"{{ taskrun.value }}", "item"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			got := mustRender(t, e, tt.src, testData())
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

func TestRender_MixedTextIsString(t *testing.T) {
	e := New(Options{})
	tests := []struct{ src, want string }{
		{"n={{ inputs.count }}", "n=42"},
		{"r={{ inputs.ratio }}", "r=3.5"},
		{"w={{ inputs.whole }}", "w=3"},
		{"{{ 1.5 + 1 }} {{ 10 / 4 }} {{ 0.1 + 0.2 }}", "2.5 2 0.30000000000000004"},
		{"b={{ inputs.on }}/{{ inputs.off }}/{{ 1 == 1 }}", "b=true/false/true"},
		{"x{{ inputs.none }}x", "xx"},
		{"l={{ inputs.list }}", `l=["a","b",3]`},
		{"p={{ inputs.person.address }}", `p={"city":"Paris"}`},
		{"h={{ inputs.html }}", "h=<b>&</b>"},
		{"d={{ execution.startDate }}", "d=2024-07-15T06:10:33.5Z"},
		{"{{ vars.greeting }}, {{ inputs.name }}!", "hello, Ada!"},
		{"{% for x in inputs.list %}{{ x }};{% endfor %}", "a;b;3;"},
		{"{% if inputs.count > 40 %}big{% else %}small{% endif %}", "big"},
		{"{% set y = inputs.count * 2 %}{{ y }}", "84"},
		{"{% with p=inputs.person %}{{ p.name }} {{ p.address.city }}{% endwith %}", "John Paris"},
		{"{% for k, v in inputs.person.address %}{{ k }}={{ v }}{% endfor %}", "city=Paris"},
		{"{% for x in inputs.list %}{{ forloop.Counter }}{% if not forloop.Last %},{% endif %}{% endfor %}", "1,2,3"},
		{"keys: {{ outputs.keys.keys }}", `keys: ["k1","k2"]`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			got := mustRender(t, e, tt.src, testData())
			if got != tt.want {
				t.Errorf("got %#v, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderString_SingleExpressionPrintsAsText(t *testing.T) {
	e := New(Options{})
	for src, want := range map[string]string{
		"{{ inputs.person.address }}": `{"city":"Paris"}`,
		"{{ inputs.count }}":          "42",
		"{{ inputs.ratio }}":          "3.5",
		"{{ inputs.on }}":             "true",
		"{{ inputs.none }}":           "",
		"plain":                       "plain",
	} {
		got, err := e.RenderString(context.Background(), src, testData())
		if err != nil || got != want {
			t.Errorf("RenderString(%q) = %q, %v; want %q", src, got, err, want)
		}
	}
}

func TestRender_TextWithoutTagsIsReturnedAsIs(t *testing.T) {
	e := New(Options{})
	for _, src := range []string{"", "plain", "a } b { c", "{# not a tag", "100% {x}", "{ {not} }"} {
		got := mustRender(t, e, src, nil)
		if got != src {
			t.Errorf("Render(%q) = %#v", src, got)
		}
	}
	if n := len(e.cache); n != 0 {
		t.Errorf("plain text was compiled: %d cache entries", n)
	}
}

func TestRender_UndefinedIsAnError(t *testing.T) {
	e := New(Options{})
	tests := []struct {
		src       string
		want      string
		line, col int
	}{
		{"{{ nope }}", "Variable 'nope' is not defined.", 1, 4},
		{"x\n  {{ outputs.missing.value }}", "'outputs.missing' is not defined: there are no outputs of a task 'missing'.", 2, 6},
		{"{{ outputs.get.nope }}", "'outputs.get.nope' is not defined: 'outputs.get' has no key 'nope'.", 1, 4},
		{"{{ inputs.person.address.zip }}", "'inputs.person.address.zip' is not defined: 'inputs.person.address' has no key 'zip'.", 1, 4},
		{"{{ inputs.list.5 }}", "'inputs.list.5' is not defined: 'inputs.list' has 3 items.", 1, 4},
		{"{{ inputs.list[7] }}", "'inputs.list[…]' is not defined: 'inputs.list' has 3 items and the index is 7.", 1, 4},
		{"{{ inputs.person['zip'] }}", "'inputs.person[…]' is not defined: 'inputs.person' has no key 'zip'.", 1, 4},
		{"{{ inputs.none.x }}", "'inputs.none' is null, so 'inputs.none.x' cannot be read.", 1, 4},
		{"{{ inputs.count.x }}", "'inputs.count' is a number, so 'inputs.count.x' cannot be read.", 1, 4},
		{"{{ inputs.person.0 }}", "'inputs.person' is a map, not a list, so 'inputs.person.0' cannot be read.", 1, 4},
		{"{% if nope %}x{% endif %}", "Variable 'nope' is not defined.", 1, 7},
		{"{% for x in nope %}{% endfor %}", "Variable 'nope' is not defined.", 1, 13},
		{"{% for x in inputs.list %}{{ x.y }}{% endfor %}", "'x' is a string, so 'x.y' cannot be read.", 1, 30},
		{"{{ inputs.name|add:nope }}", "Variable 'nope' is not defined.", 1, 20},
		{"{{ nofunc('a') }}", "Function 'nofunc' does not exist.", 1, 4},
		{"{% with a=nope %}{{ a }}{% endwith %}", "Variable 'nope' is not defined.", 1, 11},
		{"{{ pongo2.version }}", "Variable 'pongo2' is not defined.", 1, 4},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := e.Render(context.Background(), tt.src, testData())
			loc := wantError(t, err, kvflow.EINVALID, tt.want)
			if loc == nil || loc.Line != tt.line || loc.Col != tt.col {
				t.Errorf("location = %+v, want line %d col %d", loc, tt.line, tt.col)
			}
		})
	}
}

func TestRender_DefaultFilterAllowsMissing(t *testing.T) {
	e := New(Options{})
	tests := []struct {
		src  string
		want any
	}{
		{"{{ nope | default('y') }}", "y"},
		{`{{ nope|default("y") }}`, "y"},
		{"{{ nope | default:'y' }}", "y"},
		{"{{ outputs.missing.value | default('none') }}", "none"},
		{"{{ inputs.person.zip | default(inputs.name) }}", "Ada"},
		{"{{ nope | default(inputs.person.address.city) }}", "Paris"},
		{"{{ nope | default(42) }}", int64(42)},
		{"{{ inputs.empty | default('was empty') }}", "was empty"},
		{"{{ inputs.none | default('was null') }}", "was null"},
		{"{{ inputs.off | default(true) }}", false},  // Pebble: false is a value
		{"{{ inputs.zero | default(5) }}", int64(0)}, // and so is 0
		{"{{ inputs.name | default('x') }}", "Ada"},
		{"{{ nope | default_if_none('n') }}", "n"},
		{"{{ nope | upper | default('z') }}", "z"},
		{"a {{ nope | default('') }} b", "a  b"},
		{"{{ inputs.name | upper() }}", "ADA"},
		{"{{ inputs.name | default('a|b(c)') }}", "Ada"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			got := mustRender(t, e, tt.src, testData())
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
	// The default's own argument is still checked.
	_, err := e.Render(context.Background(), "{{ nope | default(other) }}", testData())
	wantError(t, err, kvflow.EINVALID, "Variable 'other' is not defined.")
}

func TestRender_SyntaxErrorNamesLineAndColumn(t *testing.T) {
	e := New(Options{})
	tests := []struct {
		src       string
		want      string
		line, col int
	}{
		{"line one\nline two\n  {{ inputs.name | }}", "A filter name is expected after '|'.", 3, 20},
		{"{{ a }", "'}}' expected: this '{{' is not closed.", 1, 1},
		{"ok\n  {{ f( }}", "The expression ends too early.", 2, 9},
		{"{% if true %}never closed", "This 'if' tag is not closed: 'endif' expected.", 1, 4},
		{"{% for x in [1] %}{% endif %}", "'endfor' expected, not 'endif'.", 1, 22},
		{"{{ x | nofilter }}", "Filter 'nofilter' does not exist.", 1, 8},
		{"{{ 1 +\n  }}", "The expression ends too early.", 2, 3},
		{"{{ {'a': 1 }}", "'}}' expected", 1, 1},
		{"{{ x | nofilter }}", "Filter 'nofilter' does not exist.", 1, 8},
		{"{{ x | uper }}", "Filter 'uper' does not exist. Did you mean 'upper'?", 1, 8},
		{"{{ x | toJSON }}", "Filter 'toJSON' does not exist. Did you mean 'toJson'?", 1, 8},
		{"{{ fromJSON('1') }}", "Function 'fromJSON' does not exist. Did you mean 'fromJson'?", 1, 4},
		{"{% unknowntag %}", "Tag 'unknowntag' does not exist", 1, 4},
		{"{{ " + strings.Repeat("(", MaxNesting+1) + "1" + strings.Repeat(")", MaxNesting+1) + " }}", "nested more than", 1, 4 + MaxNesting},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := e.Render(context.Background(), tt.src, testData())
			loc := wantError(t, err, kvflow.EINVALID, tt.want)
			if loc == nil || loc.Line != tt.line || loc.Col != tt.col {
				t.Errorf("location = %+v, want line %d col %d", loc, tt.line, tt.col)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("Template error at line %d, column %d: ", tt.line, tt.col)) {
				t.Errorf("message %q does not start with the place", err)
			}
		})
	}
}

func TestRender_TooLongTemplate_Refused(t *testing.T) {
	e := New(Options{})
	_, err := e.Render(context.Background(), "{{ 1 }}"+strings.Repeat("x", MaxTemplateLen), nil)
	wantError(t, err, kvflow.EINVALID, "the limit is 262144")
	_, err = e.Render(context.Background(), "{{ "+strings.Repeat("1+", MaxTagLen/2)+"1 }}", nil)
	wantError(t, err, kvflow.EINVALID, "This tag is over 16384 characters long")
}

func TestWrap_NamesTaskPropertyAndPlace(t *testing.T) {
	e := New(Options{})
	_, err := e.Render(context.Background(), "Hi\n {{ nope }}", testData())
	w := Wrap(err, "log", "message")
	if got, want := w.Error(), "Task 'log', property 'message', line 2, column 5: Variable 'nope' is not defined."; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if kvflow.ErrorCode(w) != kvflow.EINVALID {
		t.Errorf("code = %q", kvflow.ErrorCode(w))
	}
	var loc *Location
	if !errors.As(w, &loc) || loc.Line != 2 {
		t.Errorf("Location lost: %+v", loc)
	}

	_, err = e.RenderValue(context.Background(), map[string]any{"headers": map[string]any{"Accept": "{{ nope }}"}}, testData())
	if got, want := Wrap(err, "dl", "options").Error(), "Task 'dl', property 'options.headers.Accept', line 1, column 4: Variable 'nope' is not defined."; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	_, err = e.RenderValue(context.Background(), []any{"ok", "{{ nope }}"}, testData())
	if got, want := Wrap(err, "log", "message").Error(), "Task 'log', property 'message[1]', line 1, column 4: Variable 'nope' is not defined."; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if Wrap(nil, "a", "b") != nil {
		t.Error("Wrap(nil) is not nil")
	}
	plain := Wrap(kvflow.Errorf(kvflow.ENOTFOUND, "No such thing."), "t", "p")
	if plain.Error() != "Task 't', property 'p': No such thing." || kvflow.ErrorCode(plain) != kvflow.ENOTFOUND {
		t.Errorf("got %q %q", plain, kvflow.ErrorCode(plain))
	}
}

func TestRenderValue_RendersEveryString(t *testing.T) {
	e := New(Options{})
	in := map[string]any{
		"message": []any{"Name: {{ inputs.person.name }}", "{{ inputs.count }}", 5, true},
		"nested":  map[string]any{"value": "{{ inputs.person.address }}", "n": nil},
		"headers": map[string]string{"X": "{{ inputs.count }}"},
		"list":    []string{"{{ inputs.ratio }}"},
		"plain":   "text",
	}
	got, err := e.RenderValue(context.Background(), in, testData())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"message": []any{"Name: John", int64(42), 5, true},
		"nested":  map[string]any{"value": map[string]any{"city": "Paris"}, "n": nil},
		"headers": map[string]string{"X": "42"},
		"list":    []string{"3.5"},
		"plain":   "text",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	if in["message"].([]any)[0] != "Name: {{ inputs.person.name }}" {
		t.Error("RenderValue changed its input")
	}
}

func TestJSONFunctions(t *testing.T) {
	e := New(Options{})
	tests := []struct {
		src  string
		want any
	}{
		{`{{ fromJson('{"a":{"b":3}}') }}`, map[string]any{"a": map[string]any{"b": int64(3)}}},
		{`{{ fromJson('{"a":{"b":3}}').a.b }}`, int64(3)},
		{`{{ json('{"a":1.5}').a }}`, 1.5},
		{`{{ fromJson('[1, 2.5, "x", true, null]') }}`, []any{int64(1), 2.5, "x", true, nil}},
		{`{{ fromJson('[1,2]')[1] }}`, int64(2)},
		{`{{ fromJson('42') }}`, int64(42)},
		{`{{ fromJson('"s"') }}`, "s"},
		{`{{ fromJson('null') }}`, nil},
		{`{{ fromJson('12345678901234567890') }}`, json.Number("12345678901234567890")}, // exact, not a float,
		{"{{ json(inputs.person).address.city }}", "Paris"},                             // a map passes through
		{"{{ fromJson(inputs.list)[2] }}", int64(3)},                                    // and so does a list
		{"{{ json(outputs.get.value).address.country }}", "France"},                     // the seed's Get-output flow
		{"{{ toJson(inputs.person.address) }}", `{"city":"Paris"}`},
		{"{{ toJson(inputs.html) }}", `"<b>&</b>"`},
		{"{{ toJson(inputs.ratio) }}", "3.5"},
		{`{{ toJson(fromJson('{"b":[1,2]}')) }}`, `{"b":[1,2]}`},
		{`Age: {{ json('{"age":32}').age }}`, "Age: 32"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			got := mustRender(t, e, tt.src, testData())
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v (%T), want %#v", got, got, tt.want)
			}
		})
	}
	for src, want := range map[string]string{
		`{{ fromJson('{bad') }}`:   "The 'fromJson' function cannot parse",
		`{{ fromJson('1 2') }}`:    "unexpected data after the JSON value",
		`{{ json('') }}`:           "The 'json' function cannot parse",
		`{{ fromJson() }}`:         "The 'fromJson' function expects an argument 'json'.",
		`{{ fromJson('1', '2') }}`: "The 'fromJson' function takes at most 1 arguments (json), not 2.",
		`{{ toJson() }}`:           "The 'toJson' function expects an argument 'object'.",
	} {
		_, err := e.Render(context.Background(), src, testData())
		loc := wantError(t, err, kvflow.EINVALID, want)
		if loc == nil || loc.Line != 1 || loc.Col != 4 {
			t.Errorf("%s: location %+v", src, loc)
		}
	}
}

func TestRender_SandboxRefusesFileTags(t *testing.T) {
	e := New(Options{})
	tests := []struct{ src, tag string }{
		{`{% include "/etc/passwd" %}`, "include"},
		{`{% include "x.tpl" if_exists %}`, "include"},
		{`{% ssi "/etc/passwd" %}`, "ssi"},
		{`{% ssi "/etc/passwd" parsed %}`, "ssi"},
		{`{% ssi "template_test.go" %}`, "ssi"},
		{`{% import "macros.tpl" m %}`, "import"},
		{`{% extends "/etc/passwd" %}`, "extends"},
		{`{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}`, "macro"},
		{`{% filter upper %}x{% endfilter %}`, "filter"},
		{`{% lorem 100000000 w %}`, "lorem"},
		{`{% for x in inputs.list %}{% cycle 'a' 'b' %}{% endfor %}`, "cycle"},
		{`{% spaceless %}x{% endspaceless %}`, "spaceless"},
		{`{% block b %}x{% endblock %}`, "block"},
		{`text {% if true %}{% ssi "/etc/passwd" %}{% endif %}`, "ssi"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			v, err := e.Render(context.Background(), tt.src, testData())
			wantError(t, err, kvflow.EINVALID, "The tag '"+tt.tag+"' is not allowed in kvflow templates.")
			if s, _ := v.(string); strings.Contains(s, "root:") {
				t.Fatal("a file was read")
			}
		})
	}
	// The loader refuses everything too, should a tag reach it.
	if _, err := (refuseLoader{}).Get("/etc/passwd"); kvflow.ErrorCode(err) != kvflow.EFORBIDDEN {
		t.Errorf("loader Get = %v", err)
	}
}

func TestRender_HostileTemplatesDoNotPanic(t *testing.T) {
	// The time bound is tested on its own; here each limit must be the one
	// that stops the template, even on a slow machine under -race.
	e := New(Options{MaxRenderTime: 10 * time.Minute})
	tests := []struct{ src, want string }{
		{"{{ 1/0 }}", "The template failed: division by zero."},
		{"{{ 1 % 0 }}", "division by zero"},
		{"{{ inputs.count / 0 }}", "division by zero"},
		{`{% for c in "cba" sorted %}{{ c }}{% endfor %}`, "Unexpected 'sorted' after the expression."},
		{"{{ x.nil }}", "not defined"},
		{"{{ kv }}", "Variable 'kv' is not defined."},
		{"{{ inputs.count.nofunc() }}", "methods cannot be called in kvflow templates"},
		{"{{ inputs.list[99999999999999999999] }}", "A list index must be a whole number"},
		{"{{ 'x'|center:1000000000 }}", "The 'center' filter width must be between 0 and"},
		{"{{ 1.5|floatformat:100000 }}", "at most 100 decimals"},
		{"{{ " + strings.Repeat("f(", 70) + strings.Repeat(")", 70) + " }}", "nested more than"},
		{"{% set s = 'ab' %}{% for a in inputs.big %}{% set s = s + s %}{{ s|length }}{% endfor %}", "over the limit of 16777216 bytes"},
		{"{% set s = 'ab' %}{% for a in inputs.big %}{% set s = s|add:s %}{{ s|length }}{% endfor %}", "over the limit of 16777216 bytes"},
		{"{{ inputs.big|split:''|join:inputs.big }}", "over the limit of 16777216 bytes"},
		{"{{ inputs.huge|make_list|length }}", "The 'make_list' filter takes strings of at most"},
		{"{% for a in inputs.many %}{{ inputs.big }}{% endfor %}", "Template output is over the limit of 16777216 bytes."},
		{"{% for a in inputs.thousand %}{% for b in inputs.thousand %}{% endfor %}{% endfor %}", "more than 1000000 loop iterations"},
	}
	data := testData()
	in := data["inputs"].(map[string]any)
	in["big"] = strings.Repeat("x", 1<<20)
	in["huge"] = strings.Repeat("x", MaxListInput+1)
	in["many"] = make([]any, 100)
	in["thousand"] = make([]any, 1001)
	for _, tt := range tests {
		t.Run(tt.src[:min(len(tt.src), 60)], func(t *testing.T) {
			_, err := e.Render(context.Background(), tt.src, data)
			if err == nil {
				t.Fatal("no error")
			}
			if kvflow.ErrorCode(err) == kvflow.EINTERNAL || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %s %q, want %q", kvflow.ErrorCode(err), err, tt.want)
			}
		})
	}
}

func TestRender_ContextCanceled_Stops(t *testing.T) {
	e := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Render(ctx, "{{ inputs.name }}", testData())
	wantError(t, err, kvflow.EUNAVAILABLE, "Template rendering stopped")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(err, context.Canceled) is false: %v", err)
	}
}

func TestRender_ConcurrentRendersOfOneTemplate(t *testing.T) {
	e := New(Options{})
	srcs := []string{
		"Hello {{ inputs.name }}, {{ inputs.count }} at {{ execution.startDate }}",
		"{{ inputs.person }}",
		"{% for x in inputs.list %}{{ x }}{% endfor %}{{ nope | default('d') }}",
		"{{ nope }}",
	}
	want := make([]any, len(srcs))
	for i, src := range srcs {
		want[i], _ = e.Render(context.Background(), src, testData())
	}
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// A fresh engine per goroutine pair too, so compiles race each other.
			eng := e
			if g%2 == 1 {
				eng = New(Options{})
			}
			for i := 0; i < 200; i++ {
				k := (i + g) % len(srcs)
				got, err := eng.Render(context.Background(), srcs[k], testData())
				if k == 3 {
					if err == nil {
						errs <- "undefined variable rendered"
					}
					continue
				}
				if err != nil || !reflect.DeepEqual(got, want[k]) {
					errs <- fmt.Sprintf("%q: got %#v, %v", srcs[k], got, err)
				}
				// Distinct templates compile concurrently on one set.
				if _, err := eng.Render(context.Background(), fmt.Sprintf("{{ %d }}", g*1000+i), nil); err != nil {
					errs <- err.Error()
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestEngine_CacheIsBounded(t *testing.T) {
	e := New(Options{})
	for i := 0; i < cacheSize+100; i++ {
		if _, err := e.Render(context.Background(), fmt.Sprintf("{{ %d }}", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	n, l := len(e.cache), e.lru.Len()
	e.mu.Unlock()
	if n != cacheSize || l != cacheSize {
		t.Errorf("cache holds %d (list %d), want %d", n, l, cacheSize)
	}
	// The most recent ones are cached, the first ones were evicted.
	if _, ok := e.cache[fmt.Sprintf("{{ %d }}", cacheSize+99)]; !ok {
		t.Error("latest template not cached")
	}
	if _, ok := e.cache["{{ 0 }}"]; ok {
		t.Error("oldest template still cached")
	}
}

func TestRender_CompileErrorsAreCachedAndNotShared(t *testing.T) {
	e := New(Options{})
	_, err1 := e.RenderValue(context.Background(), map[string]any{"a": "{{ x | }}"}, nil)
	_, err2 := e.RenderValue(context.Background(), map[string]any{"b": "{{ x | }}"}, nil)
	var l1, l2 *Location
	if !errors.As(err1, &l1) || !errors.As(err2, &l2) || l1.Path != "a" || l2.Path != "b" {
		t.Errorf("paths: %+v %+v", l1, l2)
	}
}

func TestText(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want string
	}{
		{nil, ""}, {"s", "s"}, {true, "true"}, {false, "false"}, {42, "42"}, {int64(-7), "-7"}, {uint8(5), "5"},
		{3.0, "3"}, {3.5, "3.5"}, {1e21, "1e+21"}, {0.000001, "0.000001"}, {float32(2.5), "2.5"},
		{startDate, "2024-07-15T06:10:33.5Z"}, {90 * time.Minute, "PT1H30M"},
		{[]any{1, "a<b"}, `[1,"a<b"]`}, {map[string]any{"b": 1, "a": 2.5}, `{"a":2.5,"b":1}`},
		{[]byte("raw"), "raw"},
	} {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
