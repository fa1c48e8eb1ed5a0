// Package taskrun is what the engine and the CLI need of tasks beyond package
// plugin: the strict YAML decoder of flows and task properties, and running
// one task (Run, Call).
package taskrun

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
)

// Reserved are the task properties the engine handles for every task type
// (id, type, retries...). A task struct must not use these names; DecodeTask
// leaves them to the caller.
var Reserved = []string{"id", "type", "description", "disabled", "timeout", "retry", "allowFailure"}

// DecodeStrict decodes n into out, a pointer, strictly:
//   - a mapping key that names no field (by yaml tag, or the lowercased
//     field name) is refused, as is a key given twice;
//   - a field tagged required:"true" must be present;
//   - a Property gets its key as Name and is checked (Check) once decoded.
//
// Every problem is reported, with its line and its path below path.
func DecodeStrict(n *yaml.Node, out any, path string) []kvflow.FieldError {
	d := &decoder{}
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return []kvflow.FieldError{{Field: path, Message: fmt.Sprintf("cannot decode into %T", out)}}
	}
	d.decode(n, v.Elem(), path)
	return d.errs
}

// DecodeTask decodes the properties of one task into a fresh task of def:
// DecodeStrict, then the task's Validate when it has one and nothing else
// failed. Reserved keys in props are skipped. path prefixes every field
// (tasks[2]).
func DecodeTask(def plugin.Definition, props *yaml.Node, path string) (plugin.Task, []kvflow.FieldError) {
	return decodeTask(def, props, path, Reserved)
}

func decodeTask(def plugin.Definition, props *yaml.Node, path string, skip []string) (plugin.Task, []kvflow.FieldError) {
	task := def.New()
	if task == nil {
		return nil, []kvflow.FieldError{{Line: line(props), Field: path, Message: fmt.Sprintf("task type %s returned no task", def.Type)}}
	}
	d := &decoder{skip: skip}
	v := reflect.ValueOf(task)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil, []kvflow.FieldError{{Line: line(props), Field: path, Message: fmt.Sprintf("task type %s must return a pointer, not %T", def.Type, task)}}
	}
	if props == nil {
		props = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	d.decode(props, v.Elem(), path)
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	if val, ok := task.(plugin.Validator); ok {
		if err := val.Validate(); err != nil {
			return nil, placeErrors(err, props, path)
		}
	}
	return task, nil
}

// placeErrors turns a Validate error into field errors: an error whose
// message starts with a property name and a colon is placed on that
// property's line. errors.Join'ed errors give one field error each.
func placeErrors(err error, props *yaml.Node, path string) []kvflow.FieldError {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	var out []kvflow.FieldError
	for _, e := range list {
		msg := kvflow.ErrorMessage(e)
		if _, ok := e.(*kvflow.Error); !ok && kvflow.ErrorCode(e) == kvflow.EINTERNAL {
			msg = e.Error()
		}
		fe := kvflow.FieldError{Line: line(props), Field: path, Message: msg}
		if name, rest, ok := strings.Cut(msg, ": "); ok && props != nil && props.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(props.Content); i += 2 {
				if props.Content[i].Value == name {
					fe = kvflow.FieldError{Line: props.Content[i+1].Line, Field: join(path, name), Message: rest}
					break
				}
			}
		}
		out = append(out, fe)
	}
	return out
}

type decoder struct {
	errs []kvflow.FieldError
	skip []string // mapping keys left to the caller, at the top level only
}

