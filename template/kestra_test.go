package template

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
)

// kestraData adds what Kestra's docs use in their examples.
func kestraData() Context {
	d := testData()
	in := d["inputs"].(map[string]any)
	in["date"] = "2024-07-15T06:10:33.5Z"
	in["day"] = "2024-01-31"
	in["csv"] = "a,b,,c"
	in["words"] = []any{"b", "a", "c", "a"}
	in["nums"] = []any{int64(3), int64(1), int64(2)}
	in["title"] = "hello wORLD"
	in["accents"] = "Héllo, Wörld! 2024"
	in["json"] = `{"a b": {"c": 1}, "items": [{"id": 1}, {"id": 2}]}`
	d["outputs"].(map[string]any)["inc"] = map[string]any{"item": map[string]any{"value": int64(7)}, "a b": map[string]any{"value": "spaced"}}
	return d
}

// Each operator with results from Kestra's expression docs (or Pebble's).
func TestKestra_Operators(t *testing.T) {
	e := New(Options{})
	tests := []struct {
		src  string
		want any
	}{
		// ?? and ???
		{"{{ nope ?? 'fallback' }}", "fallback"},
		{"{{ inputs.none ?? 'was null' }}", "was null"},
		{"{{ inputs.name ?? 'x' }}", "Ada"},
		{"{{ nope ?? other ?? 'third' }}", "third"},
		{"{{ inputs.person.zip ?? inputs.person.address.city }}", "Paris"},
		{"{{ outputs.missing.value ?? 0 }}", int64(0)},
		{"{{ inputs.off ?? true }}", false},
		{"{{ inputs.none ??? 'undefined only' }}", nil},
		{"{{ nope ??? 'undefined only' }}", "undefined only"},
		// ternary
		{"{{ inputs.count > 40 ? 'big' : 'small' }}", "big"},
		{"{{ inputs.empty ? 'yes' : 'no' }}", "no"},
		{"{{ inputs.on ? nope ?? 'a' : undefinedButNotEvaluated }}", "a"},
		{"{{ false ? 1 : true ? 2 : 3 }}", int64(2)},
		// ~ concatenation
		{"{{ 'a' ~ 1 ~ true ~ inputs.ratio }}", "a1true3.5"},
		{"{{ 'n: ' ~ (inputs.count + 1) }}", "n: 43"},
		{"{{ 'ab' ~ 'cd' | upper }}", "ABCD"},
		// arithmetic and comparison
		{"{{ 10 / 4 }}", int64(2)},
		{"{{ 10.0 / 4 }}", 2.5},
		{"{{ 7 % 3 }}", int64(1)},
		{"{{ -inputs.count }}", int64(-42)},
		{"{{ 2 + 3 * 4 }}", int64(14)},
		{"{{ (2 + 3) * 4 }}", int64(20)},
		{"{{ 1 == 1.0 }}", true},
		{"{{ 'a' != 'b' }}", true},
		{"{{ 'abc' < 'abd' }}", true},
		{"{{ inputs.count >= 42 and not inputs.off }}", true},
		{"{{ inputs.off or inputs.zero or inputs.name }}", true},
		{"{{ not inputs.on }}", false},
		{"{{ inputs.count equals 42 }}", true},
		// tests
		{"{{ inputs.name is defined }}", true},
		{"{{ nope is defined }}", false},
		{"{{ outputs.nope.value is not defined }}", true},
		{"{{ inputs.none is null }}", true},
		{"{{ inputs.name is not null }}", true},
		{"{{ inputs.empty is empty }}", true},
		{"{{ [] is empty }}", true},
		{"{{ inputs.zero is empty }}", false},
		{"{{ 4 is even }}", true},
		{"{{ 3 is odd }}", true},
		{"{{ inputs.list is iterable }}", true},
		{"{{ inputs.name is iterable }}", false},
		{"{{ inputs.json is json }}", true},
		{"{{ 'nope{' is json }}", false},
		{"{{ inputs.person is map }}", true},
		// contains and in
		{"{{ inputs.list contains 'b' }}", true},
		{"{{ inputs.list contains ['a', 3] }}", true},
		{"{{ inputs.name contains 'd' }}", true},
		{"{{ inputs.person contains 'age' }}", true},
		{"{{ 'x' in inputs.list }}", false},
		{"{{ 'x' not in inputs.list }}", true},
		// literals and ranges
		{"{{ {'a': 1, 'b': [1, 2]} }}", map[string]any{"a": int64(1), "b": []any{int64(1), int64(2)}}},
		{"{{ {'a': {'b': inputs.count}}.a.b }}", int64(42)},
		{"{{ [1, 2, 3][1] }}", int64(2)},
		{"{{ 1..5 }}", []any{int64(1), int64(2), int64(3), int64(4), int64(5)}},
		{"{{ 3..1 }}", []any{}},
		{"{{ [1, 2] | length }}", int64(2)},
		{"{{ toJson({'a': 1}) }}", `{"a":1}`},
		// subscripts after any expression
		{"{{ outputs.inc[taskrun.value].value }}", int64(7)},
		{"{{ outputs.inc['a b'].value }}", "spaced"},
		{"{{ json(inputs.json)['a b'].c }}", int64(1)},
		{"{{ fromJson(inputs.json).items[1].id }}", int64(2)},
		{"{{ (inputs.list)[0] }}", "a"},
		{"{{ inputs.list.1 }}", "b"},
		// keyword arguments
		{"{{ range(start=1, end=3) }}", []any{int64(1), int64(2), int64(3)}},
		{"{{ inputs.day | dateAdd(unit='DAYS', amount=1) | date('yyyy-MM-dd') }}", "2024-02-01"},
		// Pebble's loop and for-else
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			got := mustRender(t, e, tt.src, kestraData())
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

func TestKestra_Tags(t *testing.T) {
	e := New(Options{})
	for src, want := range map[string]string{
		"{% for x in inputs.words %}{{ loop.index }}:{{ x }}{% if not loop.last %},{% endif %}{% endfor %}": "0:b,1:a,2:c,3:a",
		"{% for x in [] %}{{ x }}{% else %}empty{% endfor %}":                                               "empty",
		"{% if inputs.count < 10 %}small{% elseif inputs.count < 100 %}medium{% else %}large{% endif %}":    "medium",
		"{% set total = 0 %}{% for n in inputs.nums %}{% set total = total + n %}{% endfor %}{{ total }}":   "0", // pongo2 scopes set to the loop body
		"{% for k, v in {'b': 2, 'a': 1} %}{{ k }}={{ v }};{% endfor %}":                                    "a=1;b=2;",
		"{% for i in 1..3 %}{{ i * 2 }}{% endfor %}":                                                        "246",
		"{% verbatim %}{{ not rendered }}{% endverbatim %}":                                                 "{{ not rendered }}",
		"{# a comment #}{{ 'text' }}":                                                                       "text",
		"{% for e in {'b': 2, 'a': 1} %}{{ e.key }}={{ e.value }};{% endfor %}":                             "a=1;b=2;",
		"{% for i, x in ['p', 'q'] %}{{ i }}{{ x }}{% endfor %}":                                            "0p1q",
		"{{ {'a': 1} }} and {{ [1, 'x'] }}":                                                                 `{"a":1} and [1,"x"]`,
	} {
		got, err := e.RenderString(context.Background(), src, kestraData())
		if err != nil || got != want {
			t.Errorf("%s\n got %q, %v\nwant %q", src, got, err, want)
		}
	}
}

// Functions and filters with results from Kestra's function and filter docs.
func TestKestra_FunctionsAndFilters(t *testing.T) {
	e := New(Options{})
	tests := []struct {
		src  string
		want any
	}{
		{"{{ -5 | abs }}", int64(5)},
		{"{{ -2.5 | abs }}", 2.5},
		{"{{ '12' | number }}", int64(12)},
		{"{{ '12.5' | number }}", 12.5},
		{"{{ '12' | number('FLOAT') }}", 12.0},
		{"{{ '12345678901234567890' | number }}", json.Number("12345678901234567890")},
		{"{{ '12345678901234567890' | number('BIGINTEGER') }}", json.Number("12345678901234567890")},
		{"{{ '3.14159265358979323846' | number }}", json.Number("3.14159265358979323846")},
		{"{{ '3.14159265358979323846' | number('BIGDECIMAL') }}", json.Number("3.14159265358979323846")},
		{"{{ '0x1A' | number }}", int64(26)},
		{"{{ '12.0' | number('INT') }}", int64(12)},
		{"{{ nope | default('d') }}", "d"},
		{"{{ inputs.name | length }}", int64(3)},
		{"{{ inputs.person | length }}", int64(3)},
		{"{{ inputs.person | keys }}", []any{"address", "age", "name"}},
		{"{{ inputs.person.address | values }}", []any{"Paris"}},
		{"{{ inputs.list | first }}", "a"},
		{"{{ inputs.list | last }}", int64(3)},
		{"{{ 'abc' | first }}", "a"},
		{"{{ inputs.words | join(', ') }}", "b, a, c, a"},
		{"{{ inputs.csv | split(',') }}", []any{"a", "b", "", "c"}},
		{"{{ inputs.csv | split(',', 2) }}", []any{"a", "b,,c"}},
		{"{{ 'I like %this%' | replace({'%this%': inputs.name}) }}", "I like Ada"},
		{"{{ 'a-b-c' | replace('-', '+') }}", "a+b+c"},
		{"{{ 'a1b22' | replace('[0-9]+', '#', regexp=true) }}", "a#b#"},
		{"{{ 'Hello World' | replace({'(o)': '0'}, regexp=true) }}", "Hell0 W0rld"},
		{"{{ 'Hello World' | replace({'o+': '0'}, true) }}", "Hell0 W0rld"},
		{"{{ 'a1b22' | replace({'[0-9]+': '#'}, regexp=true) }}", "a#b#"},
		{"{{ 'a.b' | replace({'.': '-'}) }}", "a-b"},
		{"{{ inputs.name | upper }}", "ADA"},
		{"{{ inputs.name | lower }}", "ada"},
		{"{{ inputs.title | title }}", "Hello World"},
		{"{{ inputs.title | capitalize }}", "Hello wORLD"},
		{"{{ '  x  ' | trim }}", "x"},
		{"{{ 'abcdef' | slice(1, 3) }}", "bc"},
		{"{{ inputs.words | slice(1) }}", []any{"a", "c", "a"}},
		{"{{ inputs.nums | sort }}", []any{int64(1), int64(2), int64(3)}},
		{"{{ inputs.nums | rsort }}", []any{int64(3), int64(2), int64(1)}},
		{"{{ inputs.nums | reverse }}", []any{int64(2), int64(1), int64(3)}},
		{"{{ 'abc' | reverse }}", "cba"},
		{"{{ [1, 2] | merge([3]) }}", []any{int64(1), int64(2), int64(3)}},
		{"{{ {'a': 1} | merge({'b': 2}) }}", map[string]any{"a": int64(1), "b": int64(2)}},
		{"{{ inputs.words | distinct }}", []any{"b", "a", "c"}},
		{"{{ inputs.name | startsWith('A') }}", true},
		{"{{ inputs.name | endsWith('x') }}", false},
		{"{{ 'a.b.c' | substringBefore('.') }}", "a"},
		{"{{ 'a.b.c' | substringAfter('.') }}", "b.c"},
		{"{{ 'a.b.c' | substringBeforeLast('.') }}", "a.b"},
		{"{{ 'a.b.c' | substringAfterLast('.') }}", "c"},
		{"{{ inputs.accents | slugify }}", "hello-world-2024"},
		{"{{ 'hello' | base64encode }}", "aGVsbG8="},
		{"{{ 'aGVsbG8=' | base64decode }}", "hello"},
		{"{{ 'a b&c' | urlencode }}", "a+b%26c"},
		{"{{ 'hello' | sha256 }}", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
		{"{{ 'hello' | md5 }}", "5d41402abc4b2a76b9719d911017c592"},
		{"{{ inputs.json | jq('.items[].id') }}", []any{int64(1), int64(2)}},
		{"{{ inputs.person | jq('.address.city') | first }}", "Paris"},
		{"{{ inputs.person.address | toJson }}", `{"city":"Paris"}`},
		{"{{ inputs.person.address | json }}", `{"city":"Paris"}`},
		{"{{ fromJson('[1]') }}", []any{int64(1)}},
		{"{{ yaml('a: 1\nb: [x]') }}", map[string]any{"a": int64(1), "b": []any{"x"}}},
		{"{{ {'a': 1} | toYaml }}", "a: 1"},
		{"{{ range(0, 10, 5) }}", []any{int64(0), int64(5), int64(10)}},
		{"{{ min(3, 1, 2) }}", int64(1)},
		{"{{ max(inputs.nums) }}", int64(3)},
		{"{{ render('{{ inputs.name }}!') }}", "Ada!"},
		{"{{ render(\"{{ 1 + 1 }}\") }}", int64(2)},
		{"{{ uuid() | length }}", int64(36)},
		// dates, with Kestra's patterns and named formats
		{"{{ inputs.date | date('yyyy-MM-dd') }}", "2024-07-15"},
		{"{{ inputs.date | date(\"yyyy-MM-dd'T'HH:mm:ss\") }}", "2024-07-15T06:10:33"},
		{"{{ inputs.date | date('iso8601') }}", "2024-07-15T06:10:33.500Z"},
		{"{{ inputs.date | date('sql_seconds') }}", "2024-07-15 06:10:33"},
		{"{{ inputs.date | date('EEEE d MMMM yy, hh:mm a') }}", "Monday 15 July 24, 06:10 AM"},
		{"{{ inputs.date | date('yyyy-MM-dd HH:mm XXX', timeZone='Europe/Paris') }}", "2024-07-15 08:10 +02:00"},
		{"{{ execution.startDate | date('yyyy') }}", "2024"},
		{"{{ 'July 24, 2001' | date('yyyy-MM-dd', existingFormat='MMMM dd, yyyy') }}", "2001-07-24"},
		{"{{ inputs.day | dateAdd(1, 'MONTHS') | date('yyyy-MM-dd') }}", "2024-02-29"},
		{"{{ inputs.date | dateAdd(-1, 'MONTHS') | date('yyyy-MM-dd') }}", "2024-06-15"},
		{"{{ inputs.date | dateAdd(90, 'MINUTES') | date('HH:mm') }}", "07:40"},
		{"{{ inputs.date | timestamp }}", int64(1721023833)},
		{"{{ inputs.date | timestampMilli }}", int64(1721023833500)},
		{"{{ 1721023833 | date('yyyy-MM-dd') }}", "2024-07-15"},
		{"{{ nope ?? inputs.day | dateAdd(-1, 'DAYS') | date('yyyy-MM-dd') }}", "2024-01-30"},
		// Numbers beyond int64 and float64 compare exactly.
		{"{{ 12345678901234567890 > 5 }}", true},
		{"{{ 12345678901234567890 < 12345678901234567891 }}", true},
		{"{{ 3.14159265358979323846 >= 3.14159265358979323847 }}", false},
		{"{{ 0.5 < 3.14159265358979323846 }}", true},
		// Decimal literals keep their digits, as NUMBERs do.
		{"{{ 3.14159265358979323846 }}", json.Number("3.14159265358979323846")},
		{"{{ 3.5 }}", 3.5},
		{"{{ -3.14159265358979323846 }}", json.Number("-3.14159265358979323846")},
		// A filter in a ternary's branch (Pebble's: each branch is an expression).
		{"{{ true ? 'a' | upper : 'b' }}", "A"},
		{"{{ false ? 'a' | upper : 'b' | upper }}", "B"},
		{"{{ true ? ('x'|ljust:3) ~ '.' : 'b' }}", "x  ."},
		{"{{ 'x'|ljust:3 ~ '.' }}", "x  ."},
		// ?? binds as Kestra's (120): tighter than +, | and ~.
		{"{{ 5 ?? 0 + 1 }}", int64(6)},
		{"{{ nope ?? 'anon' ~ '!' }}", "anon!"},
		{"{{ 'x' ?? 'y' ~ 'z' }}", "xz"},
		{"{{ inputs.day ?? now() | dateAdd(-1, 'DAYS') | date('yyyy-MM-dd') }}", "2024-01-30"},
		{"{{ nope ?? null ?? 'third' }}", "third"},
		// A date prints in its own offset.
		{"{{ '' ~ ('2024-07-15T10:20:30+02:00' | dateAdd(1, 'HOURS')) }}", "2024-07-15T11:20:30+02:00"},
		{"{{ (now(timeZone='Asia/Kolkata') ~ '') | endsWith('+05:30') }}", true},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			got := mustRender(t, e, tt.src, kestraData())
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

func TestKestra_NowAndTimeZone(t *testing.T) {
	e := New(Options{})
	before := time.Now()
	got := mustRender(t, e, "{{ now() }}", nil)
	if ts, ok := got.(time.Time); !ok || ts.Before(before.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
		t.Errorf("now() = %#v", got)
	}
	got = mustRender(t, e, "{{ now(timeZone='Asia/Tokyo') | date('XXX') }}", nil)
	if got != "+09:00" {
		t.Errorf("now(timeZone) = %#v", got)
	}
	// Kestra's how-to: the first of last month.
	got = mustRender(t, e, "{{ inputs.start ?? now() | dateAdd(-1, 'MONTHS') | date('yyyy-MM') }}", Context{"inputs": map[string]any{}})
	if want := addMonths(time.Now().UTC(), -1).Format("2006-01"); got != want {
		t.Errorf("got %#v, want %q", got, want)
	}
}

func TestKestra_Errors(t *testing.T) {
	e := New(Options{})
	tests := []struct{ src, code, want string }{
		{"{{ nope ?? raise('input x is required') }}", kvflow.EINVALID, "input x is required."},
		{"{{ nope ?? raise }}", kvflow.EINVALID, "An expression raised an error."},
		{"{{ kv('nope', errorOnMissing=false) ?? 'x' }}", kvflow.EUNAVAILABLE, "no KV store is configured"},
		{"{{ 1 + 'a' }}", kvflow.EINVALID, "'+' needs numbers, not a number and a string."},
		{"{{ 'x' | date('yyyy') }}", kvflow.EINVALID, "The 'date' filter: its input (STRING, 1 bytes, sha256:2d711642) is not an ISO-8601 date or instant."},
		{"{{ inputs.date | date('yyyy', timeZone='Mars/Base') }}", kvflow.EINVALID, "does not know the time zone \"Mars/Base\""},
		{"{{ inputs.date | dateAdd(1, 'EONS') }}", kvflow.EINVALID, "unknown unit \"EONS\""},
		{"{{ inputs.date | date('yyyy-MM-dd QQQ #') }}", kvflow.EINVALID, "reserved character '#'"},
		{"{{ 'x' | jq('.[') }}", kvflow.EINVALID, "The 'jq' filter cannot parse"},
		{"{{ 1..100000000 }}", kvflow.ETOOLARGE, "over the limit of 1000000"},
		{"{{ render('{{ render(\"{{ 1 }}\") }}') }}", "", ""},
		{"{{ inputs.list | slice(2, 9) }}", kvflow.EINVALID, "The 'slice' filter indexes 2 to 9 are out of 0 to 3."},
		{"{{ 'x' | base64decode }}", kvflow.EINVALID, "The 'base64decode' filter cannot decode"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := e.Render(context.Background(), tt.src, kestraData())
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			loc := wantError(t, err, tt.code, tt.want)
			if loc == nil || loc.Line != 1 || loc.Col < 4 {
				t.Errorf("location %+v", loc)
			}
		})
	}
	// render() inside render() is bounded.
	src := "{{ render(inputs.self) }}"
	data := kestraData()
	data["inputs"].(map[string]any)["self"] = src
	_, err := e.Render(context.Background(), src, data)
	wantError(t, err, kvflow.EINVALID, "nested more than 8 deep")
	if strings.Count(err.Error(), "render") > 3 {
		t.Errorf("message repeats itself: %v", err)
	}
}

// Issue 9: the render time is bounded by a deadline checked in the step
// guard and in expensive filters; a sooner context deadline wins.
func TestRender_CPUBound_StopsAtTheDeadline(t *testing.T) {
	src := `{% for a in 1..1000 %}{% for b in 1..1000 %}{% for c in 1..1000 %}{{ "a"|ljust:16000000|length }}{% endfor %}{% endfor %}{% endfor %}`
	e := New(Options{MaxRenderTime: 200 * time.Millisecond})
	start := time.Now()
	_, err := e.Render(context.Background(), src, nil)
	wantError(t, err, kvflow.ETOOLARGE, "Template rendering took longer than 200ms and was stopped")
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
	// One expensive expression, no loop: the filter's own check stops it
	// (a deadline it always passes: 200 ms it sometimes did not).
	_, err = New(Options{MaxRenderTime: 5 * time.Millisecond}).Render(context.Background(), `{{ range(1, 1000000) | join('') | length }}{{ "a"|ljust:16000000|ljust:16000001 }}`, nil)
	if err == nil {
		t.Fatal("no error")
	}
	if DefaultMaxRenderTime != 10*time.Second || New(Options{}).maxRender != DefaultMaxRenderTime {
		t.Errorf("default render time is %v", New(Options{}).maxRender)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = New(Options{}).Render(ctx, src, nil)
	if err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("context deadline ignored: %v after %v", err, time.Since(start))
	}
}

// CheckAll reports every block's error, each at its place, where Check
// stops at the first; a template that compiles has none.
func TestCheckAll_EveryBlocksErrorAtItsPlace(t *testing.T) {
	src := "{{ 'x' | upper(1, 2) }} ok {{ 'x' | nosuchfilter }}\n{{ x is nosuchtest }} {{ 1 + 2 }}"
	_, errs := CheckAll(src)
	var got []string
	for _, err := range errs {
		var loc *Location
		if !errors.As(err, &loc) {
			t.Fatalf("error without a place: %v", err)
		}
		got = append(got, fmt.Sprintf("%d:%d %s", loc.Line, loc.Col, strings.Fields(loc.Reason)[0]+" "+strings.Fields(loc.Reason)[1]))
	}
	want := []string{"1:10 The 'upper'", "1:37 Filter 'nosuchfilter'", "2:6 Test 'nosuchtest'"}
	if !slices.Equal(got, want) {
		t.Errorf("CheckAll = %q, want %q", got, want)
	}
	if refs, errs := CheckAll("{{ outputs.a.value }} {{ 1 + 2 }}"); len(errs) != 0 || len(refs) != 1 {
		t.Errorf("a good template: refs %v, errors %v", refs, errs)
	}
}
