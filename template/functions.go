package template

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/flosch/pongo2/v6"
	"github.com/google/uuid"
	"github.com/itchyny/gojq"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/unicode/norm"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// builtin is a function, filter or test. params names the arguments in
// order, for keyword arguments; the first required ones must be given. A
// variadic builtin takes any number of positional arguments.
type builtin struct {
	params   []string
	required int
	variadic bool
	fn       func(c *call) (any, error)
}

// call is one invocation: the filter's input (nil for functions) and the
// arguments in parameter order (nil when not given).
type call struct {
	ev    *evaluator
	at    *expr
	name  string
	in    any
	args  []any
	given int // positional and named arguments given
}

func (c *call) arg(i int) any {
	if i < len(c.args) {
		return c.args[i]
	}
	return nil
}

func (c *call) has(i int) bool { return i < len(c.args) && c.args[i] != nil }

func (c *call) errorf(format string, args ...any) error {
	return kvflow.Errorf(kvflow.EINVALID, "The '%s' %s", c.name, fmt.Sprintf(format, args...))
}

func (c *call) str(i int, what string) (string, error) {
	s, ok := c.arg(i).(string)
	if !ok {
		return "", c.errorf("expects %s to be a string, not %s.", what, kindOf(c.arg(i)))
	}
	return s, nil
}

func (c *call) integer(i int, what string) (int64, error) {
	n, ok := toInt(c.arg(i))
	if !ok {
		return 0, c.errorf("expects %s to be a whole number, not %s.", what, kindOf(c.arg(i)))
	}
	return n, nil
}

// input gives the filter's input as a string.
func (c *call) text() string { return Text(c.in) }

var (
	functions map[string]*builtin
	filters   map[string]*builtin
	tests     map[string]*builtin
)

// pongoFilters may be used with pongo2's own implementation, under guards;
// the other pongo2 filters are not offered.
var pongoFilters = map[string]bool{
	"add": true, "addslashes": true, "center": true, "cut": true, "default_if_none": true, "divisibleby": true,
	"floatformat": true, "get_digit": true, "ljust": true, "rjust": true, "linebreaks": true, "linebreaksbr": true,
	"make_list": true, "phone2numeric": true, "pluralize": true, "random": true, "removetags": true,
	"stringformat": true, "striptags": true, "truncatechars": true, "truncatewords": true, "wordcount": true,
	"wordwrap": true, "yesno": true, "integer": true, "float": true, "urlize": true, "escape": true,
	"length_is": true, "iriencode": true, "truncatechars_html": true, "truncatewords_html": true,
}

