package provider

import (
	"encoding/json"
	"math/big"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

func TestInferType_MatchesAPITextInference(t *testing.T) {
	for _, c := range []struct {
		text string
		want storage.Type
	}{
		{"hello", storage.STRING},
		{"42", storage.NUMBER},
		{"-1.5e3", storage.NUMBER},
		{"007", storage.STRING}, // not a JSON number
		{"true", storage.BOOLEAN},
		{"TRUE", storage.STRING},
		{`{"a": [1, 2]}`, storage.JSON},
		{"[1,2]", storage.JSON},
		{"{not json", storage.STRING},
		{`"quoted"`, storage.STRING},
		{"2024-07-15", storage.DATE},
		{"2024-07-15T06:10:33Z", storage.DATETIME},
		{"PT5M", storage.DURATION},
		{"P1Y", storage.STRING}, // years have no fixed length
		{"", storage.STRING},
	} {
		if got := InferType(c.text); got != c.want {
			t.Errorf("InferType(%q) = %s, want %s", c.text, got, c.want)
		}
	}
}

func TestSameValue_SameMeaningDifferentText(t *testing.T) {
	for _, c := range []struct {
		t    storage.Type
		a, b string
	}{
		{storage.JSON, `{"b":[1,2],"a":"x"}`, "{\n  \"a\": \"x\",\n  \"b\": [1, 2]\n}\n"},
		{storage.JSON, `[{"n":1}]`, `[ { "n" : 1.0 } ]`},
		{storage.JSON, `{"big":9007199254740993}`, `{"big": 9007199254740993}`},
		{storage.NUMBER, "1", "1.0"},
		{storage.NUMBER, "100", "1e2"},
		{storage.NUMBER, " 42 ", "42"},
		{storage.NUMBER, "12345678901234567890", "1.2345678901234567890e19"},
		{storage.NUMBER, "3.14159265358979323846264338327950288", "3.141592653589793238462643383279502880"},
		{storage.BOOLEAN, "true", "True"},
		{storage.DATETIME, "2024-07-15T08:10:33+02:00", "2024-07-15T06:10:33Z"},
		{storage.DATETIME, "2024-07-15T06:10:33.000Z", "2024-07-15T06:10:33Z"},
		{storage.DATE, "2024-07-15", " 2024-07-15"},
		{storage.DURATION, "PT1H", "PT60M"},
		{storage.STRING, "same", "same"},
	} {
		if !SameValue(c.t, c.a, c.b) {
			t.Errorf("SameValue(%s, %q, %q) = false, want true", c.t, c.a, c.b)
		}
	}
}

func TestSameValue_DifferentMeaning(t *testing.T) {
	for _, c := range []struct {
		t    storage.Type
		a, b string
	}{
		{storage.JSON, `{"a":1}`, `{"a":2}`},
		{storage.JSON, `{"a":1}`, `{"a":1,"b":null}`},
		{storage.JSON, `[1,2]`, `[2,1]`},
		{storage.JSON, `{"a":"1"}`, `{"a":1}`},
		{storage.JSON, `{"big":9007199254740993}`, `{"big":9007199254740992}`},
		{storage.NUMBER, "1", "1.000001"},
		{storage.NUMBER, "12345678901234567890", "12345678901234567000"},
		{storage.NUMBER, "3.14159265358979323846264338327950288", "3.14159265358979323846264338327950289"},
		{storage.STRING, "a ", "a"},
		{storage.STRING, "1", "1.0"},
		{storage.DATETIME, "2024-07-15T06:10:33Z", "2024-07-15T06:10:34Z"},
		{storage.DURATION, "PT1H", "PT61M"},
		{storage.NUMBER, "abc", "abd"}, // unparsable: only identical text matches
	} {
		if SameValue(c.t, c.a, c.b) {
			t.Errorf("SameValue(%s, %q, %q) = true, want false", c.t, c.a, c.b)
		}
	}
}

func TestTextOf_APIValuesAsText(t *testing.T) {
	for _, c := range []struct {
		t    storage.Type
		raw  string
		want string
	}{
		{storage.STRING, `"42"`, "42"},
		{storage.NUMBER, `42`, "42"},
		{storage.NUMBER, `1.5`, "1.5"},
		{storage.BOOLEAN, `false`, "false"},
		{storage.JSON, `{ "b": 1, "a": [true] }`, `{"a":[true],"b":1}`},
		{storage.DATETIME, `"2024-07-15T06:10:33Z"`, "2024-07-15T06:10:33Z"},
		{storage.DATE, `"2024-07-15"`, "2024-07-15"},
		{storage.DURATION, `"PT5M"`, "PT5M"},
	} {
		got, err := TextOf(c.t, json.RawMessage(c.raw))
		if err != nil || got != c.want {
			t.Errorf("TextOf(%s, %s) = %q, %v; want %q", c.t, c.raw, got, err, c.want)
		}
	}
	if _, err := TextOf(storage.DATE, json.RawMessage(`20240715`)); kvflow.ErrorCode(err) != kvflow.EINTERNAL {
		t.Errorf("TextOf(DATE, a number): error %v, want code %s", err, kvflow.EINTERNAL)
	}
}

func TestParseImportID(t *testing.T) {
	ns, key, err := ParseImportID("prod.team/api-url")
	if err != nil || ns != "prod.team" || key != "api-url" {
		t.Fatalf("ParseImportID(prod.team/api-url) = %q, %q, %v", ns, key, err)
	}
	for _, id := range []string{"no-slash", "a/b/c", "/key", "ns/", "Upper/key", "ns/-bad"} {
		if _, _, err := ParseImportID(id); kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("ParseImportID(%q): error %v, want code %s", id, err, kvflow.EINVALID)
		}
	}
}

// A number arrives from Terraform at 512 bits (or as an int64 or a float64)
// and goes back the same way: every decimal digit survives both ways.
func TestNumberOf_BigFloatOf_KeepEveryDigit(t *testing.T) {
	for _, text := range []string{"1", "-2.5", "0.1", "12345678901234567890", "5000000000000000005.5", "3.141592653589793238462643383279502880"} {
		f, _, err := big.ParseFloat(text, 10, 512, big.ToNearestEven)
		if err != nil {
			t.Fatal(err)
		}
		v, err := NumberOf(f)
		if err != nil || !SameValue(storage.NUMBER, v.Text(), text) {
			t.Errorf("NumberOf(%s) = %s, %v; want %s", text, v.Text(), err, text)
			continue
		}
		back, err := BigFloatOf(v)
		if err != nil || back.Cmp(f) != 0 {
			t.Errorf("BigFloatOf(%s) = %v, %v; want %s", v.Text(), back, err, text)
		}
	}
	if _, err := NumberOf(big.NewFloat(0).SetInf(false)); kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Errorf("NumberOf(+Inf): %v, want code %s", err, kvflow.EINVALID)
	}
}
