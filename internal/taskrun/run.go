package taskrun

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/xid"
	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/template"
)

// Run runs one task of type typ outside any flow: props are decoded as a
// flow's task properties would be (strictly, checked, validated), then the
// task runs with rc. rc needs Namespace and Store; missing ids are made up
// (the task's is "task"), Logger's lines carry the task's id (as "task"),
// Templates is built from Store and Access.Policy, and Data gets flow,
// execution, taskrun and task entries.
func Run(ctx context.Context, reg *plugin.Registry, typ string, props map[string]any, rc *plugin.RunContext) (plugin.Outputs, error) {
	if reg == nil {
		reg = plugin.Default
	}
	def, ok := reg.Lookup(typ)
	if !ok {
		msg := fmt.Sprintf("Task type %q is unknown%s", typ, plugin.SuggestType(typ, reg.Types()))
		if !strings.HasSuffix(msg, "?") {
			msg += "."
		}
		return nil, &kvflow.Error{Code: kvflow.EINVALID, Message: msg}
	}
	for _, k := range Reserved {
		if _, ok := props[k]; ok {
			return nil, kvflow.Errorf(kvflow.EINVALID, "Property '%s' applies to tasks inside a flow only.", k)
		}
	}
	var n yaml.Node
	if props == nil {
		props = map[string]any{}
	}
	if err := n.Encode(yamlNumbers(props)); err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Properties cannot be encoded: %v.", err)
	}
	task, errs := decodeTask(def, &n, "", nil) // reserved keys were refused above
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, kvflow.Errorf(kvflow.EINVALID, "Properties of %s are invalid: %s.", typ, strings.TrimSuffix(strings.Join(msgs, "; "), "."))
	}
	if rc == nil {
		rc = &plugin.RunContext{}
	}
	if rc.Namespace == "" {
		return nil, kvflow.Errorf(kvflow.EINVALID, "A task needs a namespace to run in.")
	}
	if err := storage.ValidateNamespace(rc.Namespace); err != nil {
		return nil, err
	}
	if rc.FlowID == "" {
		rc.FlowID = "_tasks"
	}
	if rc.ExecutionID == "" {
		rc.ExecutionID = xid.New().String()
	}
	if rc.TaskID == "" {
		rc.TaskID = "task"
	}
	if rc.Logger != nil { // its lines name the task, as a flow's do
		rc.Logger = rc.Logger.With("task", rc.TaskID)
	}
	if rc.TaskRunID == "" {
		rc.TaskRunID = xid.New().String()
	}
	if rc.Templates == nil {
		opts := template.Options{Policy: rc.Access.Policy}
		if rc.Store != nil {
			opts.KV = rc.Store
		}
		rc.Templates = template.New(opts)
	}
	if rc.Data == nil {
		rc.Data = template.Context{
			"flow":      map[string]any{"id": rc.FlowID, "namespace": rc.Namespace},
			"execution": map[string]any{"id": rc.ExecutionID, "startDate": time.Now().UTC()},
			"taskrun":   map[string]any{"id": rc.TaskRunID},
			"task":      map[string]any{"id": rc.TaskID, "type": typ},
			"inputs":    map[string]any{},
			"vars":      map[string]any{},
			"outputs":   map[string]any{},
		}
	}
	return Call(ctx, task, rc)
}

// Call runs task.Run, turning a panic into an EINTERNAL error. The task's
// context carries rc.Access.Scope, so its templates' kv() obeys it too.
func Call(ctx context.Context, task plugin.Task, rc *plugin.RunContext) (out plugin.Outputs, err error) {
	ctx = storage.WithScope(ctx, rc.Access.Scope)
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, kvflow.Errorf(kvflow.EINTERNAL, "Task '%s' crashed: %v.", rc.TaskID, r)
			rc.Log(ctx, slog.LevelDebug, "task panicked", "stack", string(debug.Stack()))
		}
	}()
	return task.Run(ctx, rc)
}

// yamlNumbers writes the json.Number leaves of v (12345678901234567890,
// 3.14159265358979323846) as YAML numbers with their exact text: encoded
// as they are, they would become strings.
func yamlNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		tag := "!!float"
		if !strings.ContainsAny(string(x), ".eE") {
			tag = "!!int"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(x)}
	case float64:
		if x == 0 && math.Signbit(x) { // plain -0 reads back as the integer 0
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: "-0.0"}
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = yamlNumbers(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = yamlNumbers(e)
		}
		return out
	}
	return v
}
