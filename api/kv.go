package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// EntryOf is e as the list routes show it; withNS keeps its namespace.
func EntryOf(e *storage.Entry, withNS bool) Entry {
	out := Entry{Key: e.Key, Type: string(e.Type), Description: e.Description, Version: e.Version,
		CreationDate: Time{Time: e.Created}, UpdateDate: Time{Time: e.Updated}, Sensitive: e.Sensitive}
	if withNS {
		out.Namespace = e.Namespace
	}
	if e.Expires != nil {
		out.ExpirationDate = Time{Time: *e.Expires}
	}
	return out
}

// checkKey validates the namespace (and API access to it) and the key. A bad
// key's message also names the namespace.
func (s *Server) checkKey(ns, key string) error {
	if err := s.checkNamespace(ns); err != nil {
		return err
	}
	if err := storage.ValidateKey(key); err != nil {
		return inNamespace(err, ns)
	}
	return nil
}

// inNamespace adds the namespace to a key error's message when it lacks it.
func inNamespace(err error, ns string) error {
	var e *kvflow.Error
	if !errors.As(err, &e) || strings.Contains(e.Message, "'"+ns+"'") {
		return err
	}
	return &kvflow.Error{Code: e.Code, Message: strings.TrimSuffix(e.Message, ".") + fmt.Sprintf(" (namespace '%s').", ns), Err: err}
}

// param returns the first non-empty of a query parameter and the headers named.
func param(r *http.Request, query string, headers ...string) string {
	if v := r.URL.Query().Get(query); v != "" {
		return v
	}
	for _, h := range headers {
		if v := r.Header.Get(h); v != "" {
			return v
		}
	}
	return ""
}

// putKV writes a value. The body is read by content type: application/json
// as a JSON value whose JSON type gives the KV type; text/plain, no content
// type, form-encoded or octet-stream as Kestra reads text (storage.Infer).
// An explicit type (?type=, header kv-type or type) parses the text as that
// type instead; with a JSON body a JSON string gives its text. Headers (or
// query parameters) ttl or expirationDate (an absolute expiry), description
// and overwrite complete the write.
func (s *Server) putKV(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("namespace"), r.PathValue("key")
	if err := s.checkKey(ns, key); err != nil {
		writeError(w, r, err)
		return
	}
	var o storage.SetOptions
	var typ storage.Type
	if t := param(r, "type", "kv-type", "type"); t != "" {
		var err error
		if typ, err = storage.ParseType(t); err != nil {
			writeError(w, r, inKey(err, ns, key))
			return
		}
	}
	if ttl := param(r, "ttl", "ttl"); ttl != "" {
		d, err := storage.ParseTTL(ttl)
		if err != nil {
			writeError(w, r, inKey(err, ns, key))
			return
		}
		o.TTL = d
	}
	if exp := param(r, "expirationDate", "expirationDate"); exp != "" {
		if o.TTL > 0 {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Give ttl or expirationDate for key '%s' in namespace '%s', not both.", key, ns))
			return
		}
		t, err := time.Parse(time.RFC3339Nano, exp)
		if err != nil {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Expiration date %q for key '%s' in namespace '%s' is not an RFC 3339 instant such as 2026-12-31T23:00:00Z.", kvflow.Clip(exp), key, ns))
			return
		}
		o.ExpiresAt = t
	}
	o.Description = param(r, "description", "description")
	if err := storage.ValidateDescription(o.Description); err != nil {
		writeError(w, r, inKey(err, ns, key))
		return
	}
	if ow := param(r, "overwrite", "overwrite"); ow != "" {
		b, err := strconv.ParseBool(ow)
		if err != nil {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Overwrite %q for key '%s' in namespace '%s' is not a boolean: expected true or false.", kvflow.Clip(ow), key, ns))
			return
		}
		o.NoOverwrite = !b
	}
	if sv := param(r, "sensitive", "sensitive"); sv != "" {
		b, err := strconv.ParseBool(sv)
		if err != nil {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Sensitive %q for key '%s' in namespace '%s' is not a boolean: expected true or false.", kvflow.Clip(sv), key, ns))
			return
		}
		o.Sensitive = b
	}
	c, err := parseCond(r, ns, key)
	if err == nil {
		err = s.applyCond(r.Context(), c, ns, key, &o)
	}
	if err != nil {
		writeCondError(w, r, err)
		return
	}
	what := fmt.Sprintf("key '%s' in namespace '%s'", key, ns)
	start := time.Now()
	if typ == storage.STRING && isText(r.Header.Get("Content-Type")) {
		// A STRING streams to the object store: memory stays flat, and the
		// body limit is the only one.
		body := &limitedBody{r: r.Body, left: s.cfg.MaxBodyBytes, max: s.cfg.MaxBodyBytes, what: what}
		if r.ContentLength > s.cfg.MaxBodyBytes {
			writeError(w, r, body.tooLarge())
			return
		}
		e, err := s.cfg.Store.SetStream(r.Context(), ns, key, body, o)
		s.metrics.observe("kv_set", start)
		if err != nil {
			writeCondError(w, r, s.condError(r.Context(), c, ns, key, inKey(err, ns, key)))
			return
		}
		s.metrics.updated.WithLabelValues(ns).Inc()
		w.Header().Set("ETag", etag(e.Version))
		w.WriteHeader(http.StatusOK)
		return
	}
	// Any other value is read whole: it may not pass the whole-value limit,
	// checked before reading (Content-Length) and while reading (chunked).
	body, err := s.readLimited(r, min(s.cfg.MaxBodyBytes, storage.MaxValueSize), what)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v, err := parseValue(r.Header.Get("Content-Type"), typ, body)
	if err != nil {
		writeError(w, r, inKey(err, ns, key))
		return
	}
	e, err := s.cfg.Store.Set(r.Context(), ns, key, v, o)
	s.metrics.observe("kv_set", start)
	if err != nil {
		writeCondError(w, r, s.condError(r.Context(), c, ns, key, inKey(err, ns, key)))
		return
	}
	s.metrics.updated.WithLabelValues(ns).Inc()
	w.Header().Set("ETag", etag(e.Version))
	w.WriteHeader(http.StatusOK)
}

