package provider

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

// InferType is the type the API gives an untyped text/plain body: the type
// of storage.Infer. The provider then writes the text as that type, so the
// stored value is the text as configured (a JSON-quoted "x" stays quoted,
// where the API would strip the quotes).
func InferType(text string) storage.Type { return storage.Infer(text).Type }

// SameValue reports whether texts a and b denote the same value of type t:
// JSON documents with the same content whatever their layout and key order,
// numbers of equal value (1, 1.0, 1e0), the same instant in any zone,
// durations of equal length (PT1H, PT60M), and identical strings. Text that
// does not parse as t is only the same as identical text.
func SameValue(t storage.Type, a, b string) bool {
	if a == b {
		return true
	}
	if t == storage.STRING {
		return false
	}
	va, errA := storage.ParseAs(t, a)
	vb, errB := storage.ParseAs(t, b)
	if errA != nil || errB != nil {
		return false
	}
	return equalV(va.V, vb.V)
}

// equalV compares the Go values of storage.Value, numbers by value.
func equalV(a, b any) bool {
	switch x := a.(type) {
	case int64, float64, json.Number:
		return numEqual(a, b)
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case storage.Date:
		y, ok := b.(storage.Date)
		return ok && x.Equal(y.Time)
	case storage.Duration:
		y, ok := b.(storage.Duration)
		return ok && x.D == y.D
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalV(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalV(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// numEqual compares two NUMBERs (int64, float64 or an exact json.Number) by
// their decimal value, exactly.
func numEqual(a, b any) bool {
	fa, okA := ratOf(a)
	fb, okB := ratOf(b)
	return okA && okB && fa.Cmp(fb) == 0
}

func ratOf(n any) (*big.Rat, bool) {
	var text string
	switch x := n.(type) {
	case int64:
		return new(big.Rat).SetInt64(x), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, false
		}
		text = strconv.FormatFloat(x, 'g', -1, 64) // the decimal the value was read from
	case json.Number:
		text = x.String()
	default:
		return nil, false
	}
	return new(big.Rat).SetString(text)
}

// NumberOf is a Terraform number as a NUMBER, every digit kept: its
// shortest decimal text, as Terraform writes a number as a string.
func NumberOf(n *big.Float) (storage.Value, error) {
	text := n.Text('f', -1)
	v, err := storage.ParseAs(storage.NUMBER, text)
	if err != nil {
		return v, kvflow.Errorf(kvflow.EINVALID, "Number %s is not one kvflow stores: a NUMBER is finite and at most %d characters long written out.",
			kvflow.Clip(text), storage.MaxNumberText)
	}
	return v, nil
}

// BigFloatOf is a NUMBER as a Terraform number, at Terraform's precision
// (512 bits, as numbers arriving as text are read).
func BigFloatOf(v storage.Value) (*big.Float, error) {
	f, _, err := big.ParseFloat(v.Text(), 10, 512, big.ToNearestEven)
	return f, err
}

// TextOf is the text form of a value the API returned: compact JSON for
// JSON, ISO-8601 for dates and durations, the number for a NUMBER.
func TextOf(t storage.Type, raw json.RawMessage) (string, error) {
	v, err := client.ValueOf(t, raw)
	if err != nil {
		return "", err
	}
	return v.Text(), nil
}

// ParseImportID splits an import ID "namespace/key".
func ParseImportID(id string) (ns, key string, err error) {
	ns, key, ok := strings.Cut(id, "/")
	if !ok || strings.Contains(key, "/") {
		return "", "", kvflow.Errorf(kvflow.EINVALID, "Import ID %q is not of the form namespace/key (for example prod.team/api-url).", id)
	}
	if err := storage.ValidateNamespace(ns); err != nil {
		return "", "", err
	}
	if err := storage.ValidateKey(key); err != nil {
		return "", "", err
	}
	return ns, key, nil
}
