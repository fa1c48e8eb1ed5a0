// Package plugin is the way in for task types: the Task interface, a
// registry, typed templated properties, and the context a task runs in.
// Other programs register their own task types here.
package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/netguard"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/template"
)

// Task is one task type's implementation. New returns a pointer to a struct
// whose yaml-tagged fields receive the task's properties (strictly: unknown
// keys are refused); fields of type Property[T] hold templates rendered at
// run time. Run returns the task's outputs.
type Task interface {
	Run(ctx context.Context, rc *RunContext) (Outputs, error)
}

// Outputs are a task's named results, reachable as outputs.<taskId>.<name>.
type Outputs map[string]any

// Validator is implemented by tasks that check their properties at load
// time, beyond what decoding checks. Errors should name the property.
type Validator interface {
	Validate() error
}

// Definition describes a task type.
type Definition struct {
	Type        string      // e.g. io.kestra.plugin.core.kv.Set
	New         func() Task // a fresh, zero task
	Description string
}

// Registry maps type names to definitions. It is safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	types map[string]Definition
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]Definition{}} }

// Default is the registry built-in tasks register into from init().
var Default = NewRegistry()

// Register adds a definition; an empty or duplicate type name is refused.
func (r *Registry) Register(d Definition) error {
	if d.Type == "" {
		return kvflow.Errorf(kvflow.EINVALID, "Task type name cannot be empty.")
	}
	if d.New == nil {
		return kvflow.Errorf(kvflow.EINVALID, "Task type %s has no constructor.", d.Type)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.types[d.Type]; ok {
		return kvflow.Errorf(kvflow.ECONFLICT, "Task type %s is already registered.", d.Type)
	}
	r.types[d.Type] = d
	return nil
}

// MustRegister is Register for init(): it panics on a programming error.
func (r *Registry) MustRegister(d Definition) {
	if err := r.Register(d); err != nil {
		panic(err)
	}
}

// Lookup returns the definition of a type.
func (r *Registry) Lookup(typ string) (Definition, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.types[typ]
	return d, ok
}

// Types lists the registered type names in order.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// SuggestType names the known type a misspelt typ may mean: those with its
// last segment (a renamed or misspelt package), else the one at most two
// edits away (kv.Sett), as "; did you mean …?"; else it lists the known
// types: "; known types: …".
func SuggestType(typ string, known []string) string {
	short := typ[strings.LastIndex(typ, ".")+1:]
	var cands []string
	for _, k := range known {
		if strings.EqualFold(k[strings.LastIndex(k, ".")+1:], short) {
			cands = append(cands, k)
		}
	}
	known = slices.Sorted(slices.Values(known))
	if near := kvflow.Nearest(typ, known); len(cands) == 0 && near != "" {
		cands = append(cands, near)
	}
	if len(cands) == 0 {
		return "; known types: " + strings.Join(known, ", ")
	}
	return "; did you mean " + strings.Join(cands, " or ") + "?"
}

// RunContext is what a running task sees.
type RunContext struct {
	Namespace   string // the flow's namespace
	FlowID      string
	ExecutionID string
	TaskID      string
	TaskRunID   string // this run of the task (a ForEach runs a task once per value)

	Store     *storage.Store
	Bucket    storage.Bucket // for files a task produces
	Templates *template.Engine
	Data      template.Context // flow, execution, inputs, vars, outputs, taskrun

	// Access bounds the namespaces the task may reach: the engine's rule and
	// configured grants (Policy), and the scope of whoever deployed or
	// started the execution (Scope). Tasks check it through TargetNamespace.
	Access storage.Access
	// HTTPClient is what tasks fetch URLs with (see HTTP); nil: one that
	// refuses loopback, link-local, private and other internal addresses.
	HTTPClient *http.Client

	Logger *slog.Logger // the task's log lines go into the execution's logs
}

// Render renders a template string with the run's data.
func (rc *RunContext) Render(ctx context.Context, src string) (string, error) {
	return rc.Templates.RenderString(ctx, src, rc.Data)
}

// TargetNamespace resolves a task's namespace property (empty means the
// flow's) and checks that the task may reach it (see Access); a refusal is
// EFORBIDDEN naming both namespaces. Every task that names a namespace
// calls it.
func (rc *RunContext) TargetNamespace(ns string) (string, error) {
	if ns == "" {
		ns = rc.Namespace
	} else if err := storage.ValidateNamespace(ns); err != nil {
		return "", err
	}
	if err := rc.Access.Check(rc.Namespace, ns); err != nil {
		return "", err
	}
	return ns, nil
}

// guardedClient refuses every internal address (netguard).
var guardedClient = netguard.Client(netguard.Allow{})

// HTTP returns the client a task fetches URLs with: HTTPClient, or one that
// refuses loopback, link-local, private and other internal addresses, on
// the address dialed, redirects included.
func (rc *RunContext) HTTP() *http.Client {
	if rc.HTTPClient != nil {
		return rc.HTTPClient
	}
	return guardedClient
}

// Log writes one line to the task's logs.
func (rc *RunContext) Log(ctx context.Context, level slog.Level, msg string, args ...any) {
	if rc.Logger != nil {
		rc.Logger.Log(ctx, level, msg, args...)
	}
}

// errorf is a property error: it names the property and what was expected.
func errorf(prop, format string, args ...any) error {
	return kvflow.Errorf(kvflow.EINVALID, "%s: %s", prop, fmt.Sprintf(format, args...))
}
