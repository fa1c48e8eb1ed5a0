package storage_test

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

func TestParseAs_KestraConversions(t *testing.T) {
	day := time.Date(2024, 7, 15, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		typ  storage.Type
		text string
		want any
	}{
		{storage.NUMBER, "123.45", 123.45},
		{storage.NUMBER, "42", int64(42)},
		{storage.NUMBER, "-0.5e3", -500.0},
		{storage.BOOLEAN, "true", true},
		{storage.BOOLEAN, "FALSE", false},
		{storage.DATETIME, "2024-07-15T06:10:33.422Z", time.Date(2024, 7, 15, 6, 10, 33, 422e6, time.UTC)},
		{storage.DATETIME, "2024-07-15T08:10:33+02:00", time.Date(2024, 7, 15, 6, 10, 33, 0, time.UTC)},
		{storage.DATE, "2024-07-15", storage.Date{Time: day}},
		{storage.DURATION, "P1DT5S", storage.Duration{Text: "P1DT5S", D: 24*time.Hour + 5*time.Second}},
		{storage.DURATION, "PT0.5S", storage.Duration{Text: "PT0.5S", D: 500 * time.Millisecond}},
		{storage.JSON, `[1, "a"]`, []any{int64(1), "a"}},
		{storage.JSON, `{"a":{"b":1.5}}`, map[string]any{"a": map[string]any{"b": 1.5}}},
		{storage.STRING, " P1D ", " P1D "},
	} {
		v, err := storage.ParseAs(tc.typ, tc.text)
		if err != nil {
			t.Errorf("ParseAs(%s, %q): %v", tc.typ, tc.text, err)
			continue
		}
		if got := v.V; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseAs(%s, %q) = %#v, want %#v", tc.typ, tc.text, got, tc.want)
		}
	}
}

func TestParseAs_Refusals_NameTypeAndDescribeTextWithoutQuotingIt(t *testing.T) {
	for _, tc := range []struct {
		typ  storage.Type
		text string
	}{
		{storage.NUMBER, "12abc"}, {storage.NUMBER, "NaN"}, {storage.NUMBER, "1e99999"},
		{storage.BOOLEAN, "yes"}, {storage.BOOLEAN, "1"},
		{storage.DATETIME, "2024-07-16"}, {storage.DATE, "2024-13-01"},
		{storage.DURATION, "30 days"}, {storage.DURATION, "P1M"}, {storage.DURATION, "PT"},
		{storage.JSON, "{"}, {storage.JSON, "42"}, {"COLOR", "red"},
		{storage.DATETIME, "2024-07-15T06:10:33+00:60"}, {storage.DATETIME, "2024-07-15T06:10:33-24:00"},
		{storage.JSON, "{\"MARKER\": \"\xff\"}"}, {storage.JSON, "[MARKER]"}, {storage.JSON, "[1e99999]"},
		// What an ION timestamp cannot hold: year 0, also after the offset; digits past nanoseconds.
		{storage.DATE, "0000-01-01"}, {storage.DATETIME, "0000-06-01T00:00:00Z"},
		{storage.DATETIME, "0001-01-01T00:30:00+01:00"}, {storage.DATETIME, "2024-07-15T10:11:12.123456789012Z"},
	} {
		_, err := storage.ParseAs(tc.typ, tc.text)
		if kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("ParseAs(%s, %q) = %v, want EINVALID", tc.typ, tc.text, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, string(tc.typ)) || tc.typ != "COLOR" && !strings.Contains(msg, "("+storage.Describe(tc.text)+")") {
			t.Errorf("ParseAs(%s, %q) message %q does not name the type and describe the text", tc.typ, tc.text, msg)
		}
		if len(tc.text) > 3 && strings.Contains(msg, tc.text) || strings.Contains(msg, "MARKER") || strings.Contains(msg, "99999") {
			t.Errorf("ParseAs(%s, %q) message %q quotes the text", tc.typ, tc.text, msg)
		}
	}
}

func TestDescribe_TypeSizeAndHashPrefix(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"MARKER", "STRING, 6 bytes, sha256:"},
		{int64(42), "NUMBER, 2 bytes, sha256:73475cb4"},
		{map[string]any{"a": "MARKER"}, "JSON, 14 bytes, sha256:"},
		{storage.String("abc"), "STRING, 3 bytes, sha256:ba7816bf"},
		{true, "a BOOLEAN"},
		{nil, "null"},
	} {
		if got := storage.Describe(tc.in); !strings.HasPrefix(got, tc.want) || strings.Contains(got, "MARKER") {
			t.Errorf("Describe(%#v) = %q, want %q…", tc.in, got, tc.want)
		}
	}
}