func init() {
	fn := func(params []string, required int, f func(c *call) (any, error)) *builtin {
		return &builtin{params: params, required: required, fn: f}
	}
	str := func(f func(s string) any) *builtin {
		return fn(nil, 0, func(c *call) (any, error) { return f(c.text()), nil })
	}
	functions = map[string]*builtin{
		"kv":       fn([]string{"key", "namespace", "errorOnMissing", "version", "default"}, 1, func(c *call) (any, error) { return c.ev.st.engine.kv(c) }),
		"json":     fn([]string{"json"}, 1, fromJSON),
		"fromJson": fn([]string{"json"}, 1, fromJSON),
		"toJson":   fn([]string{"object"}, 1, func(c *call) (any, error) { return encodeJSON(c, c.arg(0)) }),
		"yaml":     fn([]string{"yaml"}, 1, fromYAML),
		"fromYaml": fn([]string{"yaml"}, 1, fromYAML),
		"now":      fn([]string{"timeZone"}, 0, now),
		"uuid":     fn(nil, 0, func(*call) (any, error) { return uuid.NewString(), nil }),
		"range":    fn([]string{"start", "end", "step"}, 2, rangeFunc),
		"min":      {variadic: true, required: 1, fn: minMax(-1)},
		"max":      {variadic: true, required: 1, fn: minMax(1)},
		"render":   fn([]string{"template"}, 1, renderFunc),
		"printContext": fn(nil, 0, func(c *call) (any, error) {
			return encodeJSON(c, map[string]any(c.ev.data))
		}),
	}
	filters = map[string]*builtin{
		"default": fn([]string{"default"}, 1, func(c *call) (any, error) {
			if isBlank(c.in) {
				return c.arg(0), nil
			}
			return c.in, nil
		}),
		"abs":    fn(nil, 0, absFilter),
		"number": fn([]string{"type"}, 0, numberFilter),
		"length": fn(nil, 0, func(c *call) (any, error) {
			if s, ok := c.in.(string); ok {
				return int64(len([]rune(s))), nil
			}
			if l, ok := toList(c.in); ok {
				return int64(len(l)), nil
			}
			if m, ok := toMap(c.in); ok {
				return int64(len(m)), nil
			}
			if c.in == nil {
				return int64(0), nil
			}
			return nil, c.errorf("filter needs a string, a list or a map, not %s.", kindOf(c.in))
		}),
		"keys": fn(nil, 0, func(c *call) (any, error) {
			m, ok := toMap(c.in)
			if !ok {
				return nil, c.errorf("filter needs a map, not %s.", kindOf(c.in))
			}
			return sortedMapKeys(m), nil
		}),
		"values": fn(nil, 0, func(c *call) (any, error) {
			m, ok := toMap(c.in)
			if !ok {
				return nil, c.errorf("filter needs a map, not %s.", kindOf(c.in))
			}
			keys := sortedMapKeys(m)
			out := make([]any, len(keys))
			for i, k := range keys {
				out[i] = m[k.(string)]
			}
			return out, nil
		}),
		"first":   fn(nil, 0, firstLast(true)),
		"last":    fn(nil, 0, firstLast(false)),
		"join":    fn([]string{"separator"}, 0, joinFilter),
		"split":   fn([]string{"delimiter", "limit"}, 1, splitFilter),
		"replace": fn([]string{"replace_pairs", "replacement", "regexp"}, 1, replaceFilter),
		"upper":   str(func(s string) any { return strings.ToUpper(s) }),
		"lower":   str(func(s string) any { return strings.ToLower(s) }),
		"title":   str(title),
		"capitalize": str(func(s string) any {
			r := []rune(s)
			if len(r) > 0 {
				r[0] = unicode.ToUpper(r[0])
			}
			return string(r)
		}),
		"trim":                str(func(s string) any { return strings.TrimSpace(s) }),
		"slice":               fn([]string{"fromIndex", "toIndex"}, 0, sliceFilter),
		"sort":                fn(nil, 0, sortFilter(false)),
		"rsort":               fn(nil, 0, sortFilter(true)),
		"reverse":             fn(nil, 0, reverseFilter),
		"merge":               fn([]string{"items"}, 1, mergeFilter),
		"distinct":            fn(nil, 0, distinctFilter),
		"startsWith":          fn([]string{"prefix"}, 1, affix(strings.HasPrefix)),
		"endsWith":            fn([]string{"suffix"}, 1, affix(strings.HasSuffix)),
		"substringBefore":     fn([]string{"separator"}, 1, substring(false, false)),
		"substringAfter":      fn([]string{"separator"}, 1, substring(true, false)),
		"substringBeforeLast": fn([]string{"separator"}, 1, substring(false, true)),
		"substringAfterLast":  fn([]string{"separator"}, 1, substring(true, true)),
		"slugify":             str(slugify),
		"base64encode":        str(func(s string) any { return base64.StdEncoding.EncodeToString([]byte(s)) }),
		"base64decode": fn(nil, 0, func(c *call) (any, error) {
			b, err := base64.StdEncoding.DecodeString(c.text())
			if err != nil {
				return nil, c.errorf("filter cannot decode its input (%s): %v.", storage.Describe(c.text()), err)
			}
			return string(b), nil
		}),
		"urlencode": str(func(s string) any { return url.QueryEscape(s) }),
		"urldecode": fn(nil, 0, func(c *call) (any, error) {
			s, err := url.QueryUnescape(c.text())
			if err != nil {
				return nil, c.errorf("filter cannot decode its input (%s): it is not URL-encoded.", storage.Describe(c.text()))
			}
			return s, nil
		}),
		"md5":    str(func(s string) any { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }),
		"sha1":   str(func(s string) any { h := sha1.Sum([]byte(s)); return hex.EncodeToString(h[:]) }),
		"sha256": str(func(s string) any { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }),
		"sha512": str(func(s string) any { h := sha512.Sum512([]byte(s)); return hex.EncodeToString(h[:]) }),
		"jq":     fn([]string{"expression"}, 1, jqFilter),
		"toJson": fn(nil, 0, func(c *call) (any, error) { return encodeJSON(c, c.in) }),
		"json":   fn(nil, 0, func(c *call) (any, error) { return encodeJSON(c, c.in) }),
		"toYaml": fn(nil, 0, toYAML),
		"yaml":   fn(nil, 0, toYAML),
		"string": fn(nil, 0, func(c *call) (any, error) { return c.text(), nil }),
		"date":   fn([]string{"format", "existingFormat", "timeZone", "locale"}, 0, dateFilter),
		"dateAdd": fn([]string{"amount", "unit", "format", "existingFormat", "timeZone", "locale"}, 2, func(c *call) (any, error) {
			loc, err := c.zone(4)
			if err != nil {
				return nil, err
			}
			t, err := c.inputTime(3, loc)
			if err != nil {
				return nil, err
			}
			n, err := c.integer(0, "the amount")
			if err != nil {
				return nil, err
			}
			unit, err := c.str(1, "the unit")
			if err != nil {
				return nil, err
			}
			out, err := addDate(t, n, strings.ToUpper(unit))
			if err != nil {
				return nil, c.errorf("filter: %v.", err)
			}
			return out, nil
		}),
		"timestamp":      fn([]string{"existingFormat", "timeZone"}, 0, timestamp(func(t time.Time) int64 { return t.Unix() })),
		"timestampMilli": fn([]string{"existingFormat", "timeZone"}, 0, timestamp(func(t time.Time) int64 { return t.UnixMilli() })),
		"timestampMicro": fn([]string{"existingFormat", "timeZone"}, 0, timestamp(func(t time.Time) int64 { return t.UnixMicro() })),
		"timestampNano":  fn([]string{"existingFormat", "timeZone"}, 0, timestamp(func(t time.Time) int64 { return t.UnixNano() })),
	}
	tests = map[string]*builtin{
		"defined":  fn(nil, 0, func(c *call) (any, error) { return true, nil }), // see evaluator.test
		"null":     fn(nil, 0, func(c *call) (any, error) { return c.in == nil, nil }),
		"empty":    fn(nil, 0, func(c *call) (any, error) { return isBlank(c.in), nil }),
		"even":     fn(nil, 0, parity(0)),
		"odd":      fn(nil, 0, parity(1)),
		"iterable": fn(nil, 0, func(c *call) (any, error) { _, l := toList(c.in); _, m := toMap(c.in); return l || m, nil }),
		"map":      fn(nil, 0, func(c *call) (any, error) { _, m := toMap(c.in); return m, nil }),
		"string":   fn(nil, 0, func(c *call) (any, error) { _, s := c.in.(string); return s, nil }),
		"number":   fn(nil, 0, func(c *call) (any, error) { _, _, n := number(c.in); return n, nil }),
		"json": fn(nil, 0, func(c *call) (any, error) {
			s, ok := c.in.(string)
			if !ok {
				return false, nil
			}
			_, err := decodeJSON(s)
			return err == nil, nil
		}),
	}
}

