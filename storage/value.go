package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kvflow/kvflow"
)

// Type is the declared type of a value. It is stored in metadata, never inferred on read.
type Type string

const (
	STRING   Type = "STRING"
	NUMBER   Type = "NUMBER"
	BOOLEAN  Type = "BOOLEAN"
	DATETIME Type = "DATETIME"
	DATE     Type = "DATE"
	DURATION Type = "DURATION"
	JSON     Type = "JSON"
)

// Types lists every type in the order users see them.
var Types = []Type{STRING, NUMBER, BOOLEAN, DATETIME, DATE, DURATION, JSON}

// ParseType reads a type name, case-insensitively.
func ParseType(s string) (Type, error) {
	t := Type(strings.ToUpper(strings.TrimSpace(s)))
	for _, known := range Types {
		if t == known {
			return t, nil
		}
	}
	return "", kvflow.Errorf(kvflow.EINVALID, "Type %q is unknown; expected one of STRING, NUMBER, BOOLEAN, DATETIME, DATE, DURATION, JSON.", kvflow.Clip(s))
}

// Value is a typed value. V holds, by type:
//
//	STRING   string
//	NUMBER   int64, float64, or json.Number for a number neither holds exactly (see number.go)
//	BOOLEAN  bool
//	DATETIME time.Time in UTC
//	DATE     Date
//	DURATION Duration
//	JSON     map[string]any or []any, whose numbers are NUMBERs' Go values
type Value struct {
	Type Type
	V    any
}

// Date is a calendar date with no time of day or zone.
type Date struct{ time.Time }

func (d Date) String() string { return d.Format(time.DateOnly) }

// Duration is an ISO-8601 duration as written (PT5M, P1DT5S) with its length.
type Duration struct {
	Text string
	D    time.Duration
}

func (d Duration) String() string { return d.Text }

func String(s string) Value { return Value{STRING, s} }

// Text is the canonical text of the value: what a template renders and what
// ParseAs reads back to the same value.
func (v Value) Text() string {
	switch x := v.V.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return formatFloat(x)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case Date:
		return x.String()
	case Duration:
		return x.Text
	default:
		b, _ := json.Marshal(v.V)
		return string(b)
	}
}

// JSONValue is the value as the REST API shows it: NUMBER a JSON number,
// BOOLEAN a boolean, JSON an object or array, the others ISO strings.
func (v Value) JSONValue() any {
	switch v.V.(type) {
	case int64, float64, json.Number, bool, map[string]any, []any:
		return v.V
	default:
		return v.Text()
	}
}

