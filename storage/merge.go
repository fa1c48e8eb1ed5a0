package storage

import (
	"context"
	"strings"

	"github.com/kvflow/kvflow"
)

// MergeOptions tune Merge.
type MergeOptions struct {
	// IfVersion, when set, merges only into the live entry at this version:
	// ECONFLICT (or ENOTFOUND) otherwise, with no retry. 0: whatever is live,
	// retrying on concurrent writes.
	IfVersion int64
	// ErrorOnMissing refuses a missing or expired key (ENOTFOUND, EEXPIRED)
	// instead of creating it.
	ErrorOnMissing bool
	// NullDeletes makes a null in the patch remove the field, as a JSON merge
	// patch (RFC 7386) does; otherwise a null is stored as a null.
	NullDeletes bool
	// ObjectOnly refuses (ECONFLICT) to merge into a live value that is not a
	// JSON object, rather than replacing it: field updates by path need one.
	ObjectOnly bool
}

// Merge writes patch into the value of ns/key and returns the new value and
// entry. A JSON object patch is deep-merged into a live JSON object value
// (objects merge key by key at every depth; any other value, lists included,
// replaces); any other patch, or a patch on a value that is not an object,
// replaces the value (unless ObjectOnly). A missing or expired key is created
// from the patch. The entry keeps its description and absolute expiry.
//
// It is atomic: the value is read, merged and written back as a
// compare-and-set on its version, and read again when another writer got
// there first, so concurrent merges of different fields all land.
func (s *Store) Merge(ctx context.Context, ns, key string, patch any, o MergeOptions) (Value, *Entry, error) {
	if err := validateNames(ns, key); err != nil {
		return Value{}, nil, err
	}
	if patch == nil {
		return Value{}, nil, kvflow.Errorf(kvflow.EINVALID, "The patch for key '%s' in namespace '%s' is null: expected a JSON object or a value.", key, ns)
	}
	p, err := FromGo(patch)
	if err != nil {
		return Value{}, nil, kvflow.Errorf(kvflow.EINVALID, "The patch for key '%s' in namespace '%s' is not a value: %s", key, ns, kvflow.ErrorMessage(err))
	}
	pm, isObject := p.V.(map[string]any)
	if o.ObjectOnly && !isObject {
		return Value{}, nil, kvflow.Errorf(kvflow.EINVALID, "The patch for key '%s' in namespace '%s' must be a JSON object, not %s.", key, ns, Describe(p.V))
	}
	for {
		cur, v, err := s.get(ctx, ns, key) // the live value, even under a snapshot
		var next Value
		write := SetOptions{NoOverwrite: true}
		switch code := kvflow.ErrorCode(err); {
		case code == kvflow.ENOTFOUND || code == kvflow.EEXPIRED:
			if o.ErrorOnMissing || o.IfVersion > 0 {
				return Value{}, nil, err
			}
			next = p
			if isObject {
				next = Value{JSON, mergeObject(map[string]any{}, pm, o.NullDeletes)}
			}
		case err != nil:
			return Value{}, nil, err
		case o.IfVersion > 0 && cur.Version != o.IfVersion:
			return Value{}, nil, kvflow.Errorf(kvflow.ECONFLICT, "Cannot merge into key '%s' in namespace '%s': it is at version %d, not %d.", key, ns, cur.Version, o.IfVersion)
		default:
			curObj, curIsObject := v.V.(map[string]any)
			switch {
			case isObject && curIsObject && v.Type == JSON:
				next = Value{JSON, mergeObject(curObj, pm, o.NullDeletes)}
			case o.ObjectOnly:
				return Value{}, nil, kvflow.Errorf(kvflow.ECONFLICT, "Cannot update fields of key '%s' in namespace '%s': it holds %s, not a JSON object.", key, ns, describeValue(v))
			case isObject:
				next = Value{JSON, mergeObject(map[string]any{}, pm, o.NullDeletes)}
			default:
				next = p
			}
			write = SetOptions{IfVersion: cur.Version, Description: cur.Description, Sensitive: cur.Sensitive}
			if cur.Expires != nil {
				write.ExpiresAt = *cur.Expires
			}
		}
		e, err := s.Set(ctx, ns, key, next, write)
		if kvflow.ErrorCode(err) == kvflow.ECONFLICT && o.IfVersion == 0 {
			continue // another writer got there first: read again
		}
		return next, e, err
	}
}

// describeValue names a value's type for an error, without its content.
func describeValue(v Value) string {
	if v.Type == JSON {
		if _, ok := v.V.([]any); ok {
			return "a JSON list"
		}
	}
	return "a " + string(v.Type)
}

// mergeObject merges patch into dst (which it changes) and returns it:
// objects merge key by key, anything else replaces; with nullDeletes a null
// removes the key (RFC 7386).
func mergeObject(dst, patch map[string]any, nullDeletes bool) map[string]any {
	for k, pv := range patch {
		switch x := pv.(type) {
		case nil:
			if nullDeletes {
				delete(dst, k)
			} else {
				dst[k] = nil
			}
		case map[string]any:
			d, ok := dst[k].(map[string]any)
			if !ok {
				d = map[string]any{}
			}
			dst[k] = mergeObject(d, x, nullDeletes)
		default:
			dst[k] = copyJSON(pv)
		}
	}
	return dst
}

// ExpandPaths turns field updates by dotted path ({"a.b": 1, "c": 2}) into
// the nested object they describe ({"a": {"b": 1}, "c": 2}), to be merged.
// A path that is empty, has an empty segment, or is both a field and the
// parent of another path is refused, naming it.
func ExpandPaths(updates map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for _, path := range sortedKeys(updates) {
		segs := strings.Split(path, ".")
		for _, s := range segs {
			if s == "" {
				return nil, kvflow.Errorf(kvflow.EINVALID, "Field path '%s' has an empty segment: expected names separated by dots, such as 'address.city'.", kvflow.Clip(path))
			}
		}
		m := out
		for i, s := range segs[:len(segs)-1] {
			switch x := m[s].(type) {
			case nil:
				child := map[string]any{}
				m[s], m = child, child
			case map[string]any:
				m = x
			default:
				return nil, kvflow.Errorf(kvflow.EINVALID, "Field path '%s' goes below '%s', which is also set as a whole.", kvflow.Clip(path), strings.Join(segs[:i+1], "."))
			}
		}
		last := segs[len(segs)-1]
		if _, taken := m[last]; taken {
			return nil, kvflow.Errorf(kvflow.EINVALID, "Field path '%s' is set as a whole and also has fields set below it.", kvflow.Clip(path))
		}
		m[last] = updates[path]
	}
	return out, nil
}