// call evaluates a function call.
func (ev *evaluator) call(e *expr) (any, error) {
	b, ok := functions[e.name]
	if !ok {
		return nil, ev.undefined(e, "Function '%s' is not defined.", e.name)
	}
	c, err := ev.bind(e, b, e.name, nil)
	if err != nil {
		return nil, err
	}
	return ev.invoke(e, b, c)
}

func (ev *evaluator) invoke(e *expr, b *builtin, c *call) (any, error) {
	v, err := b.fn(c)
	if err != nil {
		return nil, wrapErr(e, err)
	}
	if err := ev.st.interrupted(); err != nil {
		return nil, wrapErr(e, err)
	}
	if s, ok := v.(string); ok && len(s) > MaxOutput {
		return nil, wrapErr(e, tooLong())
	}
	return v, nil
}

// bind evaluates e's arguments into parameter order.
func (ev *evaluator) bind(e *expr, b *builtin, name string, in any) (*call, error) {
	c := &call{ev: ev, at: e, name: name, in: in, given: len(e.args)}
	if b.variadic {
		c.args = make([]any, len(e.args))
	} else {
		c.args = make([]any, len(b.params))
	}
	for i, a := range e.args {
		v, err := ev.eval(a)
		if err != nil {
			return nil, err
		}
		k := i
		if e.names[i] != "" {
			k = paramIndex(b, e.names[i])
		}
		if k >= 0 && k < len(c.args) {
			c.args[k] = v
		}
	}
	return c, nil
}

func paramIndex(b *builtin, name string) int {
	for i, p := range b.params {
		if p == name {
			return i
		}
	}
	return -1
}

// filter evaluates a | name(args).
func (ev *evaluator) filter(e *expr) (any, error) {
	in, err := ev.eval(e.a)
	if e.name == "default" || e.name == "default_if_none" {
		if err != nil && !isUndefined(err) {
			return nil, err
		}
		if err != nil {
			in = nil
		}
		if e.name == "default_if_none" && in != nil {
			return in, nil
		}
		err = nil
	}
	if err != nil {
		return nil, err
	}
	ev.st.read(in)
	if b, ok := filters[e.name]; ok {
		c, err := ev.bind(e, b, e.name+"' filter", in)
		if err != nil {
			return nil, err
		}
		c.name = e.name
		return ev.invoke(e, b, c)
	}
	if e.name == "default_if_none" {
		if len(e.args) == 0 {
			return nil, nil
		}
		return ev.eval(e.args[0])
	}
	return ev.pongoFilter(e, in)
}

// pongoFilter applies one of pongo2's filters, refusing arguments that would
// make outputs of unbounded size.
func (ev *evaluator) pongoFilter(e *expr, in any) (any, error) {
	var param any
	if len(e.args) > 0 {
		var err error
		if param, err = ev.eval(e.args[0]); err != nil {
			return nil, err
		}
	}
	switch e.name {
	case "center", "ljust", "rjust":
		if n, ok := toInt(param); !ok || n < 0 || n > MaxOutput {
			return nil, ev.fail(e, "The '%s' filter width must be between 0 and %d.", e.name, MaxOutput)
		}
	case "floatformat":
		if n, ok := toInt(param); ok && (n > 100 || n < -100) {
			return nil, ev.fail(e, "The 'floatformat' filter takes at most 100 decimals.")
		}
	case "make_list":
		if s, ok := in.(string); ok && len(s) > MaxListInput {
			return nil, ev.fail(e, "The 'make_list' filter takes strings of at most %d bytes.", MaxListInput)
		}
	}
	if err := ev.st.interrupted(); err != nil {
		return nil, wrapErr(e, err)
	}
	out, perr := pongo2.ApplyFilter(e.name, pongo2.AsValue(in), pongo2.AsValue(param))
	if perr != nil {
		msg := "unknown error"
		if perr.OrigError != nil {
			msg = perr.OrigError.Error()
		}
		return nil, ev.fail(e, "The '%s' filter failed: %s", e.name, sentence(msg))
	}
	if err := ev.st.interrupted(); err != nil {
		return nil, wrapErr(e, err)
	}
	v := out.Interface()
	if s, ok := v.(string); ok && len(s) > MaxOutput {
		return nil, wrapErr(e, tooLong())
	}
	return v, nil
}

// test evaluates a is [not] name(args).
func (ev *evaluator) test(e *expr) (any, error) {
	in, err := ev.eval(e.a)
	if e.name == "defined" {
		if err != nil && !isUndefined(err) {
			return nil, err
		}
		return (err == nil) != e.not, nil
	}
	if err != nil {
		return nil, err
	}
	b := tests[e.name]
	c, err := ev.bind(e, b, e.name+"' test", in)
	if err != nil {
		return nil, err
	}
	v, err := ev.invoke(e, b, c)
	if err != nil {
		return nil, err
	}
	return truthy(v) != e.not, nil
}

