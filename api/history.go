package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// KV history routes (issue 11): versions of a key, a read at a version,
// restore, the namespace's change feed (audit) and its watch as SSE.

// VersionOf is v as the versions route shows it.
func VersionOf(v *storage.Version) Version {
	out := Version{Version: v.Version, Change: string(v.Change), Type: string(v.Type), Description: v.Description,
		Size: v.Size, Hash: v.Hash, Writer: v.Writer, CreationDate: Time{Time: v.Created}, UpdateDate: Time{Time: v.Updated}, Sensitive: v.Sensitive}
	if v.Expires != nil {
		out.ExpirationDate = Time{Time: *v.Expires}
	}
	return out
}

// ChangeOf is c as the change routes show it.
func ChangeOf(c *storage.Change) Change {
	return Change{Seq: c.Seq, Key: c.Key, Change: string(c.Change), Version: c.Version, Type: string(c.Type), Writer: c.Writer, Date: Time{Time: c.At}}
}

// intParam reads an optional integer query parameter: 0 or more, or with a
// max (a page size) 1 to max.
func intParam(r *http.Request, name string, def, max int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || (max > 0 && (n < 1 || n > max)) {
		if max > 0 {
			return 0, kvflow.Errorf(kvflow.EINVALID, "Query parameter '%s' is %q: expected a number from 1 to %d.", name, kvflow.Clip(s), max)
		}
		return 0, kvflow.Errorf(kvflow.EINVALID, "Query parameter '%s' is %q: expected a whole number, 0 or more.", name, kvflow.Clip(s))
	}
	return n, nil
}

