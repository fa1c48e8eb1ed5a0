package api

import (
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// patchKV applies a JSON merge patch (RFC 7386) to a key's value, atomically
// (storage.Merge): an object patch merges into a JSON object value key by
// key, a null removes a field, anything else replaces the value; a missing
// key is created. If-Match ("3" or *) makes it conditional (412 on mismatch).
// The entry keeps its description and expiry. Answers {type, value, version}
// and the ETag.
func (s *Server) patchKV(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("namespace"), r.PathValue("key")
	if err := s.checkKey(ns, key); err != nil {
		writeError(w, r, err)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/merge-patch+json" && mt != "application/json" {
		writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Content type %q is not supported for a patch of key '%s' in namespace '%s': send application/merge-patch+json (RFC 7386).", kvflow.Clip(r.Header.Get("Content-Type")), key, ns))
		return
	}
	c, err := parseCond(r, ns, key)
	var o storage.SetOptions
	if err == nil {
		err = s.applyCond(r.Context(), c, ns, key, &o)
	}
	if err != nil {
		writeCondError(w, r, err)
		return
	}
	body, err := s.readLimited(r, min(s.cfg.MaxBodyBytes, storage.MaxValueSize), fmt.Sprintf("the patch of key '%s' in namespace '%s'", key, ns))
	if err != nil {
		writeError(w, r, err)
		return
	}
	patch, err := storage.DecodeJSON(body)
	if err != nil {
		writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "The patch of key '%s' in namespace '%s' is not valid JSON: %s.", key, ns, storage.JSONErrorText(err)))
		return
	}
	start := time.Now()
	v, e, err := s.cfg.Store.Merge(r.Context(), ns, key, patch, storage.MergeOptions{IfVersion: o.IfVersion, NullDeletes: true})
	s.metrics.observe("kv_set", start)
	if err != nil {
		writeCondError(w, r, s.condError(r.Context(), c, ns, key, inKey(err, ns, key)))
		return
	}
	s.metrics.updated.WithLabelValues(ns).Inc()
	w.Header().Set("ETag", etag(e.Version))
	writeJSON(w, http.StatusOK, PatchResult{Type: string(v.Type), Value: v.JSONValue(), Version: e.Version, Sensitive: e.Sensitive})
}
