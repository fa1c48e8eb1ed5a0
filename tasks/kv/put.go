package kv

import (
	"context"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// PutType is Kestra 1.x's merge write.
const PutType = "io.kestra.plugin.core.kv.Put"

func init() {
	plugin.Default.MustRegister(plugin.Definition{Type: PutType, New: func() plugin.Task { return &Put{} },
		Description: "Update a key: deep-merge a map into its JSON value, set fields by dotted path, or replace it; atomic."})
}

// Put updates a key as Kestra's Put does, but atomically (storage.Merge, a
// compare-and-set loop: Kestra's read-modify-write loses concurrent updates):
//   - a map value is deep-merged into a JSON object value;
//   - a list of {key, value} entries sets fields by dotted path
//     ("address.city"), which needs a JSON object value (or none);
//   - a list of one {value} entry, or any other value, replaces the value.
//
// A missing key is created unless errorOnMissing is true. The entry keeps
// its description and expiry. Output: version.
type Put struct {
	Key            plugin.Property[string] `yaml:"key" required:"true"`
	Value          plugin.Property[any]    `yaml:"value" required:"true"`
	Namespace      plugin.Property[string] `yaml:"namespace"` // default: the flow's
	ErrorOnMissing plugin.Property[bool]   `yaml:"errorOnMissing"`
}

// Validate checks the literal properties when the flow loads.
func (t *Put) Validate() error {
	var valueErr error
	if !t.Value.IsSet() {
		valueErr = invalid("value", "the property is required.")
	} else if !t.Value.IsTemplate() {
		if _, _, err := putPatch(t.Value.Raw()); err != nil {
			valueErr = invalid("value", "%s", kvflow.ErrorMessage(err))
		}
	}
	return joinErrors(checkKey(t.Key), valueErr, checkNamespace(t.Namespace), t.ErrorOnMissing.Check())
}

// Run renders the properties and merges.
func (t *Put) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	ns, key, err := target(ctx, rc, t.Key, t.Namespace)
	if err != nil {
		return nil, err
	}
	errorOnMissing, err := t.ErrorOnMissing.Get(ctx, rc, false)
	if err != nil {
		return nil, err
	}
	raw := t.Value.Raw()
	if t.Value.IsTemplate() {
		if raw, err = rc.Templates.RenderValue(ctx, raw, rc.Data); err != nil {
			return nil, propErr(rc, "value", err)
		}
	}
	patch, byPath, err := putPatch(raw)
	if err != nil {
		return nil, propErr(rc, "value", err)
	}
	_, e, err := rc.Store.Merge(writer(ctx, rc), ns, key, patch, storage.MergeOptions{ErrorOnMissing: errorOnMissing, ObjectOnly: byPath})
	if errorOnMissing && (kvflow.ErrorCode(err) == kvflow.ENOTFOUND || kvflow.ErrorCode(err) == kvflow.EEXPIRED) {
		return nil, missing(ns, key, err)
	}
	if err != nil {
		return nil, err
	}
	return plugin.Outputs{"version": e.Version}, nil
}

// putPatch reads Put's value: a list whose items are all {key?, value}
// objects is an entry list (field updates by path, or one replacement);
// anything else is merged or replaces as it is. byPath reports field
// updates, which need a JSON object to update.
func putPatch(raw any) (patch any, byPath bool, err error) {
	if raw == nil {
		return nil, false, kvflow.Errorf(kvflow.EINVALID, "the value is null.")
	}
	v, err := storage.FromGo(raw)
	if err != nil {
		return nil, false, err
	}
	list, ok := v.V.([]any)
	if !ok || len(list) == 0 {
		return v.V, false, nil
	}
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return v.V, false, nil // a plain list replaces
		}
		if _, ok := m["value"]; !ok {
			return v.V, false, nil
		}
		for k := range m {
			if k != "key" && k != "value" {
				return v.V, false, nil
			}
		}
	}
	updates := map[string]any{}
	for i, item := range list {
		m := item.(map[string]any)
		k, keyed := m["key"]
		if !keyed || k == nil {
			if len(list) > 1 {
				return nil, false, kvflow.Errorf(kvflow.EINVALID, "entry %d has no `key`: an entry without one replaces the whole value and must be the only entry.", i)
			}
			if m["value"] == nil {
				return nil, false, kvflow.Errorf(kvflow.EINVALID, "the replacement value is null.")
			}
			return m["value"], false, nil
		}
		path, ok := k.(string)
		if !ok || path == "" {
			return nil, false, kvflow.Errorf(kvflow.EINVALID, "entry %d: `key` must be a non-empty field path such as 'address.city', not %s.", i, storage.Describe(k))
		}
		if _, dup := updates[path]; dup {
			return nil, false, kvflow.Errorf(kvflow.EINVALID, "entry %d: field path '%s' is set twice.", i, path)
		}
		updates[path] = m["value"]
	}
	nested, err := storage.ExpandPaths(updates)
	return nested, true, err
}
