package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

// Conditional requests on KV entries. The ETag of an entry is its version,
// quoted ("3"). PUT and DELETE honour If-Match ("3", or * for any live
// version) and PUT If-None-Match: * (create only); a condition that fails is
// 412 with the current version in the body (null when there is no live entry).

func etag(version int64) string { return client.ETag(version) }

// cond is what a request's conditional headers ask.
type cond struct {
	ifMatch     bool  // If-Match was given
	anyVersion  bool  // If-Match: *
	version     int64 // If-Match: "N"
	ifNoneMatch bool  // If-None-Match: *
}

func (c cond) any() bool { return c.ifMatch || c.ifNoneMatch }

// parseCond reads If-Match and If-None-Match. Only one entity tag, or *, is accepted.
func parseCond(r *http.Request, ns, key string) (cond, error) {
	var c cond
	if h := strings.TrimSpace(r.Header.Get("If-Match")); h != "" {
		c.ifMatch = true
		if h == "*" {
			c.anyVersion = true
		} else {
			t := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
			n, err := strconv.ParseInt(t, 10, 64)
			if err != nil || n < 1 {
				return c, kvflow.Errorf(kvflow.EINVALID, "If-Match %q for key '%s' in namespace '%s' is not a version: expected an ETag such as \"3\" or *.", kvflow.Clip(h), key, ns)
			}
			c.version = n
		}
	}
	if h := strings.TrimSpace(r.Header.Get("If-None-Match")); h != "" {
		if h != "*" || r.Method != http.MethodPut {
			return c, kvflow.Errorf(kvflow.EINVALID, "If-None-Match %q for key '%s' in namespace '%s' is not supported: only * on PUT (create only).", kvflow.Clip(h), key, ns)
		}
		c.ifNoneMatch = true
	}
	return c, nil
}

// apply turns the conditions into store options; If-Match: * reads the live version.
func (s *Server) applyCond(ctx context.Context, c cond, ns, key string, o *storage.SetOptions) error {
	o.NoOverwrite = o.NoOverwrite || c.ifNoneMatch
	switch {
	case c.anyVersion:
		e, err := s.cfg.Store.Stat(ctx, ns, key)
		if err != nil {
			return s.failed(ctx, ns, key, "it does not exist")
		}
		o.IfVersion = e.Version
	case c.ifMatch:
		o.IfVersion = c.version
	}
	return nil
}

// preconditionError is a failed condition, with the entry's current version.
type preconditionError struct {
	err     *kvflow.Error
	version *int64
}

func (e *preconditionError) Error() string { return e.err.Error() }
func (e *preconditionError) Unwrap() error { return e.err }

// failed builds the 412 for ns/key, reading its current version.
func (s *Server) failed(ctx context.Context, ns, key, why string) error {
	pe := &preconditionError{err: kvflow.Errorf(kvflow.EPRECONDITION, "Precondition failed for key '%s' in namespace '%s': %s.", key, ns, why)}
	if e, err := s.cfg.Store.Stat(ctx, ns, key); err == nil {
		pe.version = &e.Version
		pe.err.Message = fmt.Sprintf("Precondition failed for key '%s' in namespace '%s': %s; it is at version %d.", key, ns, why, e.Version)
	}
	return pe
}

// condError turns a write's conflict, or a missing entry under If-Match, into a 412.
func (s *Server) condError(ctx context.Context, c cond, ns, key string, err error) error {
	if !c.any() {
		return err
	}
	switch code := kvflow.ErrorCode(err); {
	case code == kvflow.ECONFLICT && c.ifNoneMatch && !c.ifMatch:
		return s.failed(ctx, ns, key, "it exists and If-None-Match is *")
	case code == kvflow.ECONFLICT && c.anyVersion:
		return s.failed(ctx, ns, key, "it changed while being written")
	case code == kvflow.ECONFLICT:
		return s.failed(ctx, ns, key, fmt.Sprintf("If-Match asks for version %d", c.version))
	case c.ifMatch && (code == kvflow.ENOTFOUND || code == kvflow.EEXPIRED):
		return s.failed(ctx, ns, key, "it does not exist")
	}
	return err
}