// Silent changes are gone: invalid UTF-8 in JSON is refused, not turned
// into U+FFFD; -0 reads back as -0; a zone offset of +00:60 is refused.
func TestSilentChanges_RefusedOrKept(t *testing.T) {
	for _, doc := range []string{"\"a\xffb\"", "{\"k\": \"\xc3\"}", "[\"\xed\xa0\x80\"]"} {
		if v, err := storage.FromJSON([]byte(doc)); kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("FromJSON(%q) = %#v, %v; want EINVALID naming UTF-8", doc, v, err)
		}
	}
	if v := storage.Infer("\"a\xffb\""); v.Type != storage.STRING || v.V != "\"a\xffb\"" {
		t.Errorf("Infer of a JSON string with invalid UTF-8 = %#v, want the raw text (refused by Set)", v)
	}
	for _, text := range []string{"-0", "-0.0", "-0e0"} {
		v, err := storage.ParseAs(storage.NUMBER, text)
		if err != nil || v.Text() != "-0" {
			t.Errorf("ParseAs(NUMBER, %q) = %#v (text %q), %v; want -0", text, v, v.Text(), err)
			continue
		}
		var buf bytes.Buffer
		if err := storage.EncodeION(&buf, v); err != nil {
			t.Fatal(err)
		}
		back, err := storage.DecodeION(buf.Bytes(), storage.NUMBER)
		if err != nil || back.Text() != "-0" {
			t.Errorf("ION round trip of %q = %q (%s), %v; want -0", text, back.Text(), buf.String(), err)
		}
	}
	if v, err := storage.FromJSON([]byte(`{"z": -0}`)); err != nil || v.Text() != `{"z":-0}` {
		t.Errorf("FromJSON({\"z\": -0}) = %q, %v", v.Text(), err)
	}
	if v, err := storage.ParseAs(storage.DATETIME, "2024-07-15T08:10:33+02:00"); err != nil || v.Text() != "2024-07-15T06:10:33Z" {
		t.Errorf("a valid offset: %q, %v", v.Text(), err)
	}
	if _, err := storage.ParseInstant("2024-07-15T06:10:33+00:60"); err == nil {
		t.Error("ParseInstant accepted the offset +00:60")
	}
}

func TestValidateNamespace_EmptyPartsRefused(t *testing.T) {
	for _, ns := range []string{"a..b", "x.", "a.b.", "a...b"} {
		if err := storage.ValidateNamespace(ns); kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "non-empty parts") {
			t.Errorf("ValidateNamespace(%q) = %v, want EINVALID", ns, err)
		}
	}
	for _, ns := range []string{"a.b", "a-b.c_d", "a.0"} {
		if err := storage.ValidateNamespace(ns); err != nil {
			t.Errorf("ValidateNamespace(%q) = %v", ns, err)
		}
	}
}

func TestValidateDescription_UTF8NULAndLength(t *testing.T) {
	for d, want := range map[string]string{
		"ok é":                    "",
		strings.Repeat("é", 1000): "",
		strings.Repeat("a", 1001): "1001 characters long; the limit is 1000",
		"bad \xff":                "not valid UTF-8",
		"nul \x00":                "NUL byte",
	} {
		err := storage.ValidateDescription(d)
		if want == "" && err != nil || want != "" && (kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "'description'")) {
			t.Errorf("ValidateDescription(%.20q) = %v, want %q", d, err, want)
		}
	}
}

func TestInfer_LikeKestraTextPlain(t *testing.T) {
	for text, want := range map[string]storage.Type{
		"42": storage.NUMBER, "1.5": storage.NUMBER, "true": storage.BOOLEAN,
		"2024-07-15": storage.DATE, "2024-07-15T06:10:33Z": storage.DATETIME, "PT5S": storage.DURATION,
		`{"a":1}`: storage.JSON, "[1]": storage.JSON, `"quoted"`: storage.STRING,
		"Hello World": storage.STRING, "1.2.3": storage.STRING, "": storage.STRING,
	} {
		if got := storage.Infer(text).Type; got != want {
			t.Errorf("Infer(%q) = %s, want %s", text, got, want)
		}
	}
	if v := storage.Infer(`"quoted"`); v.V != "quoted" {
		t.Errorf(`Infer("quoted") = %q, want the unquoted string`, v.V)
	}
}

