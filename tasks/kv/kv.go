// Package kv holds the KV store tasks: io.kestra.plugin.core.kv.Set, Get,
// GetKeys, Delete and PurgeKV. Each registers itself in plugin.Default.
package kv

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/template"
)

// Type names, as Kestra spells them.
const (
	SetType     = "io.kestra.plugin.core.kv.Set"
	GetType     = "io.kestra.plugin.core.kv.Get"
	GetKeysType = "io.kestra.plugin.core.kv.GetKeys"
	DeleteType  = "io.kestra.plugin.core.kv.Delete"
	PurgeKVType = "io.kestra.plugin.core.kv.PurgeKV"
)

func init() {
	for _, d := range []plugin.Definition{
		{Type: SetType, New: func() plugin.Task { return &Set{} },
			Description: "Create or replace a key's value in a namespace's KV store."},
		{Type: GetType, New: func() plugin.Task { return &Get{} },
			Description: "Read a key's value from a namespace's KV store."},
		{Type: GetKeysType, New: func() plugin.Task { return &GetKeys{} },
			Description: "List the live keys of a namespace, optionally by prefix."},
		{Type: DeleteType, New: func() plugin.Task { return &Delete{} },
			Description: "Delete a key from a namespace's KV store."},
		{Type: PurgeKVType, New: func() plugin.Task { return &PurgeKV{} },
			Description: "Delete expired (or all) keys matching a pattern across namespaces."},
	} {
		plugin.Default.MustRegister(d)
	}
}

// invalid is a property error: it names the property.
func invalid(prop, format string, args ...any) error {
	return kvflow.Errorf(kvflow.EINVALID, "%s: %s", prop, fmt.Sprintf(format, args...))
}

// literal returns a property's value when it is set and holds no template.
func literal[T any](p plugin.Property[T]) (v T, ok bool, err error) {
	if !p.IsSet() || p.IsTemplate() {
		return v, false, nil
	}
	// A literal is converted without rendering, so no run context is needed.
	v, err = p.Get(context.Background(), nil, v)
	return v, err == nil, err
}

// checkKey checks a required key property at load time.
func checkKey(p plugin.Property[string]) error {
	if !p.IsSet() {
		return invalid("key", "the property is required.")
	}
	key, ok, err := literal(p)
	if err != nil || !ok {
		return err
	}
	if err := storage.ValidateKey(key); err != nil {
		return invalid("key", "%s", kvflow.ErrorMessage(err))
	}
	return nil
}

// checkNamespace checks an optional namespace property at load time.
func checkNamespace(p plugin.Property[string]) error {
	ns, ok, err := literal(p)
	if err != nil || !ok || ns == "" {
		return err
	}
	if err := storage.ValidateNamespace(ns); err != nil {
		return invalid("namespace", "%s", kvflow.ErrorMessage(err))
	}
	return nil
}

// target renders the key and namespace properties and checks that the flow
// may reach the namespace. An empty namespace is the flow's own.
func target(ctx context.Context, rc *plugin.RunContext, keyP, nsP plugin.Property[string]) (ns, key string, err error) {
	if key, err = keyP.Get(ctx, rc, ""); err != nil {
		return "", "", err
	}
	if err := storage.ValidateKey(key); err != nil {
		return "", "", propErr(rc, "key", err)
	}
	ns, err = targetNamespace(ctx, rc, nsP)
	if kvflow.ErrorCode(err) == kvflow.EFORBIDDEN {
		// Name the key too: Kestra's message names only the namespaces.
		msg := strings.TrimPrefix(kvflow.ErrorMessage(err), "Cannot access the KV store. ")
		return "", "", kvflow.Errorf(kvflow.EFORBIDDEN, "Cannot access key '%s' in the KV store. %s", key, msg)
	}
	return ns, key, err
}

func targetNamespace(ctx context.Context, rc *plugin.RunContext, nsP plugin.Property[string]) (string, error) {
	ns, err := nsP.Get(ctx, rc, "")
	if err != nil {
		return "", err
	}
	ns, err = rc.TargetNamespace(strings.TrimSpace(ns))
	if kvflow.ErrorCode(err) == kvflow.EINVALID {
		return "", propErr(rc, "namespace", err)
	}
	return ns, err
}

// propErr names the task and the property in a run-time error, keeping its
// code, as plugin.Property.Get does.
func propErr(rc *plugin.RunContext, prop string, err error) error {
	if rc.TaskID == "" {
		return &kvflow.Error{Code: kvflow.ErrorCode(err), Message: fmt.Sprintf("Property '%s': %s", prop, kvflow.ErrorMessage(err)), Err: err}
	}
	return template.Wrap(err, rc.TaskID, prop)
}

// missing is Kestra's error for a missing key when errorOnMissing is true;
// an expired key counts as missing.
func missing(ns, key string, cause error) error {
	if kvflow.ErrorCode(cause) == kvflow.EEXPIRED {
		return kvflow.Errorf(kvflow.EEXPIRED, "No value found for key '%s' in namespace '%s' and `errorOnMissing` is set to true: the value has expired.", key, ns)
	}
	return kvflow.Errorf(kvflow.ENOTFOUND, "No value found for key '%s' in namespace '%s' and `errorOnMissing` is set to true.", key, ns)
}

// outputValue is a stored value as a task output: strings, numbers (int64 or
// float64), booleans and JSON maps or lists as such; instants, dates and
// durations as their ISO-8601 text, as kv() returns them.
func outputValue(v storage.Value) any {
	switch v.Type {
	case storage.DATETIME, storage.DATE, storage.DURATION:
		return v.Text()
	}
	return v.V
}

// joinErrors keeps every load-time error; nil when there are none.
// writer records the task's execution as the writer of what it stores.
func writer(ctx context.Context, rc *plugin.RunContext) context.Context {
	return storage.WithWriter(ctx, storage.ExecutionWriter(rc.ExecutionID, rc.Namespace, rc.FlowID, rc.TaskID))
}

func joinErrors(errs ...error) error { return errors.Join(errs...) }
