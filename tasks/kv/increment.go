package kv

import (
	"context"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// IncrementType is kvflow's own task: Kestra has no atomic counter, and a
// Get then Set pair loses updates when executions run at the same time.
const IncrementType = "io.kvflow.kv.Increment"

func init() {
	plugin.Default.MustRegister(plugin.Definition{Type: IncrementType, New: func() plugin.Task { return &Increment{} },
		Description: "Atomically add a number to a NUMBER key, creating it when missing."})
}

// Increment adds `by` (default 1) to the NUMBER at key, creating it at `by`
// when missing or expired, as one compare-and-set: concurrent increments never
// lose an update. ttl and kvDescription, when given, apply on every increment;
// otherwise the entry keeps its own description and absolute expiry. The sum
// is exact; an integer counter past 64 bits fails, never wraps.
// Output: value, the new number.
type Increment struct {
	Key           plugin.Property[string]        `yaml:"key" required:"true"`
	By            plugin.Property[any]           `yaml:"by"`
	Namespace     plugin.Property[string]        `yaml:"namespace"`
	TTL           plugin.Property[time.Duration] `yaml:"ttl"`
	KVDescription plugin.Property[string]        `yaml:"kvDescription"`
}

// Validate checks the literal properties when the flow loads.
func (t *Increment) Validate() error {
	var byErr error
	if t.By.IsSet() && !t.By.IsTemplate() {
		if _, err := delta(t.By.Raw()); err != nil {
			byErr = invalid("by", "%s", strings.TrimPrefix(kvflow.ErrorMessage(err), "by: "))
		}
	}
	return joinErrors(checkKey(t.Key), byErr, checkNamespace(t.Namespace), t.TTL.Check(), t.KVDescription.Check())
}

// Run renders the properties and increments.
func (t *Increment) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	ns, key, err := target(ctx, rc, t.Key, t.Namespace)
	if err != nil {
		return nil, err
	}
	raw, err := t.By.Get(ctx, rc, int64(1))
	if err != nil {
		return nil, err
	}
	by, err := delta(raw)
	if err != nil {
		return nil, propErr(rc, "by", err)
	}
	ttl, err := t.TTL.Get(ctx, rc, 0)
	if err != nil {
		return nil, err
	}
	desc, err := t.KVDescription.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	v, _, err := rc.Store.Increment(writer(ctx, rc), ns, key, by, storage.SetOptions{TTL: ttl, Description: desc})
	if err != nil {
		return nil, err
	}
	return plugin.Outputs{"value": v.V}, nil
}

// delta reads `by`: a number, or text holding one.
func delta(raw any) (storage.Value, error) {
	if s, ok := raw.(string); ok {
		return storage.ParseAs(storage.NUMBER, s)
	}
	v, err := storage.FromGo(raw)
	if err == nil && v.Type != storage.NUMBER {
		err = kvflow.Errorf(kvflow.EINVALID, "by: expected a number, got a value (%s).", storage.Describe(v))
	}
	return v, err
}