func TestFromJSON_JSONTypeSetsType(t *testing.T) {
	for body, want := range map[string]storage.Type{
		`"Hello World"`: storage.STRING, `"PT5S"`: storage.STRING, "42": storage.NUMBER,
		"true": storage.BOOLEAN, `{"a":1}`: storage.JSON, "[]": storage.JSON,
	} {
		v, err := storage.FromJSON([]byte(body))
		if err != nil || v.Type != want {
			t.Errorf("FromJSON(%s) = %v, %v; want %s", body, v.Type, err, want)
		}
	}
	for _, bad := range []string{"null", "{", "1 2", ""} {
		if _, err := storage.FromJSON([]byte(bad)); kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("FromJSON(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestValue_Text_NumbersKeepTheirForm(t *testing.T) {
	for _, tc := range []struct {
		v    storage.Value
		want string
	}{
		{storage.Value{Type: storage.NUMBER, V: int64(42)}, "42"},
		{storage.Value{Type: storage.NUMBER, V: 3.0}, "3"},
		{storage.Value{Type: storage.NUMBER, V: 123.45}, "123.45"},
		{storage.Value{Type: storage.BOOLEAN, V: true}, "true"},
		{storage.Value{Type: storage.JSON, V: map[string]any{"b": int64(1), "a": []any{2.5}}}, `{"a":[2.5],"b":1}`},
	} {
		if got := tc.v.Text(); got != tc.want {
			t.Errorf("Text(%#v) = %q, want %q", tc.v.V, got, tc.want)
		}
	}
}

func TestParseTTL(t *testing.T) {
	if d, err := storage.ParseTTL("P30D"); err != nil || d != 30*24*time.Hour {
		t.Errorf("ParseTTL(P30D) = %v, %v", d, err)
	}
	for text, want := range map[string]time.Duration{"3600": time.Hour, " 90 ": 90 * time.Second, "1": time.Second} {
		if d, err := storage.ParseTTL(text); err != nil || d != want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v", text, d, err, want)
		}
	}
	for _, bad := range []string{"PT0S", "-PT5M", "PT-5M", "30 days", "", "0", "-5", "1.5", "99999999999999999999"} {
		if _, err := storage.ParseTTL(bad); kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "TTL") {
			t.Errorf("ParseTTL(%q) = %v, want an EINVALID naming the TTL", bad, err)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "PT0S", 90 * time.Minute: "PT1H30M", 1500 * time.Millisecond: "PT1.5S", -5 * time.Second: "PT-5S",
	} {
		if got := storage.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := storage.ParseDuration(storage.FormatDuration(d)); err != nil || back.D != d {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", d, back.D, err)
		}
	}
}

func TestNames_Rules(t *testing.T) {
	for _, ok := range []string{"company.team", "a", "a-b_c.d9"} {
		if err := storage.ValidateNamespace(ok); err != nil {
			t.Errorf("ValidateNamespace(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Company", ".a", "a/b", "a b", strings.Repeat("a", 151)} {
		if err := storage.ValidateNamespace(bad); kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "Namespace") {
			t.Errorf("ValidateNamespace(%q) = %v", bad, err)
		}
	}
	for _, ok := range []string{"AN_UPPER.CASE-key", "my_key", strings.Repeat("k", 350)} {
		if err := storage.ValidateKey(ok); err != nil {
			t.Errorf("ValidateKey(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "../x", "a b", "clé", "_x", strings.Repeat("k", 351), "bad$key"} {
		if err := storage.ValidateKey(bad); kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "Key") {
			t.Errorf("ValidateKey(%q) = %v", bad, err)
		}
	}
}

func TestAncestry_ByWholeSegments(t *testing.T) {
	if got, want := storage.Ancestors("a.b.c"), []string{"a.b.c", "a.b", "a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Ancestors = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		ns, from string
		want     bool
	}{{"prod", "prod", true}, {"prod", "prod.eu", true}, {"prod", "prod2", false}, {"prod.eu", "prod", false}} {
		if got := (storage.Access{}).Allows(tc.from, tc.ns); got != tc.want {
			t.Errorf("Access{}.Allows(%q, %q) = %v", tc.from, tc.ns, got)
		}
	}
}

func TestION_RoundTripEveryType(t *testing.T) {
	values := []storage.Value{
		storage.String("Hello \"World\"\n\t\x01 é ✓ \\"),
		{Type: storage.NUMBER, V: int64(-42)}, {Type: storage.NUMBER, V: 123.45}, {Type: storage.NUMBER, V: 1e300},
		{Type: storage.BOOLEAN, V: false},
		{Type: storage.DATETIME, V: time.Date(2024, 7, 15, 6, 10, 33, 123456789, time.UTC)},
		{Type: storage.DATE, V: storage.Date{Time: time.Date(2024, 7, 15, 0, 0, 0, 0, time.UTC)}},
		{Type: storage.DURATION, V: storage.Duration{Text: "P1DT5S", D: 24*time.Hour + 5*time.Second}},
		{Type: storage.JSON, V: map[string]any{"name": "John", "age": int64(32), "tags": []any{"a", nil, true, 1.5}, "address": map[string]any{"city": "Paris"}}},
	}
	for _, v := range values {
		var buf bytes.Buffer
		if err := storage.EncodeION(&buf, v); err != nil {
			t.Fatalf("EncodeION(%v): %v", v, err)
		}
		got, err := storage.DecodeION(buf.Bytes(), v.Type)
		if err != nil {
			t.Fatalf("DecodeION(%s) of %q: %v", v.Type, buf.String(), err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %s: got %#v, want %#v (ION %q)", v.Type, got.V, v.V, buf.String())
		}
	}
}

func TestION_ReadableText(t *testing.T) {
	for _, tc := range []struct {
		v    storage.Value
		want string
	}{
		{storage.String("Hello World"), `"Hello World"`},
		{storage.Value{Type: storage.NUMBER, V: 123.45}, "123.45"},
		{storage.Value{Type: storage.DATE, V: storage.Date{Time: time.Date(2024, 7, 15, 0, 0, 0, 0, time.UTC)}}, "2024-07-15T"}, // an ION day-precision timestamp
		{storage.Value{Type: storage.JSON, V: map[string]any{"a": int64(1)}}, "{a:1}"},
	} {
		var buf bytes.Buffer
		storage.EncodeION(&buf, tc.v)
		if got := strings.TrimSpace(buf.String()); got != tc.want {
			t.Errorf("ION of %v = %q, want %q", tc.v.V, got, tc.want)
		}
	}
}

func TestIONStringReader_ReadsEscapesAndLargeValues(t *testing.T) {
	big := strings.Repeat("ab\"c\\d\n", 100000)
	var buf bytes.Buffer
	storage.EncodeION(&buf, storage.String(big))
	got, err := io.ReadAll(storage.NewIONStringReader(&buf))
	if err != nil || string(got) != big {
		t.Fatalf("stream read: %v (len %d, want %d)", err, len(got), len(big))
	}
	got, err = io.ReadAll(storage.NewIONStringReader(strings.NewReader(`"a\x41\u00e9\U0001F600\'"`)))
	if err != nil || string(got) != "aAé😀'" {
		t.Errorf("escapes: %q, %v", got, err)
	}
	if _, err := io.ReadAll(storage.NewIONStringReader(strings.NewReader(`42`))); err == nil {
		t.Error("reading a non-string as a string: want an error")
	}
}

func TestIsValueObject(t *testing.T) {
	for _, name := range []string{storage.ObjectName("a._kv"), "a/_kv/my_key.ion.cs3l0q8v0000000000g0"} { // today's and older releases'
		if !storage.IsValueObject(name) {
			t.Errorf("IsValueObject(%q) = false", name)
		}
	}
	for _, name := range []string{"_executions/a/_kv/f/x.json", "a/_kv/k.json", "a/_kv/sub/k.ion.x", "_kv/k.ion.x", "a/_kv/sub/x.ion"} {
		if storage.IsValueObject(name) {
			t.Errorf("IsValueObject(%q) = true, want false", name)
		}
	}
}

// The first and last days an ION timestamp holds are stored and read back.
func TestParseAs_DateRangeEnds_RoundTripThroughION(t *testing.T) {
	for _, tc := range []struct {
		typ  storage.Type
		text string
	}{{storage.DATE, "0001-01-01"}, {storage.DATE, "9999-12-31"}, {storage.DATETIME, "0001-01-01T00:00:00Z"},
		{storage.DATETIME, "9999-12-31T23:59:59.999999999Z"}} {
		v, err := storage.ParseAs(tc.typ, tc.text)
		if err != nil {
			t.Fatalf("ParseAs(%s, %s): %v", tc.typ, tc.text, err)
		}
		var b bytes.Buffer
		if err := storage.EncodeION(&b, v); err != nil {
			t.Fatalf("encode %s: %v", tc.text, err)
		}
		back, err := storage.DecodeION(b.Bytes(), tc.typ)
		if err != nil || back.Text() != v.Text() {
			t.Errorf("%s read back as %q, %v", tc.text, back.Text(), err)
		}
	}
}