// didYouMean is " Did you mean 'upper'?" for the name of names nearest to a
// misspelled one (uper, toJSON), or "".
func didYouMean(name string, names []string) string {
	slices.Sort(names)
	if near := kvflow.Nearest(name, names); near != "" {
		return fmt.Sprintf(" Did you mean '%s'?", near)
	}
	return ""
}

// check reports, at compile time, calls of unknown functions, filters and
// tests and wrong arguments.
func check(e *expr) error {
	if e == nil {
		return nil
	}
	switch e.kind {
	case eCall:
		b, ok := functions[e.name]
		if !ok {
			return &syntaxError{e.pos, fmt.Sprintf("Function '%s' does not exist.%s", e.name, didYouMean(e.name, slices.Collect(maps.Keys(functions))))}
		}
		if err := checkArgs(e, b, "'"+e.name+"' function"); err != nil {
			return err
		}
	case eFilter:
		if b, ok := filters[e.name]; ok {
			if err := checkArgs(e, b, "'"+e.name+"' filter"); err != nil {
				return err
			}
		} else if !pongoFilters[e.name] || !pongo2.FilterExists(e.name) {
			names := slices.Collect(maps.Keys(filters))
			for n := range pongoFilters {
				names = append(names, n)
			}
			return &syntaxError{e.pos, fmt.Sprintf("Filter '%s' does not exist.%s", e.name, didYouMean(e.name, names))}
		} else if len(e.args) > 1 || len(e.args) == 1 && e.names[0] != "" {
			return &syntaxError{e.pos, fmt.Sprintf("The filter '%s' takes at most one positional argument.", e.name)}
		}
	case eTest:
		b, ok := tests[e.name]
		if !ok {
			return &syntaxError{e.pos, fmt.Sprintf("Test '%s' does not exist; expected defined, null, empty, even, odd, iterable, map, string, number or json.", e.name)}
		}
		if err := checkArgs(e, b, "'"+e.name+"' test"); err != nil {
			return err
		}
	case eRaise:
		if len(e.args) > 1 {
			return &syntaxError{e.pos, "raise takes one message."}
		}
	}
	for _, sub := range []*expr{e.a, e.b, e.c} {
		if err := check(sub); err != nil {
			return err
		}
	}
	for _, list := range [][]*expr{e.args, e.keys} {
		for _, sub := range list {
			if err := check(sub); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkArgs(e *expr, b *builtin, what string) error {
	seen := make([]bool, len(b.params))
	for i, name := range e.names {
		k := i
		if name != "" {
			if k = paramIndex(b, name); k < 0 {
				return &syntaxError{e.pos, fmt.Sprintf("The %s has no argument '%s'; expected %s.", what, name, paramList(b))}
			}
		}
		if b.variadic {
			continue
		}
		if k >= len(b.params) {
			return &syntaxError{e.pos, fmt.Sprintf("The %s takes at most %d arguments (%s), not %d.", what, len(b.params), paramList(b), len(e.args))}
		}
		if seen[k] {
			return &syntaxError{e.pos, fmt.Sprintf("The %s got the argument '%s' twice.", what, b.params[k])}
		}
		seen[k] = true
	}
	if b.variadic {
		if len(e.args) < b.required {
			return &syntaxError{e.pos, fmt.Sprintf("The %s needs at least %d arguments.", what, b.required)}
		}
		return nil
	}
	for k := 0; k < b.required; k++ {
		if !seen[k] {
			return &syntaxError{e.pos, fmt.Sprintf("The %s expects an argument '%s'.", what, b.params[k])}
		}
	}
	return nil
}

func paramList(b *builtin) string {
	if len(b.params) == 0 {
		return "none"
	}
	return strings.Join(b.params, ", ")
}

// isBlank is Pebble's empty: null, an empty string, list or map. false and
// 0 are values.
func isBlank(v any) bool {
	if v == nil {
		return true
	}
	if s, ok := v.(string); ok {
		return s == ""
	}
	if l, ok := toList(v); ok {
		return len(l) == 0
	}
	if m, ok := toMap(v); ok {
		return len(m) == 0
	}
	return false
}

// kv implements kv(key[, namespace[, errorOnMissing[, version[, default]]]]);
// with a version it reads that version from the key's history, and a default
// (not null) is what a missing or expired key gives.
func (e *Engine) kv(c *call) (any, error) {
	st := c.ev.st
	if !c.has(0) {
		return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function expects an argument 'key'.")
	}
	key, ok := c.arg(0).(string)
	if !ok {
		return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function expects the key to be a string, not %s.", kindOf(c.arg(0)))
	}
	ns := ""
	if c.has(1) {
		if ns, ok = c.arg(1).(string); !ok {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function expects the namespace to be a string, not %s.", kindOf(c.arg(1)))
		}
	}
	errorOnMissing := true
	if c.has(2) {
		if errorOnMissing, ok = c.arg(2).(bool); !ok {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function expects errorOnMissing to be true or false, not %s.", kindOf(c.arg(2)))
		}
	}
	dflt := c.arg(4) // returned for a missing or expired key, whatever errorOnMissing says
	var version int64
	if c.has(3) {
		if version, ok = toInt(c.arg(3)); !ok || version < 1 {
			got := kindOf(c.arg(3))
			if _, _, isNum := number(c.arg(3)); isNum {
				got = fmt.Sprint(c.arg(3)) // "not 0", not "not a number"
			}
			return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function expects the version to be a whole number, 1 or more, not %s.", got)
		}
	}
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	if e.store == nil {
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "The 'kv' function cannot read key '%s': no KV store is configured.", kvflow.Clip(key))
	}

	from := st.ns
	access := storage.Access{Policy: e.policy, Scope: storage.ScopeFrom(st.ctx)}
	var candidates []string
	if ns != "" {
		if err := storage.ValidateNamespace(ns); err != nil {
			return nil, err
		}
		if err := access.Check(from, ns); err != nil {
			return nil, err
		}
		candidates = []string{ns}
	} else {
		if from == "" {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The 'kv' function needs a namespace: give one as its second argument, or render with flow.namespace set.")
		}
		// Nearest first; the first hit wins. Namespaces outside the scope
		// are left out, so inheritance stops at the caller's scope.
		candidates = access.Inherited(from)
		if len(candidates) == 0 {
			return nil, access.Check(from, from)
		}
	}

	if version > 0 {
		return e.kvVersion(st, candidates, key, version, dflt, errorOnMissing)
	}
	expiredIn := ""
	for _, cand := range candidates {
		ent, val, err := e.store.Get(st.ctx, cand, key)
		switch kvflow.ErrorCode(err) {
		case "":
			st.tainted = st.tainted || ent.Sensitive
			return kvValue(val), nil
		case kvflow.ENOTFOUND:
			continue
		case kvflow.EEXPIRED:
			if expiredIn == "" {
				expiredIn = cand
			}
			continue
		default:
			return nil, err
		}
	}
	if dflt != nil {
		return dflt, nil
	}
	if !errorOnMissing {
		return nil, nil
	}
	if expiredIn != "" {
		return nil, kvflow.Errorf(kvflow.EEXPIRED, "The key '%s' in the namespace '%s' has expired.", key, expiredIn)
	}
	return nil, kvflow.Errorf(kvflow.ENOTFOUND, "The key '%s' does not exist in the namespace '%s'.", key, candidates[0])
}

// VersionedKV is what kv(key, version=N) reads through; *storage.Store satisfies it.
type VersionedKV interface {
	GetVersion(ctx context.Context, ns, key string, version int64) (*storage.Version, storage.Value, error)
}

// kvVersion reads a version of key in the first candidate namespace holding
// it; a version missing (or a deletion) gives dflt when there is one.
func (e *Engine) kvVersion(st *renderState, candidates []string, key string, version int64, dflt any, errorOnMissing bool) (any, error) {
	vkv, ok := e.store.(VersionedKV)
	if !ok {
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "The 'kv' function cannot read version %d of key '%s': this KV store keeps no history.", version, kvflow.Clip(key))
	}
	var first error
	for _, cand := range candidates {
		ver, val, err := vkv.GetVersion(st.ctx, cand, key, version)
		switch kvflow.ErrorCode(err) {
		case "":
			st.tainted = st.tainted || ver.Sensitive
			return kvValue(val), nil
		case kvflow.ENOTFOUND:
			if first == nil {
				first = err
			}
			continue
		default:
			return nil, err
		}
	}
	if dflt != nil {
		return dflt, nil
	}
	if !errorOnMissing {
		return nil, nil
	}
	return nil, first
}

// kvValue is what kv() returns for a stored value: strings, numbers, booleans
// and JSON maps or lists as such; instants, dates and durations as ISO text,
// which prints well and compares in order.
func kvValue(v storage.Value) any {
	switch v.Type {
	case storage.DATETIME, storage.DATE, storage.DURATION:
		return v.Text()
	}
	return v.V
}

// fromJSON implements fromJson(x) and its alias json(x): a JSON string is
// parsed (numbers become int64 or float64); anything else passes through.
func fromJSON(c *call) (any, error) {
	if c.given != 1 {
		return nil, c.errorf("function expects one argument, not %d.", c.given)
	}
	s, ok := c.arg(0).(string)
	if !ok {
		return c.arg(0), nil
	}
	v, err := decodeJSON(s)
	if err != nil {
		return nil, c.errorf("function cannot parse its argument (%s): %s.", storage.Describe(s), storage.JSONErrorText(err))
	}
	return v, nil
}

func encodeJSON(c *call, v any) (any, error) {
	s, err := toJSON(v)
	if err != nil {
		return nil, c.errorf("cannot encode %s: %v.", kindOf(v), err)
	}
	return s, nil
}

func fromYAML(c *call) (any, error) {
	s, ok := c.arg(0).(string)
	if !ok {
		return c.arg(0), nil
	}
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return nil, c.errorf("function cannot parse its argument (%s) as YAML.", storage.Describe(s))
	}
	return normalizeYAML(v), nil
}