// versionsKV answers a key's versions, newest first, tombstones included:
// ?limit= (1–1000, default 100) and ?cursor= (X-Next-Cursor of the previous page).
func (s *Server) versionsKV(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("namespace"), r.PathValue("key")
	if err := s.checkKey(ns, key); err != nil {
		writeError(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", storage.DefaultListLimit, storage.MaxListLimit)
	var before int64
	if err == nil {
		before, err = intParam(r, "cursor", 0, 0)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, err := s.cfg.Store.History(r.Context(), ns, key, storage.HistoryOptions{Before: before, Limit: int(limit)})
	if err != nil {
		writeError(w, r, err)
		return
	}
	if page.Next != 0 {
		next := url.Values{"limit": {strconv.FormatInt(limit, 10)}, "cursor": {strconv.FormatInt(page.Next, 10)}}
		w.Header().Set(NextCursorHeader, strconv.FormatInt(page.Next, 10))
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
	}
	out := make([]Version, len(page.Versions))
	for i := range page.Versions {
		out[i] = VersionOf(&page.Versions[i])
	}
	writeJSON(w, http.StatusOK, out)
}

// getKVVersion answers GET .../kv/{key}?version=N like getKV, from history.
func (s *Server) getKVVersion(w http.ResponseWriter, r *http.Request, ns, key string) {
	n, err := strconv.ParseInt(r.URL.Query().Get("version"), 10, 64)
	if err != nil || n < 1 {
		writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Query parameter 'version' is %q: expected a version number, 1 or more.", kvflow.Clip(r.URL.Query().Get("version"))))
		return
	}
	start := time.Now()
	ver, v, err := s.cfg.Store.GetVersion(r.Context(), ns, key, n)
	s.metrics.observe("kv_get", start)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.metrics.retrieved.WithLabelValues(ns).Inc()
	w.Header().Set("ETag", etag(ver.Version)) // the version read, as GET of the live value names its own
	writeJSON(w, http.StatusOK, TypedValue{Type: string(v.Type), Value: v.JSONValue(), Sensitive: ver.Sensitive})
}

// restoreKV writes a new version holding an old version's value, type and
// description, and answers the new entry's metadata. If-Match (the version
// the caller last saw, quoted or not) makes it conditional: 412 when the key
// has moved on. For a deleted key If-Match may name the tombstone.
func (s *Server) restoreKV(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("namespace"), r.PathValue("key")
	if err := s.checkKey(ns, key); err != nil {
		writeError(w, r, err)
		return
	}
	body, err := s.readBody(w, r, fmt.Sprintf("key '%s' in namespace '%s'", key, ns))
	if err != nil {
		writeError(w, r, err)
		return
	}
	req, err := restoreRequest(body, ns, key)
	if err != nil {
		writeError(w, r, err)
		return
	}
	c, err := parseCond(r, ns, key)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var o storage.SetOptions
	if err := s.applyCond(r.Context(), c, ns, key, &o); err != nil { // If-Match: * wants a live key
		writeCondError(w, r, err)
		return
	}
	e, err := s.cfg.Store.Restore(r.Context(), ns, key, req.Version, o)
	if kvflow.ErrorCode(err) == kvflow.ECONFLICT && o.IfVersion > 0 {
		err = s.restoreFailed(r.Context(), ns, key, o.IfVersion)
	}
	if err != nil {
		writeCondError(w, r, err)
		return
	}
	s.metrics.updated.WithLabelValues(ns).Inc()
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(e.Version, 10)))
	writeJSON(w, http.StatusOK, EntryOf(e, true))
}

// restoreRequest reads a restore's body, {"version": N}, naming what is
// wrong: an unknown field, a version that is not a whole number of 1 or
// more, anything after the object.
func restoreRequest(body []byte, ns, key string) (RestoreRequest, error) {
	var req RestoreRequest
	doc, err := storage.DecodeJSON(body)
	m, ok := doc.(map[string]any)
	if err != nil || !ok {
		return req, kvflow.Errorf(kvflow.EINVALID, `The body of a restore of key '%s' in namespace '%s' must be one JSON object, {"version": N}.`, key, ns)
	}
	for k := range m {
		if k != "version" {
			return req, kvflow.Errorf(kvflow.EINVALID, "Field '%s' of a restore is unknown: expected version.", kvflow.Clip(k))
		}
	}
	v, ok := m["version"].(int64) // a whole number, as DecodeJSON reads one
	if !ok || v < 1 {
		return req, kvflow.Errorf(kvflow.EINVALID, "Field 'version' of a restore of key '%s' in namespace '%s' must be a version number, 1 or more.", key, ns)
	}
	req.Version = v
	return req, nil
}

// restoreFailed builds the 412 of a restore whose If-Match is stale, as PUT's
// with the key's current version: its newest, a tombstone included, since
// If-Match may name one.
func (s *Server) restoreFailed(ctx context.Context, ns, key string, ifVersion int64) error {
	why := fmt.Sprintf("If-Match asks for version %d", ifVersion)
	page, err := s.cfg.Store.History(ctx, ns, key, storage.HistoryOptions{Limit: 1})
	if err != nil || len(page.Versions) == 0 {
		return s.failed(ctx, ns, key, why)
	}
	v := page.Versions[0].Version
	return &preconditionError{version: &v, err: kvflow.Errorf(kvflow.EPRECONDITION,
		"Precondition failed for key '%s' in namespace '%s': %s; it is at version %d.", key, ns, why, v)}
}

// changesKV answers the namespace's changes after ?since= (default 0), in
// order, at most ?limit= (1–1000, default 100): who changed which key, when,
// to which version; never a value. 410 when changes after since were pruned.
// X-Next-Cursor holds the last seq when the page is full.
func (s *Server) changesKV(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	since, err := intParam(r, "since", 0, 0)
	var limit int64
	if err == nil {
		limit, err = intParam(r, "limit", storage.DefaultListLimit, storage.MaxListLimit)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	cs, err := s.cfg.Store.Changes(r.Context(), ns, since, int(limit))
	if err == nil && len(cs) == 0 {
		err = s.cfg.Store.CheckSince(r.Context(), ns, since)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]Change, len(cs))
	for i := range cs {
		out[i] = ChangeOf(&cs[i])
	}
	if len(cs) == int(limit) {
		last := strconv.FormatInt(cs[len(cs)-1].Seq, 10)
		w.Header().Set(NextCursorHeader, last)
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, url.Values{"since": {last}, "limit": {strconv.FormatInt(limit, 10)}}.Encode()))
	}
	writeJSON(w, http.StatusOK, out)
}

