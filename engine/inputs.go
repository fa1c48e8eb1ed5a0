package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/template"
)

func parseInputType(s string) (InputType, error) {
	t := InputType(strings.ToUpper(strings.TrimSpace(s)))
	for _, k := range InputTypes {
		if t == k {
			return t, nil
		}
	}
	names := make([]string, len(InputTypes))
	for i, k := range InputTypes {
		names[i] = string(k)
	}
	return "", fmt.Errorf("type %q is not supported; expected one of %s", kvflow.Clip(s), strings.Join(names, ", "))
}

// ResolveInputs checks the inputs given to a run against the flow's
// declarations: each is converted to its type (text from a command line is
// fine: "42" for an INT), defaults fill what is missing, and a missing
// required input or an undeclared one is an error. All problems are
// returned at once as ValidationErrors (inputs.count: "abc" is not an INT).
func (f *Flow) ResolveInputs(given map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(f.Inputs))
	var list ValidationErrors
	declared := map[string]bool{}
	for _, in := range f.Inputs {
		declared[in.ID] = true
		v, ok := given[in.ID]
		if !ok || v == nil {
			switch {
			case in.HasDefault:
				out[in.ID] = in.Defaults
			case in.Required:
				list = append(list, ValidationError{Field: "inputs." + in.ID, Message: fmt.Sprintf("missing required input of type %s", in.Type)})
			default:
				out[in.ID] = nil
			}
			continue
		}
		c, err := convertInput(in.Type, v)
		if err != nil {
			list = append(list, ValidationError{Field: "inputs." + in.ID, Message: err.Error()})
			continue
		}
		out[in.ID] = c
	}
	var extra []string
	for k := range given {
		if !declared[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		names := make([]string, 0, len(f.Inputs))
		for _, in := range f.Inputs {
			names = append(names, in.ID)
		}
		msg := "the flow declares no inputs"
		if len(names) > 0 {
			msg = "the flow declares " + strings.Join(names, ", ")
		}
		list = append(list, ValidationError{Field: "inputs." + k, Message: "unknown input; " + msg})
	}
	if len(list) > 0 {
		return nil, list
	}
	return out, nil
}

// convertInput converts a given value to an input type. The results are
// string (STRING, and DATETIME and DURATION as ISO-8601 text), int64,
// float64, bool, or any JSON value.
func convertInput(t InputType, v any) (any, error) {
	refuse := func(extra string) error {
		return kvflow.Errorf(kvflow.EINVALID, "%s is not %s %s%s", show(v), article(t), t, extra)
	}
	switch t {
	case STRING:
		switch x := v.(type) {
		case string:
			return x, nil
		case map[string]any, []any:
			return nil, refuse("")
		}
		return template.Text(v), nil
	case INT:
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case int64:
			return x, nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
				return int64(x), nil
			}
		case json.Number:
			if n, err := x.Int64(); err == nil {
				return n, nil
			}
		case string:
			if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
				return n, nil
			}
		}
		return nil, refuse("")
	case FLOAT:
		switch x := v.(type) {
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case float64:
			return x, nil
		case json.Number:
			if f, err := x.Float64(); err == nil {
				return f, nil
			}
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f, nil
			}
		}
		return nil, refuse("")
	case BOOLEAN:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
		}
		return nil, refuse(" (expected true or false)")
	case DATETIME:
		switch x := v.(type) {
		case time.Time:
			return x.Format(time.RFC3339Nano), nil
		case string:
			if tm, err := storage.ParseInstant(strings.TrimSpace(x)); err == nil {
				return tm.Format(time.RFC3339Nano), nil
			}
		}
		return nil, refuse(" (expected ISO-8601 such as 2024-07-15T06:10:33Z)")
	case DURATION:
		switch x := v.(type) {
		case time.Duration:
			return storage.FormatDuration(x), nil
		case string:
			if d, err := storage.ParseDuration(strings.TrimSpace(x)); err == nil {
				return d.Text, nil
			}
		}
		return nil, refuse(" (expected ISO-8601 such as PT5M or P1D)")
	case JSON:
		if s, ok := v.(string); ok {
			x, err := storage.DecodeJSON([]byte(s))
			if err != nil {
				return nil, kvflow.Errorf(kvflow.EINVALID, "%s is not valid JSON: %s", show(v), storage.JSONErrorText(err))
			}
			return x, nil
		}
		return jsonNumbers(v), nil
	}
	return nil, kvflow.Errorf(kvflow.EINVALID, "input type %q is unknown", t)
}

// jsonNumbers turns json.Number into int64 or float64, deeply, and int into
// int64; a number neither holds exactly (12345678901234567890) stays a
// json.Number, as a NUMBER does.
func jsonNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := storage.DecodeJSON([]byte(x)); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case int:
		return int64(x)
	case map[string]any:
		for k, e := range x {
			x[k] = jsonNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = jsonNumbers(e)
		}
	}
	return v
}

func article(t InputType) string {
	if t == INT {
		return "an"
	}
	return "a"
}

// show describes a given input without quoting it: error messages are
// stored, inputs never are in the database.
func show(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	}
	return "value (" + storage.Describe(v) + ")"
}