// normalizeYAML gives decoded YAML the JSON-like types templates use.
func normalizeYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeYAML(e)
		}
		return x
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[Text(k)] = normalizeYAML(e)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = normalizeYAML(e)
		}
		return x
	case int:
		return int64(x)
	}
	return v
}

func toYAML(c *call) (any, error) {
	b, err := yaml.Marshal(normalize(c.in))
	if err != nil {
		return nil, c.errorf("filter cannot encode %s: %v.", kindOf(c.in), err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// zone reads a timeZone argument; UTC when absent.
func (c *call) zone(i int) (*time.Location, error) {
	if !c.has(i) {
		return time.UTC, nil
	}
	name, err := c.str(i, "timeZone")
	if err != nil {
		return nil, err
	}
	loc, lerr := time.LoadLocation(name)
	if lerr != nil || name == "" || name == "Local" {
		return nil, c.errorf("does not know the time zone %q.", kvflow.Clip(name))
	}
	return loc, nil
}

// inputTime reads the filter's input as an instant, parsed with the
// existingFormat argument at index fi when given.
func (c *call) inputTime(fi int, loc *time.Location) (time.Time, error) {
	if c.has(fi) {
		f, err := c.str(fi, "existingFormat")
		if err != nil {
			return time.Time{}, err
		}
		layout, err := goLayout(f)
		if err != nil {
			return time.Time{}, c.errorf("filter: %v.", err)
		}
		t, err := time.ParseInLocation(layout, c.text(), loc)
		if err != nil {
			return time.Time{}, c.errorf("filter cannot read its input (%s) with the format %q.", storage.Describe(c.text()), f)
		}
		return t, nil
	}
	t, err := toTime(c.in, loc)
	if err != nil {
		return time.Time{}, c.errorf("filter: %v.", err)
	}
	return t, nil
}

func now(c *call) (any, error) {
	loc, err := c.zone(0)
	if err != nil {
		return nil, err
	}
	return time.Now().In(loc), nil
}

// dateFilter formats a date with a Java pattern or a named format
// (iso8601, sql_seconds...); without one, as ISO-8601 with an offset.
func dateFilter(c *call) (any, error) {
	loc, err := c.zone(2)
	if err != nil {
		return nil, err
	}
	t, err := c.inputTime(1, loc)
	if err != nil {
		return nil, err
	}
	format := "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
	if c.has(0) {
		if format, err = c.str(0, "the format"); err != nil {
			return nil, err
		}
	}
	if c.has(2) {
		t = t.In(loc) // otherwise the date keeps its own offset
	}
	s, err := formatJava(t, format)
	if err != nil {
		return nil, c.errorf("filter: %v.", err)
	}
	return s, nil
}

func timestamp(f func(time.Time) int64) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		loc, err := c.zone(1)
		if err != nil {
			return nil, err
		}
		t, err := c.inputTime(0, loc)
		if err != nil {
			return nil, err
		}
		return f(t), nil
	}
}

func rangeFunc(c *call) (any, error) {
	from, err := c.integer(0, "start")
	if err != nil {
		return nil, err
	}
	to, err := c.integer(1, "end")
	if err != nil {
		return nil, err
	}
	step := int64(1)
	if c.has(2) {
		if step, err = c.integer(2, "step"); err != nil {
			return nil, err
		}
	}
	v, err := makeRange(c.at, from, to, step)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func minMax(sign int) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		items := c.args
		if len(items) == 1 {
			if l, ok := toList(items[0]); ok {
				items = l
			}
		}
		if len(items) == 0 {
			return nil, nil
		}
		best := items[0]
		for _, x := range items[1:] {
			r, ok := compare(x, best)
			if !ok {
				return nil, c.errorf("function cannot compare %s with %s.", kindOf(x), kindOf(best))
			}
			if r*sign > 0 {
				best = x
			}
		}
		return best, nil
	}
}

