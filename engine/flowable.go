package engine

import (
	"context"
	"errors"
	"strings"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// Flowable task types: they hold other tasks and run inside the engine.
const (
	TypeSequential = "io.kestra.plugin.core.flow.Sequential"
	TypeParallel   = "io.kestra.plugin.core.flow.Parallel"
	TypeIf         = "io.kestra.plugin.core.flow.If"
	TypeForEach    = "io.kestra.plugin.core.flow.ForEach"
)

// Sequential runs its tasks one after the other.
type Sequential struct {
	Tasks []*Task `yaml:"-"`
}

// Parallel runs its tasks at the same time, at most Concurrency at once
// (0: all, within the engine's MaxParallel). When one fails, no further
// task starts; those running finish.
type Parallel struct {
	Concurrency plugin.Property[int] `yaml:"concurrency"`
	Tasks       []*Task              `yaml:"-"`
}

// If runs Then when Condition is true, Else otherwise. A condition is false
// when it renders to false, 0, nothing, an empty text or list, or the text
// "false", "0", "no", "off" or "null"; true otherwise. Output: condition,
// the boolean it evaluated to.
type If struct {
	Condition plugin.Property[any] `yaml:"condition" required:"true"`
	Then      []*Task              `yaml:"-"`
	Else      []*Task              `yaml:"-"`
}

// ForEach runs its tasks once per value of Values (a list, or text holding
// a JSON array), with taskrun.value set to the value as text. Iterations run
// ConcurrencyLimit at a time (default 1; 0: all, within the engine's
// MaxParallel). The outputs of a task inside are reached per value:
// outputs.<taskId>[value].<name> (nested: [outer][inner]).
type ForEach struct {
	Values           plugin.Property[any] `yaml:"values" required:"true"`
	ConcurrencyLimit plugin.Property[int] `yaml:"concurrencyLimit"`
	Tasks            []*Task              `yaml:"-"`
}

var errFlowable = kvflow.Errorf(kvflow.EINVALID, "Flowable tasks run only inside a flow.")

func (*Sequential) Run(context.Context, *plugin.RunContext) (plugin.Outputs, error) {
	return nil, errFlowable
}
func (*Parallel) Run(context.Context, *plugin.RunContext) (plugin.Outputs, error) {
	return nil, errFlowable
}
func (*If) Run(context.Context, *plugin.RunContext) (plugin.Outputs, error) { return nil, errFlowable }
func (*ForEach) Run(context.Context, *plugin.RunContext) (plugin.Outputs, error) {
	return nil, errFlowable
}

// Validate refuses a negative concurrency.
func (p *Parallel) Validate() error {
	return nonNegative(p.Concurrency, "concurrency")
}

// Validate refuses a negative concurrency limit and a literal list of values
// that is neither a list nor a JSON array.
func (f *ForEach) Validate() error {
	var errs []error
	if !f.Values.IsTemplate() {
		if _, err := forEachValues(f.Values.Raw()); err != nil {
			errs = append(errs, kvflow.Errorf(kvflow.EINVALID, "values: %s", err))
		}
	}
	errs = append(errs, nonNegative(f.ConcurrencyLimit, "concurrencyLimit"))
	return errors.Join(errs...)
}

func nonNegative(p plugin.Property[int], name string) error {
	if !p.IsSet() || p.IsTemplate() {
		return nil
	}
	if n, ok := p.Raw().(int); ok && n < 0 {
		return kvflow.Errorf(kvflow.EINVALID, "%s: must be 0 (no limit) or more, not %d", name, n)
	}
	return nil
}

// forEachValues turns a rendered values property into the iteration values.
func forEachValues(v any) ([]any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, nil
	case string:
		s := strings.TrimSpace(x)
		if !strings.HasPrefix(s, "[") {
			return nil, kvflow.Errorf(kvflow.EINVALID, "expected a list or a JSON array, got %s", show(x))
		}
		v, err := storage.DecodeJSON([]byte(s))
		if err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "%s is not a valid JSON array: %s", show(x), storage.JSONErrorText(err))
		}
		list, ok := v.([]any)
		if !ok {
			return nil, kvflow.Errorf(kvflow.EINVALID, "expected a list or a JSON array, got %s", show(x))
		}
		return list, nil
	case nil:
		return nil, kvflow.Errorf(kvflow.EINVALID, "expected a list or a JSON array, got nothing")
	}
	if _, ok := v.(map[string]any); ok {
		return nil, kvflow.Errorf(kvflow.EINVALID, "expected a list or a JSON array, got a map")
	}
	return nil, kvflow.Errorf(kvflow.EINVALID, "expected a list or a JSON array, got %s", show(v))
}

// truthy is If's idea of true.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int:
		return x != 0
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "", "false", "0", "-0", "no", "off", "null", "0.0":
			return false
		}
		return true
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// flowable describes a flowable type's branches for the parser.
type flowable struct {
	def      plugin.Definition
	branches []branch
	set      func(impl plugin.Task, branches map[string][]*Task)
}

type branch struct {
	key      string
	required bool
}

func (f flowable) hasBranch(key string) bool {
	for _, b := range f.branches {
		if b.key == key {
			return true
		}
	}
	return false
}

func (f flowable) required(key string) bool {
	for _, b := range f.branches {
		if b.key == key {
			return b.required
		}
	}
	return false
}

var flowables = map[string]flowable{
	TypeSequential: {
		def:      plugin.Definition{Type: TypeSequential, New: func() plugin.Task { return &Sequential{} }, Description: "Runs tasks one after the other."},
		branches: []branch{{"tasks", true}},
		set:      func(t plugin.Task, b map[string][]*Task) { t.(*Sequential).Tasks = b["tasks"] },
	},
	TypeParallel: {
		def:      plugin.Definition{Type: TypeParallel, New: func() plugin.Task { return &Parallel{} }, Description: "Runs tasks at the same time, with bounded concurrency."},
		branches: []branch{{"tasks", true}},
		set:      func(t plugin.Task, b map[string][]*Task) { t.(*Parallel).Tasks = b["tasks"] },
	},
	TypeIf: {
		def:      plugin.Definition{Type: TypeIf, New: func() plugin.Task { return &If{} }, Description: "Runs then or else depending on a condition."},
		branches: []branch{{"then", true}, {"else", false}},
		set: func(t plugin.Task, b map[string][]*Task) {
			t.(*If).Then, t.(*If).Else = b["then"], b["else"]
		},
	},
	TypeForEach: {
		def:      plugin.Definition{Type: TypeForEach, New: func() plugin.Task { return &ForEach{} }, Description: "Runs tasks once per value of a list."},
		branches: []branch{{"tasks", true}},
		set:      func(t plugin.Task, b map[string][]*Task) { t.(*ForEach).Tasks = b["tasks"] },
	},
}

// The flowable types are registered in plugin.Default so that listings
// and taskrun.Run know them; Parse knows them whatever the registry.
func init() {
	for _, f := range flowables {
		if _, ok := plugin.Default.Lookup(f.def.Type); !ok {
			plugin.Default.MustRegister(f.def)
		}
	}
}