// writeCondError answers a 412 with its version, anything else as writeError does.
func writeCondError(w http.ResponseWriter, r *http.Request, err error) {
	if pe, ok := err.(*preconditionError); ok {
		writeJSON(w, http.StatusPreconditionFailed, PreconditionBody{Message: pe.err.Message, Version: pe.version})
		return
	}
	writeError(w, r, err)
}

// headKV answers 200, 404 or 410 without a body; the metadata is in headers:
// ETag, KV-Type, KV-Version, KV-Created, KV-Updated, KV-Expires (RFC 3339)
// and KV-Description (percent-encoded UTF-8).
func (s *Server) headKV(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("namespace"), r.PathValue("key")
	if err := s.checkKey(ns, key); err != nil {
		w.WriteHeader(statusOf(kvflow.ErrorCode(err)))
		return
	}
	e, err := s.cfg.Store.Stat(r.Context(), ns, key)
	if err != nil {
		w.WriteHeader(statusOf(kvflow.ErrorCode(err)))
		return
	}
	h := w.Header()
	h.Set("ETag", etag(e.Version))
	h.Set("KV-Type", string(e.Type))
	h.Set("KV-Version", strconv.FormatInt(e.Version, 10))
	h.Set("KV-Created", e.Created.UTC().Format(time.RFC3339Nano))
	h.Set("KV-Updated", e.Updated.UTC().Format(time.RFC3339Nano))
	if e.Expires != nil {
		h.Set("KV-Expires", e.Expires.UTC().Format(time.RFC3339Nano))
	}
	if e.Description != "" {
		h.Set("KV-Description", url.PathEscape(e.Description))
	}
	if e.Sensitive {
		h.Set("KV-Sensitive", "true")
	}
	w.WriteHeader(http.StatusOK)
}

// incrementKV adds {"by": n} (default 1) to a NUMBER atomically, creating it
// at n, and answers {"value", "version"}. A key holding another type is 409.
func (s *Server) incrementKV(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("namespace"), r.PathValue("key")
	if err := s.checkKey(ns, key); err != nil {
		writeError(w, r, err)
		return
	}
	body, err := s.readLimited(r, 64<<10, fmt.Sprintf("the increment of key '%s' in namespace '%s'", key, ns))
	if err != nil {
		writeError(w, r, err)
		return
	}
	by := storage.Value{Type: storage.NUMBER, V: int64(1)}
	var o storage.SetOptions
	if len(strings.TrimSpace(string(body))) > 0 {
		doc, err := storage.DecodeJSON(body)
		m, ok := doc.(map[string]any)
		if err != nil || !ok {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "The body of an increment of key '%s' in namespace '%s' must be a JSON object such as {\"by\": 5}.", key, ns))
			return
		}
		for k := range m {
			if k != "by" && k != "ttl" && k != "description" {
				writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Field '%s' of an increment is unknown: expected by, ttl or description.", kvflow.Clip(k)))
				return
			}
		}
		if raw, ok := m["by"]; ok {
			if by, err = storage.FromGo(raw); err != nil || by.Type != storage.NUMBER {
				writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Field 'by' of an increment of key '%s' in namespace '%s' must be a number, such as 1 or -2.5.", key, ns))
				return
			}
		}
		if raw, ok := m["ttl"]; ok {
			text, _ := storage.FromGo(raw)
			if o.TTL, err = storage.ParseTTL(text.Text()); err != nil {
				writeError(w, r, inKey(err, ns, key))
				return
			}
		}
		if raw, ok := m["description"]; ok {
			d, isString := raw.(string)
			if err := storage.ValidateDescription(d); !isString || err != nil {
				writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Field 'description' of an increment of key '%s' in namespace '%s' must be a string of at most %d characters.", key, ns, storage.MaxDescriptionLen))
				return
			}
			o.Description = d
		}
	}
	start := time.Now()
	v, e, err := s.cfg.Store.Increment(r.Context(), ns, key, by, o)
	s.metrics.observe("kv_set", start)
	if err != nil {
		writeError(w, r, inKey(err, ns, key))
		return
	}
	s.metrics.updated.WithLabelValues(ns).Inc()
	w.Header().Set("ETag", etag(e.Version))
	writeJSON(w, http.StatusOK, IncrementResult{Value: v.JSONValue(), Version: e.Version, Sensitive: e.Sensitive})
}

