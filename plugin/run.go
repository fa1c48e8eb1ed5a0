package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/xid"
	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/template"
)

// RunTask runs one task of type typ outside any flow: props are decoded as a
// flow's task properties would be (strictly, checked, validated), then the
// task runs with rc. rc needs Namespace and Store; missing ids are made up,
// Templates is built from Store and Access.Policy, and Data gets flow,
// execution and taskrun entries.
func RunTask(ctx context.Context, reg *Registry, typ string, props map[string]any, rc *RunContext) (Outputs, error) {
	if reg == nil {
		reg = Default
	}
	def, ok := reg.Lookup(typ)
	if !ok {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Task type %q is unknown; known types: %s.", typ, strings.Join(reg.Types(), ", "))
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
	if err := n.Encode(props); err != nil {
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
		rc = &RunContext{}
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
	if rc.TaskRunID == "" {
		rc.TaskRunID = xid.New().String()
	}
	if rc.Bucket == nil && rc.Store != nil {
		rc.Bucket = rc.Store.Bucket()
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
			"inputs":    map[string]any{},
			"vars":      map[string]any{},
			"outputs":   map[string]any{},
		}
	}
	return Call(ctx, task, rc)
}

// Call runs task.Run, turning a panic into an EINTERNAL error. The task's
// context carries rc.Access.Scope, so its templates' kv() obeys it too.
func Call(ctx context.Context, task Task, rc *RunContext) (out Outputs, err error) {
	ctx = storage.WithScope(ctx, rc.Access.Scope)
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, kvflow.Errorf(kvflow.EINTERNAL, "Task '%s' crashed: %v.", rc.TaskID, r)
			rc.Log(ctx, slog.LevelDebug, "task panicked", "stack", string(debug.Stack()))
		}
	}()
	return task.Run(ctx, rc)
}

// FileScheme starts the URI of a file a task stored: kestra:///<object>.
const FileScheme = "kestra:///"

// ExecutionPrefix is where the objects of one execution live in the Bucket:
// _executions/<namespace with . as />/<flowId>/<executionId>/.
func ExecutionPrefix(ns, flowID, executionID string) string {
	return "_executions/" + strings.ReplaceAll(ns, ".", "/") + "/" + flowID + "/" + executionID + "/"
}

// PutFile stores the bytes of r as a file of this task run, under the
// execution's prefix in the Bucket, and returns its kestra:/// URI, which
// OpenFile reads back. name is reduced to a safe base name.
func (rc *RunContext) PutFile(ctx context.Context, name string, r io.Reader) (string, error) {
	if rc.Bucket == nil {
		return "", kvflow.Errorf(kvflow.EUNAVAILABLE, "Task '%s' cannot store file %q: no object store is configured.", rc.TaskID, name)
	}
	obj := ExecutionPrefix(rc.Namespace, rc.FlowID, rc.ExecutionID) + "files/" + rc.TaskRunID + "/" + safeName(name)
	if err := rc.Bucket.Put(ctx, obj, r, -1); err != nil {
		if kvflow.ErrorCode(err) == kvflow.EINTERNAL {
			return "", &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: fmt.Sprintf("Task '%s' cannot store file %q: %v.", rc.TaskID, name, err), Err: err}
		}
		return "", err
	}
	return FileScheme + obj, nil
}

// OpenFile opens a file stored by PutFile, by its URI.
func (rc *RunContext) OpenFile(ctx context.Context, uri string) (io.ReadCloser, error) {
	return OpenFile(ctx, rc.Bucket, uri)
}

// OpenFile opens the object a kestra:/// URI names in bucket. Only files
// under _executions/ can be opened this way.
func OpenFile(ctx context.Context, bucket storage.Bucket, uri string) (io.ReadCloser, error) {
	obj, ok := strings.CutPrefix(uri, FileScheme)
	if !ok || !strings.HasPrefix(obj, "_executions/") || strings.Contains("/"+obj+"/", "/../") {
		return nil, kvflow.Errorf(kvflow.EINVALID, "%q is not the URI of a file stored by a task (kestra:///_executions/...).", uri)
	}
	if bucket == nil {
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot open %s: no object store is configured.", uri)
	}
	rc, err := bucket.Get(ctx, obj)
	if err != nil {
		if isNotExist(err) {
			return nil, kvflow.Errorf(kvflow.ENOTFOUND, "File %s does not exist.", uri)
		}
		return nil, err
	}
	return rc, nil
}

// safeName keeps the base name of a file, with characters other than
// letters, digits, '.', '-' and '_' replaced by '_'.
func safeName(name string) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	name = strings.TrimLeft(string(b), ".")
	if name == "" || name == "_" {
		name = "file"
	}
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	return name
}

func isNotExist(err error) bool { return errors.Is(err, iofs.ErrNotExist) }