// inKey adds the key and namespace to a value error's message when it lacks them.
func inKey(err error, ns, key string) error {
	var e *kvflow.Error
	if !errors.As(err, &e) || strings.Contains(e.Message, "'"+ns+"'") {
		return err
	}
	return &kvflow.Error{Code: e.Code, Message: strings.TrimSuffix(e.Message, ".") + fmt.Sprintf(" (key '%s' in namespace '%s').", key, ns), Err: err}
}

// parseValue turns a PUT body into a typed value.
func parseValue(contentType string, typ storage.Type, body []byte) (storage.Value, error) {
	mt := ""
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			return storage.Value{}, kvflow.Errorf(kvflow.EINVALID, "Content type %q is invalid: %v.", kvflow.Clip(contentType), err)
		}
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		v, err := storage.FromJSON(body)
		if err != nil || typ == "" {
			return v, err
		}
		text := strings.TrimSpace(string(body))
		if v.Type == storage.STRING {
			text = v.V.(string)
		}
		return storage.ParseAs(typ, text)
	case mt == "", mt == "application/x-www-form-urlencoded", mt == "application/octet-stream", strings.HasPrefix(mt, "text/"):
		if typ != "" {
			return storage.ParseAs(typ, string(body))
		}
		return storage.Infer(string(body)), nil
	}
	return storage.Value{}, kvflow.Errorf(kvflow.EINVALID, "Content type %q is not supported for a value: send application/json (a JSON value) or text/plain.", kvflow.Clip(mt))
}

// readBody reads the whole body up to MaxBodyBytes; what names the target in errors.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, what string) ([]byte, error) {
	return s.readLimited(r, s.cfg.MaxBodyBytes, what)
}

// readLimited reads the whole body, refusing one over max bytes before
// reading it when its Content-Length says so, else as soon as it passes max.
func (s *Server) readLimited(r *http.Request, max int64, what string) ([]byte, error) {
	lb := &limitedBody{r: r.Body, left: max, max: max, what: what}
	if r.ContentLength > max {
		return nil, lb.tooLarge()
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(lb); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// limitedBody reads a request body, failing with ETOOLARGE once it passes
// max bytes and with EINVALID when the body cannot be read.
type limitedBody struct {
	r         io.Reader
	left, max int64
	what      string
}

func (l *limitedBody) tooLarge() error {
	if l.max == storage.MaxValueSize {
		return kvflow.Errorf(kvflow.ETOOLARGE, "The request body for %s is larger than the limit of %d bytes for a whole value; send a large STRING with ?type=STRING to stream it.", l.what, l.max)
	}
	return kvflow.Errorf(kvflow.ETOOLARGE, "The request body for %s is larger than the limit of %d bytes.", l.what, l.max)
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, l.tooLarge()
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1] // one byte more than allowed shows the body is too large
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, l.tooLarge()
	}
	if err != nil && err != io.EOF {
		err = kvflow.Errorf(kvflow.EINVALID, "Cannot read the request body for %s: %v.", l.what, err)
	}
	return n, err
}

