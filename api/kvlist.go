package api

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

// TotalCountHeader carries how many entries a list selects across its pages.
const TotalCountHeader = client.TotalCountHeader

// listOptions reads the filters and paging the KV lists share: ?prefix=,
// ?q= (anywhere in the key), ?ci=true (q ignores case), ?limit=, ?offset=.
func listOptions(q url.Values) (storage.ListOptions, error) {
	o := storage.ListOptions{Prefix: q.Get("prefix"), Contains: q.Get("q")}
	switch ci := q.Get("ci"); ci {
	case "", "false":
	case "true":
		o.IgnoreCase = true
	default:
		return o, kvflow.Errorf(kvflow.EINVALID, "Query parameter 'ci' is %q: expected true or false.", kvflow.Clip(ci))
	}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > storage.MaxListLimit {
			return o, kvflow.Errorf(kvflow.EINVALID, "Limit %q is out of range: expected a number from 1 to %d.", kvflow.Clip(q.Get("limit")), storage.MaxListLimit)
		}
		o.Limit = n
	}
	if q.Has("offset") {
		n, err := strconv.Atoi(q.Get("offset"))
		if err != nil || n < 0 {
			return o, kvflow.Errorf(kvflow.EINVALID, "Offset %q is out of range: expected a number from 0 up.", kvflow.Clip(q.Get("offset")))
		}
		o.Offset = n
	}
	return o, nil
}

// listAllKV answers live entries across every namespace the API may reach,
// sorted by namespace then key, each with its namespace: one page of ?limit=
// (default 50) from ?offset=, with X-Total-Count. ?namespace= keeps that
// namespace and those below it; ?prefix=, ?q= and ?ci= filter keys as on
// the namespace's own list.
func (s *Server) listAllKV(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o, err := listOptions(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if o.Limit == 0 {
		o.Limit = 50
	}
	under := q.Get("namespace")
	if under != "" {
		if err := s.checkNamespace(under); err != nil {
			writeError(w, r, err)
			return
		}
	}
	ctx := r.Context()
	stats, err := s.cfg.Store.Namespaces(ctx)
	if err != nil {
		writeError(w, r, err)
		return
	}
	sort.Slice(stats, func(i, j int) bool { return stats[i].Namespace < stats[j].Namespace })
	filtered := o.Prefix != "" || o.Contains != ""
	total, skip := 0, o.Offset
	out := []Entry{}
	for _, st := range stats {
		ns := st.Namespace
		if !s.scope.Contains(ns) || (under != "" && ns != under && !strings.HasPrefix(ns, under+".")) {
			continue
		}
		n := st.Keys
		if filtered {
			if n, err = s.cfg.Store.Count(ctx, ns, o); err != nil {
				writeError(w, r, err)
				return
			}
		}
		total += n
		if skip >= n {
			skip -= n
			continue
		}
		if len(out) < o.Limit {
			lo := o
			lo.Offset, lo.Limit = skip, o.Limit-len(out)
			page, err := s.cfg.Store.List(ctx, ns, lo)
			if err != nil {
				writeError(w, r, err)
				return
			}
			for i := range page.Entries {
				out = append(out, EntryOf(&page.Entries[i], true))
			}
		}
		skip = 0
	}
	w.Header().Set(TotalCountHeader, strconv.Itoa(total))
	writeJSON(w, http.StatusOK, out)
}
