package kv

import (
	"context"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
)

// Get reads a key's value: io.kestra.plugin.core.kv.Get.
//
// Output: value, typed as stored (STRING string, NUMBER int64 or float64,
// BOOLEAN bool, JSON map or list, DATETIME/DATE/DURATION ISO-8601 text).
// A missing or expired key fails when errorOnMissing is true; otherwise the
// output value is present and null, so {{ outputs.id.value | default('x') }}
// and {{ outputs.id.value }} (empty) both work. defaultValue, when set, is the
// output value for a missing or expired key instead (errorOnMissing aside).
type Get struct {
	Key            plugin.Property[string] `yaml:"key" required:"true"`
	Namespace      plugin.Property[string] `yaml:"namespace"`      // default: the flow's
	ErrorOnMissing plugin.Property[bool]   `yaml:"errorOnMissing"` // default false
	DefaultValue   plugin.Property[any]    `yaml:"defaultValue"`   // output for a missing or expired key; wins over errorOnMissing
}

// Validate checks the literal properties when the flow loads.
func (t *Get) Validate() error {
	return joinErrors(checkKey(t.Key), checkNamespace(t.Namespace), t.ErrorOnMissing.Check())
}

// Run reads the value.
func (t *Get) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	ns, key, err := target(ctx, rc, t.Key, t.Namespace)
	if err != nil {
		return nil, err
	}
	errorOnMissing, err := t.ErrorOnMissing.Get(ctx, rc, false)
	if err != nil {
		return nil, err
	}
	_, v, err := rc.Store.Get(ctx, ns, key)
	switch kvflow.ErrorCode(err) {
	case "":
		return plugin.Outputs{"value": outputValue(v)}, nil
	case kvflow.ENOTFOUND, kvflow.EEXPIRED:
		if t.DefaultValue.IsSet() {
			dflt, err := t.DefaultValue.Get(ctx, rc, nil)
			if err != nil {
				return nil, err
			}
			return plugin.Outputs{"value": dflt}, nil
		}
		if errorOnMissing {
			return nil, missing(ns, key, err)
		}
		return plugin.Outputs{"value": nil}, nil
	}
	return nil, err
}

// GetKeys lists live keys: io.kestra.plugin.core.kv.GetKeys.
//
// Output: keys, the keys of the namespace starting with prefix (all keys
// when prefix is unset or empty), sorted, as a list; empty when none.
type GetKeys struct {
	Prefix    plugin.Property[string] `yaml:"prefix"`
	Namespace plugin.Property[string] `yaml:"namespace"` // default: the flow's
}

// Validate checks the literal properties when the flow loads.
func (t *GetKeys) Validate() error {
	return joinErrors(t.Prefix.Check(), checkNamespace(t.Namespace))
}

// Run lists the keys.
func (t *GetKeys) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	prefix, err := t.Prefix.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	ns, err := targetNamespace(ctx, rc, t.Namespace)
	if err != nil {
		return nil, err
	}
	keys, err := rc.Store.Keys(ctx, ns, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return plugin.Outputs{"keys": out}, nil
}

// Delete removes a key: io.kestra.plugin.core.kv.Delete.
//
// Output: deleted, true when a live entry was removed. A missing or expired
// key fails when errorOnMissing is true.
type Delete struct {
	Key            plugin.Property[string] `yaml:"key" required:"true"`
	Namespace      plugin.Property[string] `yaml:"namespace"`      // default: the flow's
	ErrorOnMissing plugin.Property[bool]   `yaml:"errorOnMissing"` // default false
	DefaultValue   plugin.Property[any]    `yaml:"defaultValue"`   // output for a missing or expired key; wins over errorOnMissing
}

// Validate checks the literal properties when the flow loads.
func (t *Delete) Validate() error {
	return joinErrors(checkKey(t.Key), checkNamespace(t.Namespace), t.ErrorOnMissing.Check())
}

// Run deletes the key.
func (t *Delete) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	ns, key, err := target(ctx, rc, t.Key, t.Namespace)
	if err != nil {
		return nil, err
	}
	errorOnMissing, err := t.ErrorOnMissing.Get(ctx, rc, false)
	if err != nil {
		return nil, err
	}
	deleted, err := rc.Store.Delete(writer(ctx, rc), ns, key)
	if err != nil {
		return nil, err
	}
	if !deleted && errorOnMissing {
		return nil, missing(ns, key, nil)
	}
	return plugin.Outputs{"deleted": deleted}, nil
}
