package storage_test

import (
	"bytes"
	"io"
	"reflect"
	"regexp"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

var (
	keyRule       = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)
	namespaceRule = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*$`) // dots separate non-empty parts
)

func FuzzValidateNames(f *testing.F) {
	for _, s := range []string{"my_key", "company.team", "a/b", "../x", "", "é", "A.b-c_d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kerr := storage.ValidateKey(s)
		if want := keyRule.MatchString(s) && len(s) <= storage.MaxKeyLen; (kerr == nil) != want {
			t.Fatalf("ValidateKey(%q) = %v, rule says valid=%v", s, kerr, want)
		}
		nerr := storage.ValidateNamespace(s)
		if want := namespaceRule.MatchString(s) && len(s) <= storage.MaxNamespaceLen; (nerr == nil) != want {
			t.Fatalf("ValidateNamespace(%q) = %v, rule says valid=%v", s, nerr, want)
		}
		for _, err := range []error{kerr, nerr} {
			if err != nil && (kvflow.ErrorCode(err) != kvflow.EINVALID || err.Error() == "") {
				t.Fatalf("refusal %v is not a clear EINVALID", err)
			}
		}
	})
}

// FuzzParseAs checks that parsing never panics, refusals are EINVALID, and a
// parsed value's canonical text parses back to the same value.
func FuzzParseAs(f *testing.F) {
	for _, tc := range [][2]string{
		{"NUMBER", "123.45"}, {"NUMBER", "42"}, {"BOOLEAN", "true"}, {"DATETIME", "2024-07-15T06:10:33Z"},
		{"DATE", "2024-07-15"}, {"DURATION", "P1DT5S"}, {"JSON", `{"a":[1,2.5,"x"]}`}, {"STRING", "hi"},
		{"DURATION", "PT-0.5S"}, {"NUMBER", "-1e-7"}, {"JSON", "[1e400]"},
	} {
		f.Add(tc[0], tc[1])
	}
	f.Fuzz(func(t *testing.T, typ, text string) {
		v, err := storage.ParseAs(storage.Type(typ), text)
		if err != nil {
			if kvflow.ErrorCode(err) != kvflow.EINVALID {
				t.Fatalf("ParseAs(%s, %q) = %v, want EINVALID", typ, text, err)
			}
			return
		}
		back, err := storage.ParseAs(v.Type, v.Text())
		if err != nil {
			t.Fatalf("ParseAs(%s, Text()=%q) of %q: %v", v.Type, v.Text(), text, err)
		}
		if back.Type != v.Type || back.Text() != v.Text() {
			t.Fatalf("%s %q: Text %q parses to %s %q", typ, text, v.Text(), back.Type, back.Text())
		}
		_ = storage.Infer(text)
	})
}

// FuzzIONRoundTrip checks every value survives encoding, through the whole
// decoder and through the streaming string reader.
func FuzzIONRoundTrip(f *testing.F) {
	for _, s := range []string{"Hello World", "\"quoted\"\n\\", "\x00\x01\x1f", "é✓😀", "", `{"a":1}`, "[1,2]", "42"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		values := []storage.Value{storage.String(s)}
		if v, err := storage.ParseAs(storage.JSON, s); err == nil {
			values = append(values, v)
		}
		if v := storage.Infer(s); v.Type != storage.STRING {
			values = append(values, v)
		}
		for _, v := range values {
			var buf bytes.Buffer
			err := storage.EncodeION(&buf, v)
			if err != nil {
				t.Fatalf("EncodeION(%#v): %v", v, err)
			}
			got, err := storage.DecodeION(buf.Bytes(), v.Type)
			if err != nil {
				t.Fatalf("DecodeION of %q as %s: %v", buf.String(), v.Type, err)
			}
			if !reflect.DeepEqual(got, v) {
				t.Fatalf("round trip: got %#v, want %#v (ION %q)", got.V, v.V, buf.String())
			}
			if v.Type == storage.STRING {
				streamed, err := io.ReadAll(storage.NewIONStringReader(&buf))
				if err != nil || string(streamed) != s {
					t.Fatalf("streamed %q: %q, %v", s, streamed, err)
				}
			}
		}
	})
}
