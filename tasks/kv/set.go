package kv

import (
	"context"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// Set writes a value under a key: io.kestra.plugin.core.kv.Set.
//
// A value that is exactly one {{ expression }} keeps the expression's type
// (a map is stored as JSON, 42 as a NUMBER); YAML literals keep their YAML
// type; other text is a STRING. kvType converts text (kvType NUMBER turns
// "123.45" into 123.45) and must match a value that is not text; kvType
// STRING turns any value into its text. Output: version, the entry's version
// (1 on create, +1 on each write).
type Set struct {
	Key           plugin.Property[string]        `yaml:"key" required:"true"`
	Value         plugin.Property[any]           `yaml:"value" required:"true"`
	Namespace     plugin.Property[string]        `yaml:"namespace"` // default: the flow's
	Overwrite     plugin.Property[bool]          `yaml:"overwrite"` // default true
	TTL           plugin.Property[time.Duration] `yaml:"ttl"`       // ISO-8601, e.g. PT5M or P30D
	KVType        plugin.Property[storage.Type]  `yaml:"kvType"`
	KVDescription plugin.Property[string]        `yaml:"kvDescription"`
	Sensitive     plugin.Property[bool]          `yaml:"sensitive"` // seal the value and mask it in logs and outputs
}

// Validate checks the literal properties when the flow loads.
func (t *Set) Validate() error {
	var valueErr error
	if !t.Value.IsSet() {
		valueErr = invalid("value", "the property is required.")
	} else if typ, ok, _ := literal(t.KVType); ok && !t.Value.IsTemplate() {
		// Both literal: the conversion can be checked now.
		if v, err := storage.FromGo(t.Value.Raw()); err == nil {
			if _, err := convertValue(typ, v); err != nil {
				valueErr = invalid("value", "%s", kvflow.ErrorMessage(err))
			}
		}
	}
	return joinErrors(
		checkKey(t.Key),
		valueErr,
		checkNamespace(t.Namespace),
		t.Overwrite.Check(),
		t.TTL.Check(),
		t.KVType.Check(),
		t.KVDescription.Check(),
		t.Sensitive.Check(),
	)
}

// Run renders the properties and writes the value.
func (t *Set) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	ns, key, err := target(ctx, rc, t.Key, t.Namespace)
	if err != nil {
		return nil, err
	}
	overwrite, err := t.Overwrite.Get(ctx, rc, true)
	if err != nil {
		return nil, err
	}
	ttl, err := t.TTL.Get(ctx, rc, 0)
	if err != nil {
		return nil, err
	}
	typ, err := t.KVType.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	desc, err := t.KVDescription.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	sensitive, err := t.Sensitive.Get(ctx, rc, false)
	if err != nil {
		return nil, err
	}
	// Rendered here rather than with Value.Get, which refuses a null result
	// before this task can say which key it was for.
	raw := t.Value.Raw()
	if t.Value.IsTemplate() {
		if raw, err = rc.Templates.RenderValue(ctx, raw, rc.Data); err != nil {
			return nil, propErr(rc, "value", err)
		}
	}
	if raw == nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Cannot set value for key '%s' in namespace '%s': the value is null.", key, ns)
	}
	v, err := storage.FromGo(raw)
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Cannot set value for key '%s' in namespace '%s': %s", key, ns, kvflow.ErrorMessage(err))
	}
	if typ != "" {
		if v, err = convertValue(typ, v); err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "Cannot set value for key '%s' in namespace '%s': %s", key, ns, kvflow.ErrorMessage(err))
		}
	}
	e, err := rc.Store.Set(writer(ctx, rc), ns, key, v, storage.SetOptions{NoOverwrite: !overwrite, TTL: ttl, Description: desc, Sensitive: sensitive})
	if err != nil {
		return nil, err
	}
	return plugin.Outputs{"version": e.Version}, nil
}

// convertValue applies kvType: text is parsed as t, any value becomes text
// for STRING, and any other value must already be of type t.
func convertValue(t storage.Type, v storage.Value) (storage.Value, error) {
	switch {
	case v.Type == t:
		return v, nil
	case v.Type == storage.STRING:
		return storage.ParseAs(t, v.V.(string))
	case t == storage.STRING:
		return storage.String(v.Text()), nil
	}
	return storage.Value{}, kvflow.Errorf(kvflow.EINVALID, "kvType is %s but the value (%s) is a %s.", t, storage.Describe(v), v.Type)
}
