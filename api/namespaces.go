package api

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
)

// listNamespaces answers every namespace that holds flows or KV entries or
// was created explicitly, sorted, leaving out those the API may not reach.
func (s *Server) listNamespaces(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	all := map[string]*Namespace{}
	get := func(id string) *Namespace {
		if all[id] == nil {
			all[id] = &Namespace{ID: id}
		}
		return all[id]
	}
	stats, err := s.cfg.Store.Namespaces(ctx)
	if err != nil {
		writeError(w, r, err)
		return
	}
	for _, st := range stats {
		get(st.Namespace).Keys = st.Keys
	}
	created, err := s.cfg.DB.CreatedNamespaces(ctx)
	if err != nil {
		writeError(w, r, kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot list namespaces: %s", kvflow.ErrorMessage(err)))
		return
	}
	for _, id := range created {
		get(id)
	}
	counts, err := s.flowCounts(ctx)
	if err != nil {
		writeError(w, r, err)
		return
	}
	for id, n := range counts {
		get(id).Flows = n
	}
	writeJSON(w, http.StatusOK, s.hierarchy(all))
}

// hierarchy lists the namespaces the API may reach, each parent before its
// children, with their implicit parents (those the scope allows)
// and key counts: keyCount its own, totalKeyCount with every listed one below.
// A parent outside the scope is left out, and so are counts of namespaces
// outside it.
func (s *Server) hierarchy(all map[string]*Namespace) []Namespace {
	for id := range all {
		for p := parentOf(id); p != ""; p = parentOf(p) {
			if all[p] == nil {
				all[p] = &Namespace{ID: p, Implicit: true}
			}
		}
	}
	out := []Namespace{}
	for id, ns := range all {
		if s.scope.Contains(id) {
			ns.KeyCount, ns.Parent = ns.Keys, parentOf(id)
			out = append(out, *ns)
		}
	}
	// By segments, so children follow their parent (a-b sorts before a.b as text).
	sort.Slice(out, func(i, j int) bool {
		return slices.Compare(strings.Split(out[i].ID, "."), strings.Split(out[j].ID, ".")) < 0
	})
	// Add each namespace's keys to its own total and every listed ancestor's.
	index := make(map[string]int, len(out))
	for i, ns := range out {
		index[ns.ID] = i
	}
	for _, ns := range out {
		for p := ns.ID; p != ""; p = parentOf(p) {
			if i, ok := index[p]; ok {
				out[i].TotalKeyCount += ns.Keys
			}
		}
	}
	return out
}

// parentOf is the namespace one segment up, "" for a top-level one.
func parentOf(ns string) string {
	if i := strings.LastIndexByte(ns, '.'); i > 0 {
		return ns[:i]
	}
	return ""
}

// createNamespace records a namespace from {"id":"company.team"} (or a form
// field id) and answers 201 with it; 409 when it was already created.
func (s *Server) createNamespace(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r, "the new namespace")
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req struct {
		ID string `json:"id"`
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "The form is invalid: %v.", err))
			return
		}
		req.ID = vals.Get("id")
	} else if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "The body must be a JSON object {\"id\": \"company.team\"} naming the namespace to create."))
		return
	}
	req.ID = strings.TrimSpace(req.ID)
	if err := s.checkNamespace(req.ID); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.cfg.DB.CreateNamespace(r.Context(), req.ID, time.Now()); err != nil {
		writeError(w, r, err)
		return
	}
	ns := Namespace{ID: req.ID, Parent: parentOf(req.ID)}
	if stats, err := s.cfg.Store.Namespaces(r.Context()); err == nil { // it may already hold entries
		for _, st := range stats {
			if st.Namespace == req.ID {
				ns.Keys, ns.KeyCount, ns.TotalKeyCount = st.Keys, st.Keys, st.Keys
			}
		}
	}
	w.Header().Set("Location", "/api/v1/namespaces/"+req.ID+"/kv")
	writeJSON(w, http.StatusCreated, ns)
}