// isText reports whether a PUT body of this content type is read as text
// (not JSON), so a STRING can be streamed as it comes.
func isText(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (strings.HasPrefix(mt, "text/") || mt == "application/octet-stream")
}

// getKV answers {"type":…,"value":…}.
func (s *Server) getKV(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead { // the GET route serves HEAD too
		s.headKV(w, r)
		return
	}
	ns, key := r.PathValue("namespace"), r.PathValue("key")
	if err := s.checkKey(ns, key); err != nil {
		writeError(w, r, err)
		return
	}
	if r.URL.Query().Has("version") {
		s.getKVVersion(w, r, ns, key)
		return
	}
	start := time.Now()
	e, v, err := s.cfg.Store.Get(r.Context(), ns, key)
	s.metrics.observe("kv_get", start)
	if kvflow.ErrorCode(err) == kvflow.ETOOLARGE {
		s.streamString(w, r, ns, key)
		return
	} else if err != nil {
		writeError(w, r, err)
		return
	}
	s.metrics.retrieved.WithLabelValues(ns).Inc()
	w.Header().Set("ETag", etag(e.Version))
	// A sensitive value is answered here in clear: this is the read programs
	// make, and whoever may read the key may reveal it. Detail masks it.
	writeJSON(w, http.StatusOK, TypedValue{Type: string(v.Type), Value: v.JSONValue(), Sensitive: e.Sensitive})
}

// streamString answers a STRING value too large to hold in memory as the
// same JSON, escaping it as it streams. A failure mid-way aborts the response.
func (s *Server) streamString(w http.ResponseWriter, r *http.Request, ns, key string) {
	e, rc, err := s.cfg.Store.Open(r.Context(), ns, key)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, `{"type":"`+string(e.Type)+`","value":"`)
	if _, err := io.Copy(&jsonStringWriter{w: w}, rc); err != nil {
		s.log.Error("streaming a value failed", "namespace", ns, "key", key, "err", err)
		panic(http.ErrAbortHandler)
	}
	io.WriteString(w, `"}`)
	s.metrics.retrieved.WithLabelValues(ns).Inc()
}

// jsonStringWriter writes UTF-8 text as the inside of a JSON string.
type jsonStringWriter struct{ w io.Writer }