// setManyKV writes a JSON array of {key, value, type?, ttl?, description?}
// (or an object of key to value) all or nothing: one bad entry is a 422
// naming its index and reason, with nothing stored.
func (s *Server) setManyKV(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	body, err := s.readLimited(r, s.cfg.MaxBodyBytes, fmt.Sprintf("the batch for namespace '%s'", ns))
	if err != nil {
		writeError(w, r, err)
		return
	}
	doc, err := storage.DecodeJSON(body)
	if err != nil {
		writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "The batch for namespace '%s' is not valid JSON: %s.", ns, storage.JSONErrorText(err)))
		return
	}
	batch, err := storage.ParseBatch(doc)
	if err != nil {
		writeError(w, r, err)
		return
	}
	start := time.Now()
	es, err := s.cfg.Store.SetMany(r.Context(), ns, batch)
	s.metrics.observe("kv_set", start)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]BatchResult, len(es))
	for i, e := range es {
		out[i] = BatchResult{Key: e.Key, Version: e.Version}
	}
	s.metrics.updated.WithLabelValues(ns).Add(float64(len(es)))
	writeJSON(w, http.StatusOK, out)
}

// exportKV streams the live entries of a namespace (with includeChildren=true
// also those below it; prefix filters keys) as JSON Lines.
func (s *Server) exportKV(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	o := storage.ExportOptions{Namespaces: []string{ns}, Prefix: r.URL.Query().Get("prefix")}
	if v := r.URL.Query().Get("includeChildren"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Query parameter 'includeChildren' is %q: expected true or false.", kvflow.Clip(v)))
			return
		}
		o.IncludeChildren = b
	}
	if o.IncludeChildren {
		// Children outside the API scope are left out, never an error.
		if err := s.checkNamespace(ns + ".x"); err != nil {
			o.IncludeChildren = false
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Trailer", client.ExportErrorTrailer)
	cw := &countWriter{w: w}
	if _, err := s.cfg.Store.Export(r.Context(), cw, o); err != nil {
		s.log.Warn("kv export stopped", "namespace", ns, "err", err)
		if cw.n == 0 { // nothing sent yet: an error answer
			w.Header().Del("Trailer")
			writeError(w, r, err)
			return
		}
		if lw, ok := w.(*logWriter); ok {
			lw.err = err
		}
		// Lines are out (whole: Export never stops inside one): the stream
		// ends with a line that no import reads as an entry, and the trailer
		// says why (the client fails on it).
		msg := kvflow.ErrorMessage(err)
		line, _ := json.Marshal(map[string]string{"error": msg})
		w.Write(append(line, '\n'))
		w.Header().Set(client.ExportErrorTrailer, msg)
	}
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// importKV reads JSON Lines as export writes them into this namespace (and
// those below it): onConflict skip (default), overwrite or fail, and
// namespaceMap old=new (repeatable). Answers {written, skipped, expired}.
func (s *Server) importKV(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	o := storage.ImportOptions{OnConflict: q.Get("onConflict"), NamespaceMap: map[string]string{}}
	for _, m := range q["namespaceMap"] {
		from, to, ok := strings.Cut(m, "=")
		if !ok {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Query parameter 'namespaceMap' is %q: expected old=new.", kvflow.Clip(m)))
			return
		}
		o.NamespaceMap[from] = to
	}
	o.Allow = func(line string) error {
		if line != ns && !strings.HasPrefix(line, ns+".") {
			return kvflow.Errorf(kvflow.EINVALID, "namespace '%s' is not '%s' nor below it.", line, ns)
		}
		return s.checkNamespace(line)
	}
	res, err := s.cfg.Store.Import(r.Context(), r.Body, o)
	if err != nil {
		writeJSON(w, statusOf(kvflow.ErrorCode(err)), ImportError{Message: kvflow.ErrorMessage(err), ImportResult: res})
		return
	}
	writeJSON(w, http.StatusOK, res)
}