func formatFloat(f float64) string {
	b, err := json.Marshal(f)
	if err != nil { // NaN and ±Inf never get this far; keep a readable fallback.
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return string(b)
}

// Describe says what a value is without quoting it, for error messages that
// may be stored (task runs, logs): its kind, size and a short SHA-256 prefix,
// as in "STRING, 6 bytes, sha256:1a2b3c4d". Errors never quote a value (I5).
func Describe(x any) string {
	var kind, text string
	switch v := x.(type) {
	case nil:
		return "null"
	case Value:
		kind, text = string(v.Type), v.Text()
	case string:
		kind, text = string(STRING), v
	case []byte:
		kind, text = "bytes", string(v)
	case bool:
		return "a BOOLEAN"
	case map[string]any, []any:
		b, _ := json.Marshal(v)
		kind, text = string(JSON), string(b)
	default:
		if val, err := FromGo(x); err == nil {
			kind, text = string(val.Type), val.Text()
		} else {
			kind, text = fmt.Sprintf("%T", x), fmt.Sprint(x)
		}
	}
	sum := sha256.Sum256([]byte(text))
	return fmt.Sprintf("%s, %d bytes, sha256:%s", kind, len(text), hex.EncodeToString(sum[:4]))
}

// ParseAs reads text as a value of type t (a flow's kvType, a typed API call).
// Text that does not parse as t is refused with the type and a description
// of the text (Describe), never the text itself.
func ParseAs(t Type, text string) (Value, error) {
	refuse := func(expected string) (Value, error) {
		return Value{}, kvflow.Errorf(kvflow.EINVALID, "Value (%s) is not a valid %s: expected %s.", Describe(text), t, expected)
	}
	t, err := ParseType(string(t))
	if err != nil {
		return Value{}, err
	}
	s := strings.TrimSpace(text)
	switch t {
	case STRING:
		return String(text), nil
	case NUMBER:
		if n, ok := parseNumber(s); ok {
			return Value{NUMBER, n}, nil
		}
		return refuse("a number such as 42 or 123.45")
	case BOOLEAN:
		if b, err := strconv.ParseBool(strings.ToLower(s)); err == nil && (len(s) > 1) {
			return Value{BOOLEAN, b}, nil
		}
		return refuse("true or false")
	case DATETIME:
		if tm, err := ParseInstant(s); err == nil && storable(tm) {
			return Value{DATETIME, tm.UTC()}, nil
		}
		return refuse("an ISO-8601 instant such as 2024-07-15T06:10:33Z, from year 1 to 9999 in UTC, at most 9 fractional digits")
	case DATE:
		if d, err := time.Parse(time.DateOnly, s); err == nil && storable(d) {
			return Value{DATE, Date{d}}, nil
		}
		return refuse("an ISO-8601 date such as 2024-07-15, from year 1 to 9999")
	case DURATION:
		if d, err := ParseDuration(s); err == nil {
			return Value{DURATION, d}, nil
		}
		return refuse("an ISO-8601 duration such as PT5M or P1DT5S")
	case JSON:
		v, err := DecodeJSON([]byte(s))
		if err != nil {
			return Value{}, kvflow.Errorf(kvflow.EINVALID, "Value (%s) is not a valid JSON: %s.", Describe(text), jsonErr(err))
		}
		switch v.(type) {
		case map[string]any, []any:
			return Value{JSON, v}, nil
		}
	}
	return refuse("a JSON object or array")
}

// Infer reads untyped text the way Kestra's API reads a text/plain body:
// a number, a boolean, a date, an instant, a duration, a JSON object, array or
// string, and otherwise the text itself as a STRING.
func Infer(text string) Value {
	s := strings.TrimSpace(text)
	switch {
	case s == "":
		return String(text)
	case s == "true" || s == "false":
		return Value{BOOLEAN, s == "true"}
	case strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") || strings.HasPrefix(s, `"`):
		if v, err := DecodeJSON([]byte(s)); err == nil {
			if str, ok := v.(string); ok {
				return String(str)
			}
			return Value{JSON, v}
		}
	}
	for _, t := range []Type{NUMBER, DATE, DATETIME, DURATION} {
		if v, err := ParseAs(t, s); err == nil {
			return v
		}
	}
	return String(text)
}

// FromJSON reads a JSON document whose JSON type sets the value's type:
// a string is a STRING, a number a NUMBER, a boolean a BOOLEAN, an object or
// array a JSON. null is refused.
func FromJSON(doc []byte) (Value, error) {
	v, err := DecodeJSON(doc)
	if err != nil {
		return Value{}, kvflow.Errorf(kvflow.EINVALID, "Body is not valid JSON: %s.", jsonErr(err))
	}
	if v == nil {
		return Value{}, kvflow.Errorf(kvflow.EINVALID, "Value cannot be null.")
	}
	return FromGo(v)
}

// FromGo types a Go value, such as a template's result: string → STRING,
// integers and floats → NUMBER, bool → BOOLEAN, time.Time → DATETIME,
// Date → DATE, Duration or time.Duration → DURATION, maps and slices → JSON.
func FromGo(x any) (Value, error) {
	switch v := x.(type) {
	case Value:
		return v, nil
	case string:
		return String(v), nil
	case bool:
		return Value{BOOLEAN, v}, nil
	case int:
		return Value{NUMBER, int64(v)}, nil
	case int8, int16, int32, int64, uint, uint8, uint16, uint32:
		n, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64)
		return Value{NUMBER, n}, nil
	case uint64:
		if v > math.MaxInt64 {
			return Value{NUMBER, json.Number(strconv.FormatUint(v, 10))}, nil
		}
		return Value{NUMBER, int64(v)}, nil
	case *big.Int:
		if v != nil {
			if n, ok := parseNumber(v.String()); ok {
				return Value{NUMBER, n}, nil
			}
			return Value{}, kvflow.Errorf(kvflow.EINVALID, "A NUMBER has at most %d characters.", MaxNumberText)
		}
	case float32:
		return FromGo(float64(v))
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Value{}, kvflow.Errorf(kvflow.EINVALID, "Value %v is not a valid NUMBER: expected a finite number.", v)
		}
		return Value{NUMBER, v}, nil
	case json.Number:
		if n, ok := parseNumber(v.String()); ok {
			return Value{NUMBER, n}, nil
		}
	case time.Time:
		if !storable(v) {
			return Value{}, kvflow.Errorf(kvflow.EINVALID, "Instant %s is not a valid DATETIME: expected a year from 1 to 9999 in UTC.", v.UTC().Format(time.RFC3339Nano))
		}
		return Value{DATETIME, v.UTC()}, nil
	case Date:
		if !storable(v.Time) {
			return Value{}, kvflow.Errorf(kvflow.EINVALID, "Date %s is not a valid DATE: expected a year from 1 to 9999.", v.Time.Format(time.DateOnly))
		}
		return Value{DATE, v}, nil
	case Duration:
		return Value{DURATION, v}, nil
	case time.Duration:
		return Value{DURATION, Duration{FormatDuration(v), v}}, nil
	case nil:
		return Value{}, kvflow.Errorf(kvflow.EINVALID, "Value cannot be null.")
	}
	// Maps, slices and structs: normalise through JSON so JSON values hold only
	// map[string]any, []any, string, int64, float64, bool and nil.
	b, err := json.Marshal(x)
	if err != nil {
		return Value{}, kvflow.Errorf(kvflow.EINVALID, "Value of Go type %T cannot be stored: %v.", x, err)
	}
	v, err := DecodeJSON(b)
	if err != nil {
		return Value{}, kvflow.Errorf(kvflow.EINVALID, "Value of Go type %T cannot be stored: %v.", x, err)
	}
	switch v.(type) {
	case map[string]any, []any:
		return Value{JSON, v}, nil
	}
	return FromGo(v)
}

var numberRe = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// ParseInstant reads an RFC 3339 instant such as 2024-07-15T06:10:33Z or
// 2024-07-15T08:10:33+02:00, keeping its offset. Unlike time.Parse it refuses a zone
// offset whose hours pass 23 or minutes pass 59 (+00:60).
func ParseInstant(s string) (time.Time, error) {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if _, frac, ok := strings.Cut(s, "."); ok {
		if n := strings.IndexFunc(frac, func(r rune) bool { return r < '0' || r > '9' }); n > 9 {
			return time.Time{}, fmt.Errorf("%d fractional digits: at most 9 (nanoseconds)", n)
		}
	}
	if n := len(s); n >= 6 && (s[n-6] == '+' || s[n-6] == '-') && s[n-3] == ':' {
		if h, m := s[n-5:n-3], s[n-2:]; h > "23" || m > "59" {
			return time.Time{}, fmt.Errorf("zone offset %s is out of range", s[n-6:])
		}
	}
	return tm, nil
}

// storable reports whether an ION timestamp holds t: years 1 to 9999, in UTC.
func storable(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}

// DecodeJSON decodes one JSON document. Numbers are kept exactly, as
// parseNumber reads them; a number over MaxNumberText characters is refused.
func DecodeJSON(b []byte) (any, error) {
	// encoding/json would turn invalid UTF-8 into U+FFFD: refuse it instead.
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("the JSON text is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return normalizeJSON(v)
}

// normalizeJSON turns json.Number leaves into NUMBERs' Go values, in place.
func normalizeJSON(v any) (any, error) {
	var err error
	switch x := v.(type) {
	case json.Number:
		if n, ok := parseNumber(x.String()); ok {
			return n, nil
		}
		return nil, fmt.Errorf("a number is out of range: written out in full, a NUMBER has at most %d characters", MaxNumberText)
	case map[string]any:
		for k, e := range x {
			if x[k], err = normalizeJSON(e); err != nil {
				return nil, err
			}
		}
	case []any:
		for i, e := range x {
			if x[i], err = normalizeJSON(e); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// jsonErr explains a DecodeJSON error without the character it stopped at,
// which is part of the value: "invalid character looking for beginning of
// value at offset 1".
func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at offset %d", JSONErrorText(se), se.Offset)
	}
	return err.Error()
}

// JSONErrorText is a JSON decoding error's text with any quoted character of
// the input left out.
func JSONErrorText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := jsonKind(te.Type)
		if te.Field == "" {
			return fmt.Sprintf("expected %s, not a JSON %s", want, te.Value)
		}
		// The path names embedded Go structs too (ExportLine.key): JSON
		// names here start lower-case.
		field := te.Field
		for head, rest, ok := strings.Cut(field, "."); ok && head != "" && head[0] >= 'A' && head[0] <= 'Z'; head, rest, ok = strings.Cut(field, ".") {
			field = rest
		}
		return fmt.Sprintf("field '%s' is a JSON %s, expected %s", field, te.Value, want)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + strings.ReplaceAll(f, `"`, "'")
	}
	msg := err.Error()
	const prefix = "invalid character '"
	if rest, ok := strings.CutPrefix(msg, prefix); ok {
		// The quoted character is one rune, maybe escaped ('\'', '\n', '\x00').
		if i := strings.Index(rest[1:], "' "); i >= 0 {
			return "invalid character" + rest[i+2:]
		}
		return "invalid character"
	}
	return msg
}

// jsonKind says, for an error, what JSON a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	if t.ConvertibleTo(reflect.TypeFor[float64]()) {
		return "a number"
	}
	return "another JSON type"
}