func (j *jsonStringWriter) Write(p []byte) (int, error) {
	const hex = "0123456789abcdef"
	buf := make([]byte, 0, len(p)+64)
	start := 0
	for i, c := range p {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, p[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	buf = append(buf, p[start:]...)
	if _, err := j.w.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// detailKV answers a key's metadata with its value.
func (s *Server) detailKV(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("namespace"), r.PathValue("key")
	if err := s.checkKey(ns, key); err != nil {
		writeError(w, r, err)
		return
	}
	start := time.Now()
	e, v, err := s.cfg.Store.Get(r.Context(), ns, key)
	s.metrics.observe("kv_get", start)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.metrics.retrieved.WithLabelValues(ns).Inc()
	w.Header().Set("ETag", etag(e.Version))
	writeJSON(w, http.StatusOK, EntryDetail{Entry: EntryOf(e, true), Value: shown(r, e, v)})
}

// deleteKV answers true when a live entry was deleted, false when there was none.
func (s *Server) deleteKV(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("namespace"), r.PathValue("key")
	if err := s.checkKey(ns, key); err != nil {
		writeError(w, r, err)
		return
	}
	c, err := parseCond(r, ns, key)
	if err != nil {
		writeError(w, r, err)
		return
	}
	start := time.Now()
	var deleted bool
	if c.ifMatch {
		// Compare-and-delete: only the version asked for (any live one for *).
		err = s.applyCond(r.Context(), c, ns, key, &storage.SetOptions{})
		if err == nil {
			v := c.version
			if c.anyVersion {
				var e *storage.Entry
				if e, err = s.cfg.Store.Stat(r.Context(), ns, key); err == nil {
					v = e.Version
				}
			}
			if err == nil {
				err = s.cfg.Store.DeleteIf(r.Context(), ns, key, v)
			}
			deleted = err == nil
			err = s.condError(r.Context(), c, ns, key, err)
		}
		if err != nil {
			writeCondError(w, r, err)
			return
		}
	} else {
		deleted, err = s.cfg.Store.Delete(r.Context(), ns, key)
	}
	s.metrics.observe("kv_delete", start)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if deleted {
		s.metrics.deleted.WithLabelValues(ns).Inc()
	}
	writeJSON(w, http.StatusOK, deleted)
}

// bulkDeleteKV deletes the keys listed in {"keys":[…]}, or with ?all=true
// (and no body) every key of the namespace, and answers the ones that
// existed. Every listed key is checked before any is deleted; each delete is
// a tombstone in the key's history.
func (s *Server) bulkDeleteKV(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	if v := r.URL.Query().Get("all"); v != "" {
		all, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Query parameter 'all' is %q: expected true or false.", kvflow.Clip(v)))
			return
		}
		if all {
			s.deleteAllKV(w, r, ns)
			return
		}
	}
	body, err := s.readBody(w, r, fmt.Sprintf("the keys to delete in namespace '%s'", ns))
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req struct {
		Keys *[]string `json:"keys"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Keys == nil {
		writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "The body must be a JSON object {\"keys\": [\"key1\", …]} listing the keys to delete in namespace '%s'.", ns))
		return
	}
	for _, key := range *req.Keys {
		if err := storage.ValidateKey(key); err != nil {
			writeError(w, r, inNamespace(err, ns))
			return
		}
	}
	out := KeysBody{Keys: []string{}}
	for _, key := range *req.Keys {
		start := time.Now()
		deleted, err := s.cfg.Store.Delete(r.Context(), ns, key)
		s.metrics.observe("kv_delete", start)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if deleted {
			s.metrics.deleted.WithLabelValues(ns).Inc()
			out.Keys = append(out.Keys, key)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// listKV answers the namespace's live entries sorted by key, as a JSON array.
// ?prefix= keeps keys starting with it, ?q= keys containing it anywhere
// (?ci=true: ignoring case). Without ?limit= every entry is returned
// (streamed page by page). With ?limit=N (1–1000) one page is returned; when
// more follow, the X-Next-Cursor header and a Link rel="next" header give the
// cursor to pass as ?cursor= for the next page. ?offset=N skips N entries
// first (page numbers), and ?total=true adds the X-Total-Count header.
func (s *Server) listKV(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	o, err := listOptions(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	o.After = q.Get("cursor")
	paged := q.Has("limit")
	if !paged {
		o.Limit = storage.MaxListLimit
	}
	total, err := boolQuery(r, "total")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if paged && total {
		n, err := s.cfg.Store.Count(r.Context(), ns, o)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set(TotalCountHeader, strconv.Itoa(n))
	}
	start := time.Now()
	page, err := s.cfg.Store.List(r.Context(), ns, o)
	s.metrics.observe("kv_list", start)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if paged {
		if page.Next != "" {
			next := url.Values{"limit": {strconv.Itoa(o.Limit)}, "cursor": {page.Next}}
			for _, p := range []string{"prefix", "q", "ci"} {
				if q.Get(p) != "" {
					next.Set(p, q.Get(p))
				}
			}
			w.Header().Set(NextCursorHeader, page.Next)
			w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
		}
		out := make([]Entry, len(page.Entries))
		for i := range page.Entries {
			out[i] = EntryOf(&page.Entries[i], false)
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	// Every page, streamed: a later failure aborts the response.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	first := true
	for {
		for i := range page.Entries {
			b, _ := marshal(EntryOf(&page.Entries[i], false))
			if first {
				w.Write([]byte{'['})
				first = false
			} else {
				w.Write([]byte{','})
			}
			w.Write(b)
		}
		if page.Next == "" {
			break
		}
		if r.Context().Err() != nil {
			return // the caller left
		}
		o.After, o.Offset = page.Next, 0
		if page, err = s.cfg.Store.List(r.Context(), ns, o); err != nil {
			s.log.Error("listing keys failed mid-way", "namespace", ns, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
	if first {
		w.Write([]byte{'['})
	}
	w.Write([]byte{']'})
}

// inheritedKV answers the live entries of the namespace's ancestors, nearest
// first (each sorted by key); a key found in a nearer ancestor hides the same
// key further up. With ?shadowed=true hidden entries are answered too, each
// with shadowedBy naming the nearer namespace (the namespace itself
// included) that holds the key. Ancestors the API may not reach are left out.
func (s *Server) inheritedKV(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	shadowed := false
	switch v := r.URL.Query().Get("shadowed"); v {
	case "", "false":
	case "true":
		shadowed = true
	default:
		writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Query parameter 'shadowed' is %q: expected true or false.", kvflow.Clip(v)))
		return
	}
	out := []Entry{}
	seen := map[string]string{} // key → nearest ancestor holding it
	for _, anc := range storage.Ancestors(ns)[1:] {
		if !s.scope.Contains(anc) {
			continue
		}
		o := storage.ListOptions{Limit: storage.MaxListLimit}
		for {
			page, err := s.cfg.Store.List(r.Context(), anc, o)
			if err != nil {
				writeError(w, r, err)
				return
			}
			for i := range page.Entries {
				e := &page.Entries[i]
				if by, ok := seen[e.Key]; !ok {
					seen[e.Key] = anc
					out = append(out, EntryOf(e, true))
				} else if shadowed {
					x := EntryOf(e, true)
					x.ShadowedBy = by
					out = append(out, x)
				}
			}
			if page.Next == "" {
				break
			}
			o.After = page.Next
		}
	}
	if shadowed {
		// The namespace's own keys hide every inherited one of the same name.
		own := map[string]bool{}
		for key := range seen {
			if _, err := s.cfg.Store.Stat(r.Context(), ns, key); err == nil {
				own[key] = true
			} else if c := kvflow.ErrorCode(err); c != kvflow.ENOTFOUND && c != kvflow.EEXPIRED {
				writeError(w, r, err)
				return
			}
		}
		for i := range out {
			if own[out[i].Key] {
				out[i].ShadowedBy = ns
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// purgeKV removes expired entries (or, with all, every matching entry).
func (s *Server) purgeKV(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r, "the purge request")
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req PurgeRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "The purge request must be a JSON object with namespaces, includeChildren, keyGlob and all: %s.", storage.JSONErrorText(err)))
			return
		}
	}
	if !s.scope.Unrestricted() && len(req.Namespaces) == 0 {
		writeError(w, r, kvflow.Errorf(kvflow.EFORBIDDEN, "This server limits the namespaces the API may reach: name the namespaces to purge."))
		return
	}
	for _, ns := range req.Namespaces {
		if err := s.checkNamespace(ns); err != nil {
			writeError(w, r, err)
			return
		}
		if req.IncludeChildren && !s.scope.ContainsTree(ns) {
			writeError(w, r, kvflow.Errorf(kvflow.EFORBIDDEN, "Access to the namespaces below '%s' is not allowed through the API: the server allows only %s.", ns, s.scope))
			return
		}
	}
	start := time.Now()
	purged, err := s.cfg.Store.Purge(r.Context(), storage.PurgeOptions{
		Namespaces: req.Namespaces, IncludeChildren: req.IncludeChildren, KeyGlob: req.KeyGlob,
		All: req.All, BatchSize: s.cfg.SweepBatch,
	})
	s.metrics.observe("kv_purge", start)
	out := PurgeResult{Purged: map[string]int{}}
	for ns, n := range purged {
		if req.All {
			s.metrics.deleted.WithLabelValues(ns).Add(float64(n))
		} else {
			s.metrics.purged.WithLabelValues(ns).Add(float64(n))
		}
		out.Purged[ns] = n
		out.Total += n
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// shown is a value as detail answers it: a sensitive one is storage.Mask
// unless the request says ?reveal=true.
func shown(r *http.Request, e *storage.Entry, v storage.Value) any {
	if e.Sensitive {
		if reveal, _ := strconv.ParseBool(r.URL.Query().Get("reveal")); !reveal {
			return storage.Mask
		}
	}
	return v.JSONValue()
}

// deleteAllKV deletes every key of ns; a body listing keys as well is refused.
func (s *Server) deleteAllKV(w http.ResponseWriter, r *http.Request, ns string) {
	body, err := s.readBody(w, r, fmt.Sprintf("the keys to delete in namespace '%s'", ns))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Deleting every key of namespace '%s' (all=true) takes no body: send either all=true or {\"keys\": […]}.", ns))
		return
	}
	start := time.Now()
	keys, err := s.cfg.Store.DeleteAll(r.Context(), ns)
	s.metrics.observe("kv_delete", start)
	s.metrics.deleted.WithLabelValues(ns).Add(float64(len(keys)))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, KeysBody{Keys: keys})
}