// maxRenderDepth bounds render() inside render().
const maxRenderDepth = 8

func renderFunc(c *call) (any, error) {
	src, ok := c.arg(0).(string)
	if !ok {
		return c.arg(0), nil
	}
	st := c.ev.st
	if st.depth >= maxRenderDepth {
		return nil, c.errorf("function is nested more than %d deep.", maxRenderDepth)
	}
	st.depth++
	defer func() { st.depth-- }()
	return st.engine.renderNested(st, src, c.ev.data)
}

func absFilter(c *call) (any, error) {
	if isFloat(c.in) {
		f, _ := toFloat(c.in)
		return math.Abs(f), nil
	}
	i, ok := toInt(c.in)
	if !ok {
		return nil, c.errorf("filter needs a number, not %s.", kindOf(c.in))
	}
	if i < 0 && i != math.MinInt64 {
		return -i, nil
	}
	return i, nil
}

func numberFilter(c *call) (any, error) {
	typ := ""
	if c.has(0) {
		typ = strings.ToUpper(Text(c.arg(0)))
	}
	n := c.in
	if _, _, ok := number(n); !ok && !storage.IsBigNumber(n) {
		s := strings.TrimSpace(c.text())
		if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok { // as Kestra's createNumber
			i, err := strconv.ParseInt(h, 16, 64)
			if err != nil {
				return nil, c.errorf("filter cannot read its input (%s) as a hexadecimal number.", storage.Describe(s))
			}
			n = i
		} else if v, err := storage.ParseAs(storage.NUMBER, s); err == nil {
			n = v.V // exact: an int64, a float64 that reads back the same, or the decimal itself
		} else {
			return nil, c.errorf("filter cannot read its input (%s) as a number.", storage.Describe(s))
		}
	}
	switch typ {
	case "", "BIGDECIMAL":
		return n, nil
	case "INT", "INTEGER", "LONG", "BIGINTEGER":
		if i, ok := toInt(n); ok {
			return i, nil
		}
		if x, ok := n.(json.Number); ok && typ == "BIGINTEGER" && !strings.ContainsAny(string(x), ".eE") {
			return x, nil
		}
		return nil, c.errorf("filter cannot read its input (%s) as a whole number of type %s.", storage.Describe(Text(n)), typ)
	case "FLOAT", "DOUBLE": // as Kestra's: a double, rounded
		if x, ok := n.(json.Number); ok {
			f, _ := strconv.ParseFloat(string(x), 64)
			return f, nil
		}
		i, f, _ := number(n)
		return f + float64(i), nil // one of them is 0
	}
	return nil, c.errorf("filter does not know the type %q; expected INT, LONG, FLOAT, DOUBLE, BIGDECIMAL or BIGINTEGER.", kvflow.Clip(typ))
}