// sortedKeys returns a map's keys in order, for deterministic encodings.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// durationRe is java.time.Duration's grammar: days, hours, minutes and
// seconds with up to nine fraction digits. Years, months and weeks have no
// fixed length and are refused, as Java refuses them.
var durationRe = regexp.MustCompile(`^(?i)([-+]?)P(?:([-+]?[0-9]+)D)?(T(?:([-+]?[0-9]+)H)?(?:([-+]?[0-9]+)M)?(?:([-+]?[0-9]+)(?:[.,]([0-9]{0,9}))?S)?)?$`)

// ParseDuration reads an ISO-8601 duration such as PT5M, P30D or P1DT5.5S.
func ParseDuration(s string) (Duration, error) {
	m := durationRe.FindStringSubmatch(s)
	if m == nil || (m[2] == "" && m[3] == "") || strings.EqualFold(m[3], "T") {
		return Duration{}, kvflow.Errorf(kvflow.EINVALID, "%q is not an ISO-8601 duration such as PT5M, P30D or P1DT5S.", kvflow.Clip(s))
	}
	var total big.Int
	add := func(num string, unit time.Duration) {
		if num == "" {
			return
		}
		n, _ := new(big.Int).SetString(strings.TrimPrefix(num, "+"), 10)
		total.Add(&total, n.Mul(n, big.NewInt(int64(unit))))
	}
	add(m[2], 24*time.Hour)
	add(m[4], time.Hour)
	add(m[5], time.Minute)
	add(m[6], time.Second)
	if m[7] != "" {
		frac := (m[7] + "000000000")[:9]
		n, _ := strconv.ParseInt(frac, 10, 64)
		if strings.HasPrefix(m[6], "-") {
			n = -n
		}
		total.Add(&total, big.NewInt(n))
	}
	if m[1] == "-" {
		total.Neg(&total)
	}
	if !total.IsInt64() {
		return Duration{}, kvflow.Errorf(kvflow.EINVALID, "Duration %q is too long: the limit is about 292 years.", kvflow.Clip(s))
	}
	return Duration{Text: s, D: time.Duration(total.Int64())}, nil
}

