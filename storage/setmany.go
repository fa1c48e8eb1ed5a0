package storage

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/kvflow/kvflow"
)

// BatchEntry is one write of SetMany.
type BatchEntry struct {
	Key         string
	Value       Value
	TTL         time.Duration // 0: never expires
	Description string
	Sensitive   bool // sealed and masked, as SetOptions.Sensitive
}

// MaxBatch bounds the entries of one SetMany.
const MaxBatch = 10000

// SetMany writes every entry of ns, or none: each entry is checked and
// encoded first (the first bad one is refused as EINVALID naming its index and
// key, nothing written), the value objects are uploaded, then every metadata
// row is written in one transaction. If that transaction fails nothing is
// visible and the objects are removed.
func (s *Store) SetMany(ctx context.Context, ns string, entries []BatchEntry) ([]*Entry, error) {
	if len(entries) == 0 {
		return nil, kvflow.Errorf(kvflow.EINVALID, "A batch write to namespace '%s' needs at least one entry.", ns)
	}
	if len(entries) > MaxBatch {
		return nil, kvflow.Errorf(kvflow.EINVALID, "A batch write to namespace '%s' has %d entries; the limit is %d.", ns, len(entries), MaxBatch)
	}
	if err := ValidateNamespace(ns); err != nil {
		return nil, err
	}
	bodies := make([][]byte, len(entries))
	seen := make(map[string]int, len(entries))
	for i, be := range entries {
		refuse := func(err error) error {
			msg := strings.TrimSuffix(kvflow.ErrorMessage(err), ".")
			return kvflow.Errorf(kvflow.EINVALID, "Entry %d (key '%s') of the batch for namespace '%s' is refused, so nothing was written: %s.", i, kvflow.Clip(be.Key), ns, msg)
		}
		if err := s.checkSet(ns, be.Key, SetOptions{TTL: be.TTL, Description: be.Description}); err != nil {
			return nil, refuse(err)
		}
		if j, dup := seen[be.Key]; dup {
			return nil, refuse(kvflow.Errorf(kvflow.EINVALID, "the key is also entry %d", j))
		}
		seen[be.Key] = i
		if err := checkValue(be.Value); err != nil {
			return nil, refuse(err)
		}
		var buf bytes.Buffer
		if err := EncodeION(&buf, be.Value); err != nil {
			return nil, refuse(kvflow.Errorf(kvflow.EINVALID, "the value cannot be encoded: %v", err))
		}
		body := buf.Bytes()
		if be.Sensitive {
			SecretsFrom(ctx).AddValue(be.Value)
			var err error
			if body, err = s.seal(ns, be.Key, body); err != nil {
				return nil, err
			}
		}
		if len(body) > MaxValueSize {
			return nil, refuse(kvflow.Errorf(kvflow.EINVALID, "the value is %d bytes; the limit is %d", len(body), MaxValueSize))
		}
		bodies[i] = body
	}

	// Objects first, a few at a time (the small values in one pack); each
	// under a fresh name no reader sees yet, with the batch's intents
	// recorded meanwhile.
	nss := make([]string, len(entries))
	for i := range nss {
		nss[i] = ns
	}
	names, uploads := planObjects(nss, bodies)
	intents := make([]Intent, len(entries))
	for i := range entries {
		intents[i] = Intent{Namespace: ns, Object: names[i]}
	}
	wait := s.recordIntents(ctx, intents)
	errs := make([]error, len(entries))
	uploaded := make([]string, len(entries))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, u := range uploads {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			n := int64(len(u.body))
			err := s.bucket.Put(ctx, u.name, s.gate(bytes.NewReader(u.body), n, wait), n)
			for _, i := range u.members {
				if err != nil {
					errs[i] = unavailable(err, "Cannot write value for key '%s' in namespace '%s': the object store is unreachable", entries[i].Key, ns)
				} else {
					uploaded[i] = names[i]
				}
			}
		}()
	}
	wg.Wait()
	cleanup := func() { s.dropWritten(ctx, uploaded, nil) }
	if err := wait(); err != nil {
		cleanup()
		return nil, unavailable(err, "Cannot write %d keys in namespace '%s': the database is unreachable", len(entries), ns)
	}
	for i, err := range errs {
		if err != nil {
			cleanup()
			if s.intentTaken(ctx, intents[i], nil) {
				return nil, ErrIntentGone
			}
			return nil, err
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	out := make([]*Entry, len(entries))
	for i, be := range entries {
		out[i] = &Entry{Namespace: ns, Key: be.Key, Type: be.Value.Type, Object: names[i],
			Size: int64(len(bodies[i])), Hash: sha256Hex(bodies[i]), Description: be.Description, Sensitive: be.Sensitive,
			Updated: now, Writer: WriterFrom(ctx)}
		if be.TTL > 0 {
			exp := now.Add(be.TTL)
			out[i].Expires = &exp
		}
	}
	if err := s.index.PutEntries(ctx, out); err != nil {
		cleanup()
		return nil, unavailable(err, "Cannot write the metadata of %d keys in namespace '%s': the database is unreachable", len(out), ns)
	}
	return out, nil
}

// ParseBatch reads the entries of a batch write as the API, the SetMany task
// and the CLI take them: a list of {key, value, type?, ttl?, description?, sensitive?}
// objects, or a map of key to value. A value's JSON type gives its KV type
// unless type says otherwise (then a string value is parsed as that type);
// ttl is ISO-8601 or whole seconds. An entry that does not fit is refused
// with its index (or key) and the reason.
func ParseBatch(doc any) ([]BatchEntry, error) {
	switch d := doc.(type) {
	case []any:
		out := make([]BatchEntry, len(d))
		for i, raw := range d {
			m, ok := raw.(map[string]any)
			if !ok {
				return nil, kvflow.Errorf(kvflow.EINVALID, "Entry %d of the batch must be an object {key, value, type?, ttl?, description?, sensitive?}, not %s.", i, Describe(raw))
			}
			be, err := batchEntry(m)
			if err != nil {
				key, _ := m["key"].(string)
				return nil, kvflow.Errorf(kvflow.EINVALID, "Entry %d (key '%s') of the batch is refused, so nothing was written: %s.", i, kvflow.Clip(key), strings.TrimSuffix(kvflow.ErrorMessage(err), "."))
			}
			out[i] = be
		}
		return out, nil
	case map[string]any:
		out := make([]BatchEntry, 0, len(d))
		for _, k := range sortedKeys(d) {
			if d[k] == nil {
				return nil, kvflow.Errorf(kvflow.EINVALID, "Entry '%s' of the batch is refused, so nothing was written: its value is null.", kvflow.Clip(k))
			}
			v, err := FromGo(d[k])
			if err != nil {
				return nil, kvflow.Errorf(kvflow.EINVALID, "Entry '%s' of the batch is refused, so nothing was written: %s.", kvflow.Clip(k), strings.TrimSuffix(kvflow.ErrorMessage(err), "."))
			}
			out = append(out, BatchEntry{Key: k, Value: v})
		}
		return out, nil
	}
	return nil, kvflow.Errorf(kvflow.EINVALID, "A batch is a list of {key, value, type?, ttl?, description?, sensitive?} objects or a map of key to value, not %s.", Describe(doc))
}

func batchEntry(m map[string]any) (BatchEntry, error) {
	var be BatchEntry
	for k := range m {
		switch k {
		case "key", "value", "type", "ttl", "description", "sensitive":
		default:
			return be, kvflow.Errorf(kvflow.EINVALID, "field '%s' is unknown; expected key, value, type, ttl, description or sensitive", kvflow.Clip(k))
		}
	}
	key, ok := m["key"].(string)
	if !ok || key == "" {
		return be, kvflow.Errorf(kvflow.EINVALID, "field 'key' must be a non-empty string")
	}
	be.Key = key
	raw, ok := m["value"]
	if !ok || raw == nil {
		return be, kvflow.Errorf(kvflow.EINVALID, "field 'value' is missing or null")
	}
	var err error
	if ts, ok := m["type"]; ok && ts != nil {
		name, _ := ts.(string)
		t, err := ParseType(name)
		if err != nil {
			return be, err
		}
		if s, isText := raw.(string); isText {
			be.Value, err = ParseAs(t, s)
		} else if be.Value, err = FromGo(raw); err == nil && be.Value.Type != t {
			be.Value, err = ParseAs(t, be.Value.Text())
		}
		if err != nil {
			return be, err
		}
	} else if be.Value, err = FromGo(raw); err != nil {
		return be, err
	}
	if ttl, ok := m["ttl"]; ok && ttl != nil {
		tv, err := FromGo(ttl)
		if err != nil {
			return be, err
		}
		if be.TTL, err = ParseTTL(tv.Text()); err != nil {
			return be, err
		}
	}
	if sv, ok := m["sensitive"]; ok && sv != nil {
		b, isBool := sv.(bool)
		if !isBool {
			return be, kvflow.Errorf(kvflow.EINVALID, "field 'sensitive' must be true or false")
		}
		be.Sensitive = b
	}
	if d, ok := m["description"]; ok && d != nil {
		s, isText := d.(string)
		if !isText {
			return be, kvflow.Errorf(kvflow.EINVALID, "field 'description' must be a string")
		}
		be.Description = s
	}
	return be, nil
}