func (d *decoder) add(n *yaml.Node, field, format string, args ...any) {
	d.errs = append(d.errs, kvflow.FieldError{Line: line(n), Field: field, Message: fmt.Sprintf(format, args...)})
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

var (
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	nodeType        = reflect.TypeOf(yaml.Node{})
)

// walkable reports whether DecodeStrict looks inside values of t itself
// rather than handing them to yaml: structs, and pointers, slices and string
// maps of them, unless they decode themselves.
func walkable(t reflect.Type) bool {
	if t == nodeType || t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return false
	}
	switch t.Kind() {
	case reflect.Struct:
		return t.PkgPath() != "time" // time.Time decodes from a scalar
	case reflect.Pointer, reflect.Slice:
		return walkable(t.Elem())
	case reflect.Map:
		return t.Key().Kind() == reflect.String && walkable(t.Elem())
	}
	return false
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if !walkable(v.Type()) {
		d.leaf(n, v, path)
		return
	}
	isNull := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	switch v.Kind() {
	case reflect.Pointer:
		if isNull {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Slice:
		if isNull {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.add(n, path, "expected a list, got %s", DescribeNode(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, el := range n.Content {
			d.decode(el, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if isNull {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.add(n, path, "expected a map, got %s", DescribeNode(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			el := reflect.New(v.Type().Elem()).Elem()
			d.decode(n.Content[i+1], el, join(path, k.Value))
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), el)
		}
		v.Set(m)
	case reflect.Struct:
		d.structure(n, v, path)
	}
}

// structure decodes a mapping into a struct, key by key.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	skip := d.skip
	d.skip = nil // only the top level
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line}
		} else {
			d.add(n, path, "expected a map of properties, got %s", DescribeNode(n))
			return
		}
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name := k.Value
		fp := join(path, name)
		if k.Kind != yaml.ScalarNode {
			d.add(k, path, "a property name must be text, not %s", DescribeNode(k))
			continue
		}
		if seen[name] {
			d.add(k, fp, "is given more than once")
			continue
		}
		seen[name] = true
		if contains(skip, name) {
			continue
		}
		f, ok := fields.byName[name]
		if !ok {
			known := append(append([]string(nil), fields.names...), skip...)
			sort.Strings(known)
			d.add(k, fp, "unknown property %q; expected one of: %s", name, strings.Join(known, ", "))
			continue
		}
		fv := v.FieldByIndex(f.index)
		before := len(d.errs)
		d.decode(val, fv, fp)
		if len(d.errs) == before {
			d.check(val, fv, name, fp)
		}
	}
	for _, name := range fields.names {
		if fields.byName[name].required && !seen[name] {
			d.add(n, join(path, name), "missing required property %q", name)
		}
	}
}

// check gives a decoded Property its key as Name, then runs its Check.
func (d *decoder) check(n *yaml.Node, v reflect.Value, name, path string) {
	type checker interface{ Check() error }
	c, ok := v.Interface().(checker)
	if !ok {
		return
	}
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("Name"); f.Kind() == reflect.String && f.CanSet() {
			f.SetString(name)
			c = v.Interface().(checker)
		}
	}
	if err := c.Check(); err != nil {
		msg := strings.TrimPrefix(kvflow.ErrorMessage(err), name+": ")
		d.add(n, path, "%s", msg)
	}
}

// leaf lets yaml decode a value, turning its error into a plain sentence.
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	if !v.CanAddr() {
		d.add(n, path, "cannot decode into %s", v.Type())
		return
	}
	err := n.Decode(v.Addr().Interface())
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		d.add(n, path, "expected %s, got %s", kindName(v.Type()), DescribeNode(n))
		return
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			msg = after
		}
	}
	d.add(n, path, "%s", msg)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "text"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a map"
	}
	return t.String()
}

// DescribeNode says what a YAML node holds, for error messages.
func DescribeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		s := n.Value
		if len(s) > 60 {
			s = s[:57] + "..."
		}
		return strconv.Quote(s)
	}
	return "something else"
}

type field struct {
	index    []int
	required bool
}

type fieldSet struct {
	byName map[string]field
	names  []string // sorted
}

var fieldCache sync.Map // reflect.Type → fieldSet

// structFields maps the YAML names of t's fields (inline structs
// flattened) to their index.
func structFields(t reflect.Type) fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(fieldSet)
	}
	fs := fieldSet{byName: map[string]field{}}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			index := append(append([]int(nil), prefix...), i)
			if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
				walk(f.Type, index)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fs.byName[name] = field{index: index, required: f.Tag.Get("required") == "true"}
			fs.names = append(fs.names, name)
		}
	}
	walk(t, nil)
	sort.Strings(fs.names)
	fieldCache.Store(t, fs)
	return fs
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
