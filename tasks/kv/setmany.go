package kv

import (
	"context"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// SetManyType is kvflow's own task: no peer writes several keys atomically.
const SetManyType = "io.kvflow.kv.SetMany"

func init() {
	plugin.Default.MustRegister(plugin.Definition{Type: SetManyType, New: func() plugin.Task { return &SetMany{} },
		Description: "Write several keys of a namespace, all or nothing."})
}

// SetMany writes every entry or none. entries is a list of {key, value,
// type?, ttl?, description?} or a map of key to value (storage.ParseBatch);
// ttl applies to the entries that have none. One bad entry fails the task,
// naming its index and the reason, and nothing is stored.
// Outputs: keys (in the order written) and versions (key → version).
type SetMany struct {
	Entries   plugin.Property[any]           `yaml:"entries" required:"true"`
	Namespace plugin.Property[string]        `yaml:"namespace"`
	TTL       plugin.Property[time.Duration] `yaml:"ttl"`
}

// Validate checks the literal properties when the flow loads.
func (t *SetMany) Validate() error {
	var entriesErr error
	if !t.Entries.IsSet() {
		entriesErr = invalid("entries", "the property is required.")
	} else if !t.Entries.IsTemplate() {
		if _, err := batchOf(t.Entries.Raw()); err != nil {
			entriesErr = invalid("entries", "%s", kvflow.ErrorMessage(err))
		}
	}
	return joinErrors(entriesErr, checkNamespace(t.Namespace), t.TTL.Check())
}

// batchOf normalises a YAML or rendered value (through JSON, keeping numbers
// exact) and reads it as a batch.
func batchOf(raw any) ([]storage.BatchEntry, error) {
	v, err := storage.FromGo(raw)
	if err != nil {
		return nil, err
	}
	if v.Type == storage.STRING { // JSON text, as a template may render it
		if v, err = storage.ParseAs(storage.JSON, v.V.(string)); err != nil {
			return nil, err
		}
	}
	return storage.ParseBatch(v.V)
}

// Run renders the entries and writes them.
func (t *SetMany) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	ns, err := targetNamespace(ctx, rc, t.Namespace)
	if err != nil {
		return nil, err
	}
	raw, err := t.Entries.Get(ctx, rc, nil)
	if err != nil {
		return nil, err
	}
	batch, err := batchOf(raw)
	if err != nil {
		return nil, propErr(rc, "entries", err)
	}
	ttl, err := t.TTL.Get(ctx, rc, 0)
	if err != nil {
		return nil, err
	}
	for i := range batch {
		if batch[i].TTL == 0 {
			batch[i].TTL = ttl
		}
	}
	es, err := rc.Store.SetMany(writer(ctx, rc), ns, batch)
	if err != nil {
		return nil, err
	}
	keys := make([]any, len(es))
	versions := make(map[string]any, len(es))
	for i, e := range es {
		keys[i], versions[e.Key] = e.Key, e.Version
	}
	return plugin.Outputs{"keys": keys, "versions": versions}, nil
}