func firstLast(first bool) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		if s, ok := c.in.(string); ok {
			r := []rune(s)
			if len(r) == 0 {
				return nil, nil
			}
			if first {
				return string(r[0]), nil
			}
			return string(r[len(r)-1]), nil
		}
		l, ok := toList(c.in)
		if !ok {
			return nil, c.errorf("filter needs a list or a string, not %s.", kindOf(c.in))
		}
		if len(l) == 0 {
			return nil, nil
		}
		if first {
			return l[0], nil
		}
		return l[len(l)-1], nil
	}
}

func joinFilter(c *call) (any, error) {
	l, ok := toList(c.in)
	if !ok {
		return nil, c.errorf("filter needs a list, not %s.", kindOf(c.in))
	}
	sep := ""
	if c.has(0) {
		sep = Text(c.arg(0))
	}
	var b strings.Builder
	for i, x := range l {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(Text(x))
		if b.Len() > MaxOutput {
			return nil, tooLong()
		}
	}
	return b.String(), nil
}

func splitFilter(c *call) (any, error) {
	s := c.text()
	if len(s) > MaxListInput {
		return nil, c.errorf("filter takes strings of at most %d bytes.", MaxListInput)
	}
	sep, err := c.str(0, "the delimiter")
	if err != nil {
		return nil, err
	}
	n := -1
	if c.has(1) {
		limit, err := c.integer(1, "the limit")
		if err != nil {
			return nil, err
		}
		if limit > 0 {
			n = int(min(limit, MaxSteps))
		}
	}
	parts := strings.SplitN(s, sep, n)
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

func replaceFilter(c *call) (any, error) {
	s := c.text()
	var pairs []string
	re, _ := c.arg(2).(bool)
	if m, ok := toMap(c.arg(0)); ok {
		for _, k := range sortedMapKeys(m) {
			pairs = append(pairs, k.(string), Text(m[k.(string)]))
		}
		if b, ok := c.arg(1).(bool); ok { // Kestra's replace(replace_pairs, regexp)
			re = b
		}
		if re { // the keys are regular expressions
			for i := 0; i+1 < len(pairs); i += 2 {
				var err error
				if s, err = regexReplace(c, s, pairs[i], pairs[i+1]); err != nil {
					return nil, err
				}
			}
			return s, nil
		}
	} else {
		from, err := c.str(0, "the text to replace")
		if err != nil {
			return nil, err
		}
		if !c.has(1) {
			return nil, c.errorf("filter expects a map of replacements, or the text to replace and its replacement.")
		}
		to := Text(c.arg(1))
		if re {
			return regexReplace(c, s, from, to)
		}
		pairs = []string{from, to}
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] == "" {
			continue
		}
		if n := strings.Count(s, pairs[i]); n > 0 && len(s)+n*(len(pairs[i+1])-len(pairs[i])) > MaxOutput {
			return nil, tooLong()
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s, nil
}

// regexReplace replaces every match of pattern in s, refusing beforehand a
// result that could pass MaxOutput (each $ reference may repeat a match).
func regexReplace(c *call, s, pattern, repl string) (string, error) {
	rx, err := regexp.Compile(pattern)
	if err != nil {
		return "", c.errorf("filter cannot compile the regular expression %q: %v.", kvflow.Clip(pattern), err)
	}
	n := len(rx.FindAllStringIndex(s, -1))
	if len(s)*(1+strings.Count(repl, "$"))+n*len(repl) > MaxOutput {
		return "", tooLong()
	}
	return rx.ReplaceAllString(s, repl), nil
}

func limited(s string) (any, error) {
	if len(s) > MaxOutput {
		return nil, tooLong()
	}
	return s, nil
}

func title(s string) any {
	r := []rune(s)
	start := true
	for i, ch := range r {
		if unicode.IsSpace(ch) {
			start = true
			continue
		}
		if start {
			r[i] = unicode.ToUpper(ch)
		} else {
			r[i] = unicode.ToLower(ch)
		}
		start = false
	}
	return string(r)
}

func sliceFilter(c *call) (any, error) {
	from, to := int64(0), int64(-1)
	var err error
	if c.has(0) {
		if from, err = c.integer(0, "fromIndex"); err != nil {
			return nil, err
		}
	}
	if c.has(1) {
		if to, err = c.integer(1, "toIndex"); err != nil {
			return nil, err
		}
	}
	bounds := func(n int64) (int64, int64, error) {
		t := to
		if !c.has(1) {
			t = n
		}
		if from < 0 || t > n || from > t {
			return 0, 0, c.errorf("filter indexes %d to %d are out of 0 to %d.", from, t, n)
		}
		return from, t, nil
	}
	if s, ok := c.in.(string); ok {
		r := []rune(s)
		a, b, err := bounds(int64(len(r)))
		if err != nil {
			return nil, err
		}
		return string(r[a:b]), nil
	}
	l, ok := toList(c.in)
	if !ok {
		return nil, c.errorf("filter needs a list or a string, not %s.", kindOf(c.in))
	}
	a, b, err := bounds(int64(len(l)))
	if err != nil {
		return nil, err
	}
	return append([]any(nil), l[a:b]...), nil
}

func sortFilter(desc bool) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		l, ok := toList(c.in)
		if !ok {
			return nil, c.errorf("filter needs a list, not %s.", kindOf(c.in))
		}
		out := append([]any(nil), l...)
		var bad error
		sort.SliceStable(out, func(i, j int) bool {
			r, ok := compare(out[i], out[j])
			if !ok && bad == nil {
				bad = c.errorf("filter cannot compare %s with %s.", kindOf(out[i]), kindOf(out[j]))
			}
			if desc {
				return r > 0
			}
			return r < 0
		})
		if bad != nil {
			return nil, bad
		}
		return out, nil
	}
}