// watchPoll is how often the watches look for changes other processes
// made (feedHub); this process's own writes wake them at once.
const watchPoll = 250 * time.Millisecond

// watchKV streams the namespace's changes as Server-Sent Events: one event
// "change" per change, its id the seq and its data
// {"seq","key","change","version","type"}. ?since=SEQ (or Last-Event-ID)
// resumes after that seq; without it the stream starts at the current end.
// ?prefix= keeps keys starting with it. ?values=true adds each SET's "value"
// (a sensitive one masked unless ?reveal=true, as GET's detail route does).
// 410 when changes after since were pruned.
func (s *Server) watchKV(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	prefix := r.URL.Query().Get("prefix")
	values, err := boolQuery(r, "values")
	var reveal bool
	if err == nil {
		reveal, err = boolQuery(r, "reveal")
	}
	since := int64(-1)
	if err == nil {
		since, err = intParam(r, "since", -1, 0)
	}
	if err == nil && since < 0 && r.Header.Get("Last-Event-ID") != "" {
		if since, err = strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64); err != nil || since < 0 {
			err = kvflow.Errorf(kvflow.EINVALID, "Header Last-Event-ID is %q: expected a change seq.", kvflow.Clip(r.Header.Get("Last-Event-ID")))
		}
	}
	moved, unsubscribe := (<-chan struct{})(nil), func() {}
	if err == nil {
		moved, unsubscribe = s.feeds.subscribe(r.Context(), ns) // before the first read
	}
	defer unsubscribe()
	if err == nil && since < 0 {
		since, err = s.cfg.Store.FeedHead(r.Context(), ns)
	} else if err == nil {
		err = s.cfg.Store.CheckSince(r.Context(), ns, since)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.stopping, cancel) // a server shutdown ends every watch
	defer stop()
	rc := http.NewResponseController(w)
	started := false
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		wrote := s.cfg.Store.Wrote()
		cs, err := s.cfg.Store.Changes(ctx, ns, since, storage.MaxListLimit)
		if err != nil && !started {
			writeError(w, r, err)
			return
		} else if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(w, "event: error\ndata: %s\n\n", mustJSON(ErrorBody{Message: kvflow.ErrorMessage(err)}))
				rc.Flush()
			}
			return
		}
		if !started {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, ": watching %s after %d\n\n", ns, since)
			started = true
		}
		for i := range cs {
			c := &cs[i]
			since = c.Seq
			if !strings.HasPrefix(c.Key, prefix) {
				continue
			}
			ev := struct {
				Seq       int64  `json:"seq"`
				Key       string `json:"key"`
				Change    string `json:"change"`
				Version   int64  `json:"version"`
				Type      string `json:"type"`
				Value     any    `json:"value,omitempty"`
				Sensitive bool   `json:"sensitive,omitempty"`
			}{Seq: c.Seq, Key: c.Key, Change: string(c.Change), Version: c.Version, Type: string(c.Type)}
			if values && c.Change == storage.SET {
				// The version's value, read as GET ?version=N reads it; none
				// when retention purged it meanwhile.
				if ver, v, err := s.cfg.Store.GetVersion(ctx, ns, c.Key, c.Version); err == nil {
					ev.Value, ev.Sensitive = v.JSONValue(), ver.Sensitive
					if ver.Sensitive && !reveal {
						ev.Value = storage.Mask
					}
				}
			}
			fmt.Fprintf(w, "id: %d\nevent: change\ndata: %s\n\n", c.Seq, mustJSON(ev))
		}
		if err := rc.Flush(); err != nil {
			return
		}
		if len(cs) == storage.MaxListLimit {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-wrote:
		case <-moved:
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
		}
	}
}

// withWriter records API callers as the writer of what they store.
func withWriter(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(storage.WithWriter(r.Context(), WriterAPI)))
	})
}

// WriterAPI is the writer of versions written through the API. (The server
// has one token; with named tokens this becomes storage.TokenWriter(name).)
const WriterAPI = "api"

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