// FormatDuration writes d in ISO-8601, as java.time.Duration prints it (PT1H30M).
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("PT")
	neg := d < 0
	u := uint64(d)
	if neg {
		u = -u
	}
	sign := ""
	if neg {
		sign = "-"
	}
	h, u := u/uint64(time.Hour), u%uint64(time.Hour)
	m, u := u/uint64(time.Minute), u%uint64(time.Minute)
	s, ns := u/uint64(time.Second), u%uint64(time.Second)
	if h > 0 {
		fmt.Fprintf(&b, "%s%dH", sign, h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%s%dM", sign, m)
	}
	if s > 0 || ns > 0 {
		fmt.Fprintf(&b, "%s%d", sign, s)
		if ns > 0 {
			b.WriteString(strings.TrimRight(fmt.Sprintf(".%09d", ns), "0"))
		}
		b.WriteString("S")
	}
	return b.String()
}

// ParseTTL reads a time-to-live: an ISO-8601 duration (PT1H) or a whole
// number of seconds (3600), positive.
func ParseTTL(s string) (time.Duration, error) { return ParsePositiveDuration("TTL", s) }

// ParsePositiveDuration reads a positive duration as ParseTTL does; what
// names it in errors ("TTL"; "" when the caller names the field).
func ParsePositiveDuration(what, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	name := strings.TrimSpace(what + " " + strconv.Quote(kvflow.Clip(s)))
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > int64(math.MaxInt64/time.Second) {
			return 0, kvflow.Errorf(kvflow.EINVALID, "%s is too long: the limit is about 292 years.", name)
		}
		if n == 0 {
			return 0, kvflow.Errorf(kvflow.EINVALID, "%s must be positive.", name)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, kvflow.Errorf(kvflow.EINVALID, "%s is not an ISO-8601 duration such as PT5M, P30D or P1DT5S, or a whole number of seconds.", name)
	}
	if d.D <= 0 {
		return 0, kvflow.Errorf(kvflow.EINVALID, "%s must be positive.", name)
	}
	return d.D, nil
}