func reverseFilter(c *call) (any, error) {
	if s, ok := c.in.(string); ok {
		r := []rune(s)
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return string(r), nil
	}
	l, ok := toList(c.in)
	if !ok {
		return nil, c.errorf("filter needs a list or a string, not %s.", kindOf(c.in))
	}
	out := make([]any, len(l))
	for i, x := range l {
		out[len(l)-1-i] = x
	}
	return out, nil
}

func mergeFilter(c *call) (any, error) {
	if m, ok := toMap(c.in); ok {
		add, ok := toMap(c.arg(0))
		if !ok {
			return nil, c.errorf("filter merges a map with a map, not %s.", kindOf(c.arg(0)))
		}
		out := make(map[string]any, len(m)+len(add))
		for k, v := range m {
			out[k] = v
		}
		for k, v := range add {
			out[k] = v
		}
		return out, nil
	}
	l, ok := toList(c.in)
	if !ok {
		return nil, c.errorf("filter needs a list or a map, not %s.", kindOf(c.in))
	}
	add, ok := toList(c.arg(0))
	if !ok {
		add = []any{c.arg(0)}
	}
	return append(append(make([]any, 0, len(l)+len(add)), l...), add...), nil
}

func distinctFilter(c *call) (any, error) {
	l, ok := toList(c.in)
	if !ok {
		return nil, c.errorf("filter needs a list, not %s.", kindOf(c.in))
	}
	var out []any
	for _, x := range l {
		dup := false
		for _, y := range out {
			if equal(x, y) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, x)
		}
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

func affix(f func(s, p string) bool) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		return f(c.text(), Text(c.arg(0))), nil
	}
}

func substring(after, last bool) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		s, sep := c.text(), Text(c.arg(0))
		var i int
		if last {
			i = strings.LastIndex(s, sep)
		} else {
			i = strings.Index(s, sep)
		}
		switch {
		case i < 0 && after:
			return "", nil
		case i < 0:
			return s, nil
		case after:
			return s[i+len(sep):], nil
		}
		return s[:i], nil
	}
}

// slugify lowercases, drops accents and joins words with '-'.
func slugify(s string) any {
	var b strings.Builder
	dash := false
	for _, r := range norm.NFKD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if r > unicode.MaxASCII {
				continue
			}
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(unicode.ToLower(r))
		default:
			dash = true
		}
	}
	return b.String()
}

func parity(want int64) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		i, ok := toInt(c.in)
		if !ok {
			return nil, c.errorf("test needs a whole number, not %s.", kindOf(c.in))
		}
		return (i%2+2)%2 == want, nil
	}
}

// jqFilter runs a jq program on the input and returns the list of its
// results, as Kestra does (use | first for one value). Text input is read as JSON.
func jqFilter(c *call) (any, error) {
	src, err := c.str(0, "the expression")
	if err != nil {
		return nil, err
	}
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, c.errorf("filter cannot parse %q: %v.", kvflow.Clip(src), err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, c.errorf("filter cannot compile %q: %v.", kvflow.Clip(src), err)
	}
	in := c.in
	if s, ok := in.(string); ok {
		if v, err := decodeJSON(s); err == nil {
			in = v
		}
	}
	in, err = jqInput(normalize(in))
	if err != nil {
		return nil, c.errorf("filter cannot read %s: %v.", kindOf(c.in), err)
	}
	out := []any{}
	it := code.RunWithContext(c.ev.st.ctx, in)
	for {
		v, ok := it.Next()
		if !ok {
			break
		}
		if err, ok := v.(error); ok {
			if _, halt := err.(*gojq.HaltError); halt && err.(*gojq.HaltError).Value() == nil {
				break
			}
			return nil, c.errorf("filter failed: %v.", err)
		}
		out = append(out, jqOutput(v))
		if len(out) > MaxSteps {
			return nil, kvflow.Errorf(kvflow.ETOOLARGE, "The 'jq' filter gave more than %d results.", MaxSteps)
		}
		if err := c.ev.st.interrupted(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// jqInput gives gojq the types it accepts: int, float64, and JSON's others.
func jqInput(v any) (any, error) {
	switch x := v.(type) {
	case int64:
		return int(x), nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := jqInput(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := jqInput(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case nil, bool, float64, string, int:
		return v, nil
	case time.Time:
		return Text(x), nil
	}
	if m, ok := toMap(v); ok {
		return jqInput(m)
	}
	if l, ok := toList(v); ok {
		return jqInput(l)
	}
	return nil, fmt.Errorf("jq cannot read %T", v)
}

// jqOutput turns gojq's numbers back into int64 or float64.
func jqOutput(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = jqOutput(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = jqOutput(e)
		}
		return x
	}
	if b, ok := v.(interface{ Int64() int64 }); ok {
		return b.Int64()
	}
	return v
}

// decodeJSON reads one JSON document as storage does: numbers become int64,
// or float64 when they have a fraction or an exponent.
func decodeJSON(s string) (any, error) { return storage.DecodeJSON([]byte(s)) }
