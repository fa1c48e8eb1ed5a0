package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/template"
)

// Property is a task property of type T that may be a template. A literal
// is checked when the flow loads; a template is rendered and converted when
// the task runs. Supported T: string, bool, int, float64, time.Duration
// (ISO-8601 text such as PT5M), storage.Type, []string, map[string]any and
// any (keeps the rendered value's own type). Its name in errors is its YAML
// key, from the field's yaml tag.
type Property[T any] struct {
	raw  any    // the YAML value, decoded as plain Go data
	set  bool   // present in the flow
	Name string // the YAML key, set when decoded from a flow's properties
	Line int    // line in the flow file, when decoded from YAML
}

// Of returns a property holding a literal or template value, for code that
// builds tasks without YAML.
func Of[T any](v any) Property[T] { return Property[T]{raw: v, set: true} }

// UnmarshalYAML keeps the value and its line.
func (p *Property[T]) UnmarshalYAML(n *yaml.Node) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	p.raw, p.set, p.Line = exactNumbers(n, v), true, n.Line
	return nil
}

// exactNumbers replaces the numbers YAML read as float64 with loss
// (12345678901234567890, 3.14159265358979323846) by their exact NUMBER
// value, as the API's JSON keeps them.
func exactNumbers(n *yaml.Node, v any) any {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!int" || n.Tag == "!!float" {
			if x, err := storage.DecodeJSON([]byte(n.Value)); err == nil && storage.IsBigNumber(x) {
				return x
			}
		}
	case yaml.MappingNode:
		if m, ok := v.(map[string]any); ok {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if e, ok := m[n.Content[i].Value]; ok {
					m[n.Content[i].Value] = exactNumbers(n.Content[i+1], e)
				}
			}
		}
	case yaml.SequenceNode:
		if l, ok := v.([]any); ok && len(l) == len(n.Content) {
			for i, c := range n.Content {
				l[i] = exactNumbers(c, l[i])
			}
		}
	}
	return v
}

// MarshalYAML writes the raw value back.
func (p Property[T]) MarshalYAML() (any, error) { return p.raw, nil }

// IsSet reports whether the flow gave the property.
func (p Property[T]) IsSet() bool { return p.set && p.raw != nil }

// Raw returns the value as written.
func (p Property[T]) Raw() any { return p.raw }

// IsTemplate reports whether the value holds template syntax anywhere.
func (p Property[T]) IsTemplate() bool { return hasTemplate(p.raw) }

func hasTemplate(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, "{{") || strings.Contains(x, "{%")
	case []any:
		for _, e := range x {
			if hasTemplate(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasTemplate(e) {
				return true
			}
		}
	}
	return false
}

// Check converts a literal value at load time; templates pass.
func (p Property[T]) Check() error {
	if !p.IsSet() || p.IsTemplate() {
		return nil
	}
	_, err := convert[T](p.Name, p.raw)
	return err
}

// Get renders the property (every string inside it) and converts the result
// to T. An unset property yields def.
func (p Property[T]) Get(ctx context.Context, rc *RunContext, def T) (T, error) {
	name := p.Name
	if !p.IsSet() {
		return def, nil
	}
	v := p.raw
	var zero T
	if p.IsTemplate() {
		var err error
		if v, err = rc.Templates.RenderValue(ctx, v, rc.Data); err != nil {
			return zero, rc.propertyError(name, err)
		}
	}
	out, err := convert[T](name, v)
	if err != nil {
		msg := strings.TrimPrefix(kvflow.ErrorMessage(err), name+": ")
		return zero, rc.propertyError(name, kvflow.Errorf(kvflow.ErrorCode(err), "%s", msg))
	}
	return out, nil
}

// propertyError names the task and the property in err's message, keeping
// its code: "Task 'log', property 'message', line 1, column 4: ...".
func (rc *RunContext) propertyError(name string, err error) error {
	if rc.TaskID == "" {
		return &kvflow.Error{Code: kvflow.ErrorCode(err), Message: fmt.Sprintf("Property '%s': %s", name, kvflow.ErrorMessage(err)), Err: err}
	}
	return template.Wrap(err, rc.TaskID, name)
}

// Convert turns a plain value into T as a property of that type would, naming
// name and the expected kind when it cannot.
func Convert[T any](name string, v any) (T, error) { return convert[T](name, v) }

// convert turns a rendered or literal value into T, naming the property and
// the expected kind when it cannot.
func convert[T any](name string, v any) (T, error) {
	var zero T
	var out any
	var err error
	switch any(zero).(type) {
	case string:
		out, err = toString(v)
	case bool:
		out, err = toBool(v)
	case int:
		out, err = toInt(v)
	case float64:
		out, err = toFloat(v)
	case time.Duration:
		var s string
		if s, err = toString(v); err == nil {
			out, err = storage.ParsePositiveDuration("", s) // the error names the property
		}
	case storage.Type:
		var s string
		if s, err = toString(v); err == nil {
			out, err = storage.ParseType(s)
		}
	case []string:
		out, err = toStrings(v)
	case map[string]any:
		m, ok := v.(map[string]any)
		if !ok {
			err = fmt.Errorf("expected a map, got %s", Describe(v))
		}
		out = m
	default:
		out = v
	}
	if err != nil {
		return zero, errorf(name, "%v", strings.TrimSuffix(err.Error(), "."))
	}
	if t, ok := out.(T); ok {
		return t, nil
	} else if out == nil {
		return zero, nil // a template that renders to nothing, for Property[any]
	}
	return zero, errorf(name, "expected %T, got %s", zero, Describe(v))
}

func toString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	case int, int64, float64, bool, json.Number:
		val, _ := storage.FromGo(x)
		return val.Text(), nil
	}
	return "", fmt.Errorf("expected a string, got %s", Describe(v))
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.TrimSpace(strings.ToLower(x)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, fmt.Errorf("expected true or false, got %s", Describe(v))
}

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case float64:
		if x == float64(int(x)) {
			return int(x), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("expected a whole number, got %s", Describe(v))
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			return f, nil
		}
	}
	return 0, fmt.Errorf("expected a number, got %s", Describe(v))
}

func toStrings(v any) ([]string, error) {
	switch x := v.(type) {
	case []string:
		return x, nil
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, err := toString(e)
			if err != nil {
				return nil, fmt.Errorf("item %d: %v", i, err)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("expected a list of strings, got %s", Describe(v))
}

// Describe says what a value holds, for error messages, without quoting it
// (error messages are stored; values never are): "nothing", "a map", "a
// list", or its type, size and hash prefix (storage.Describe).
func Describe(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	}
	return "a value (" + storage.Describe(v) + ")"
}
