package storage

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The hand-written export line is what encoding/json writes (without HTML
// escaping), for every kind of text and value.
func TestAppendExportLine_SameAsEncodingJSON(t *testing.T) {
	texts := []string{"", "plain", `quote " backslash \ slash /`, "tab\tnl\ncr\r\x00\x01\x1f\x7f", "<html> & é 漢字 🙂",
		"line\u2028para\u2029", "bad \xff utf8 \xc3", "P1D"}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 600000000, time.UTC)
	values := []Value{{NUMBER, json.Number("12345678901234567890")}, {NUMBER, 0.1}, {NUMBER, int64(-3)}, {BOOLEAN, true},
		{JSON, map[string]any{"b": []any{int64(1), "<x>", nil}, "a": json.Number("0.10")}},
		{DATE, Date{Time: time.Date(2024, 7, 15, 0, 0, 0, 0, time.UTC)}}}
	for _, s := range texts {
		values = append(values, String(s))
	}
	for i, v := range values {
		e := &Entry{Namespace: "company.team", Key: "k-1", Description: texts[i%len(texts)], Version: int64(i),
			Created: time.Date(2024, 7, 15, 6, 10, 33, 422000, time.UTC), Updated: time.Date(2024, 7, 15, 6, 10, 33, 0, time.UTC)}
		if i%2 == 0 {
			e.Expires = &exp
		}
		got, err := appendExportLine(nil, e, v)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(v.JSONValue())
		var compact bytes.Buffer
		json.Compact(&compact, raw)
		created, updated := e.Created, e.Updated
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		enc.Encode(ExportLine{Namespace: e.Namespace, Key: e.Key, Type: v.Type, Value: compact.Bytes(), Description: e.Description,
			Expires: e.Expires, Version: e.Version, Created: &created, Updated: &updated})
		// Both decode to the same document; only HTML escapes inside the value may differ in form.
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("value %d: the line is not JSON: %v\n%s", i, err, got)
		}
		json.Unmarshal(want.Bytes(), &b)
		if ja, jb := mustJSON(t, a), mustJSON(t, b); ja != jb || got[len(got)-1] != '\n' || bytes.Count(got, []byte("\n")) != 1 {
			t.Errorf("value %d:\n got %s\nwant %s", i, got, want.Bytes())
		}
		if v.Type == STRING && !bytes.Contains(want.Bytes(), []byte(`\u003c`)) && !bytes.Equal(got, want.Bytes()) {
			t.Errorf("value %d: bytes differ\n got %s\nwant %s", i, got, want.Bytes())
		}
	}
}

func mustJSON(t *testing.T, x any) string {
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// An import line of the wrong shape is refused naming the field and what
// was expected, not with encoding/json's Go names.
func TestImportLine_WrongShape_NamesTheField(t *testing.T) {
	s := &Store{}
	for line, want := range map[string]string{
		`{"namespace":"a","key":"k","type":"STRING","value":"x","description":5}`: "field 'description' is a JSON number, expected a string",
		`["a"]`: "expected an object, not a JSON array",
		`{"namespace":"a","key":"k","type":"STRING","value":"x","expirationDate":"tomorrow"}`:           `expirationDate "tomorrow" is not an RFC 3339 instant`,
		`{"namespace":"a","key":"k","type":"STRING","value":"x","creationDate":"2024-07-15T25:00:00Z"}`: `creationDate "2024-07-15T25:00:00Z" is not an RFC 3339 instant`,
		`{"namespace":"a","key":"k","type":"STRING","value":"x","colour":"red"}`:                        "unknown field 'colour'",
	} {
		_, err := s.importLine(3, []byte(line), ImportOptions{})
		if err == nil || !strings.Contains(err.Error(), "Line 3 of the import") || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Go ") {
			t.Errorf("importLine(%s) = %v, want %q", line, err, want)
		}
	}
}
