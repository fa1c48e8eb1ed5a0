package api

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// fieldErrors lists the problems of an invalid flow, or nil.
func fieldErrors(err error) []FieldError {
	var ve engine.ValidationErrors
	if !errors.As(err, &ve) {
		return nil
	}
	out := make([]FieldError, len(ve))
	for i, e := range ve {
		out[i] = FieldError{File: e.File, Line: e.Line, Column: e.Column, Field: e.Field, Message: e.Message}
	}
	return out
}

// flowOf describes a stored flow, parsing its source.
func (s *Server) flowOf(rec engine.FlowRecord) Flow {
	out := Flow{ID: rec.ID, Namespace: rec.Namespace, Revision: rec.Revision, Source: rec.Source, Updated: Time{Time: rec.Updated}}
	f, err := engine.Parse(flowFile(rec.Namespace, rec.ID), []byte(rec.Source), s.registry())
	if err != nil {
		out.Error = kvflow.ErrorMessage(err)
		return out
	}
	out.Description, out.Labels = f.Description, f.Labels
	for _, in := range f.Inputs {
		out.Inputs = append(out.Inputs, FlowInput{ID: in.ID, Type: string(in.Type), Required: in.Required, Defaults: in.Defaults, Description: in.Description})
	}
	for _, t := range f.Tasks {
		out.Tasks = append(out.Tasks, FlowTask{ID: t.ID, Type: t.Type})
	}
	now := time.Now()
	for _, t := range f.Triggers {
		ft := FlowTrigger{ID: t.ID, Type: t.Type, Disabled: t.Disabled}
		switch spec := t.Spec.(type) {
		case *engine.Schedule:
			ft.Cron, ft.Timezone = spec.Cron, spec.Location.String()
			if !t.Disabled {
				ft.NextDate = Time{Time: spec.Next(now)}
			}
		case *engine.WebhookSpec:
			ft.WebhookPath = "/api/v1/executions/webhook/" + url.PathEscape(rec.Namespace) + "/" + url.PathEscape(rec.ID) + "/" + url.PathEscape(spec.Key)
		case *engine.KVSpec:
			ft.Namespace, ft.Key, ft.Prefix, ft.On = cmp.Or(spec.Namespace, rec.Namespace), spec.Key, spec.Prefix, texts(spec.On)
		case *engine.FlowSpec:
			for _, c := range spec.Conditions {
				ft.Conditions = append(ft.Conditions, FlowCondition{Namespace: c.Namespace, Prefix: c.Prefix, FlowID: c.FlowID, In: texts(c.In), NotIn: texts(c.NotIn)})
			}
		}
		out.Triggers = append(out.Triggers, ft)
	}
	return out
}

// texts lists states or change kinds as strings, nil for none.
func texts[T ~string](list []T) []string {
	var out []string
	for _, x := range list {
		out = append(out, string(x))
	}
	return out
}

// flowFile names a stored flow in validation messages.
func flowFile(ns, id string) string { return ns + "/" + id + ".yaml" }

func (s *Server) registry() *plugin.Registry {
	if s.cfg.Engine != nil {
		return s.cfg.Engine.Registry()
	}
	return nil
}

// flowsReady answers 503 when the server has no flow repository or, for
// executions, no engine.
func (s *Server) flowsReady(w http.ResponseWriter, r *http.Request, needEngine bool) bool {
	if s.cfg.Repo == nil || (needEngine && s.cfg.Engine == nil) {
		writeError(w, r, kvflow.Errorf(kvflow.EUNAVAILABLE, "This server runs no flow engine."))
		return false
	}
	return true
}

// parseFlowBody reads and validates a flow's YAML.
func (s *Server) parseFlowBody(w http.ResponseWriter, r *http.Request, file string) (*engine.Flow, error) {
	body, err := s.readBody(w, r, "the flow")
	if err != nil {
		return nil, err
	}
	return engine.Parse(file, body, s.registry())
}

// createFlow stores a new flow from its YAML body: 201, or 422 with every
// validation error, or 409 when the flow exists.
func (s *Server) createFlow(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, false) {
		return
	}
	f, err := s.parseFlowBody(w, r, "flow.yaml")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.checkNamespace(f.Namespace); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.cfg.Engine.CheckTriggerAccess(f, s.scope); err != nil {
		writeError(w, r, err)
		return
	}
	// The database decides: of two racing creates, one gets 409. The flow
	// keeps its deployer's scope for the runs triggers start later.
	rec := f.Record()
	rec.Scope = s.scope
	rec, err = s.cfg.Repo.CreateFlow(r.Context(), rec)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/flows/"+rec.Namespace+"/"+rec.ID)
	writeJSON(w, http.StatusCreated, s.flowOf(rec))
}

// updateFlow replaces a flow's YAML; its id and namespace must match the path.
func (s *Server) updateFlow(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, false) {
		return
	}
	ns, id := r.PathValue("namespace"), r.PathValue("id")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	f, err := s.parseFlowBody(w, r, flowFile(ns, id))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if f.Namespace != ns || f.ID != id {
		writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "The flow's id and namespace (%s/%s) do not match the path (%s/%s): a flow cannot be renamed or moved by an update.", f.Namespace, f.ID, ns, id))
		return
	}
	if err := s.cfg.Engine.CheckTriggerAccess(f, s.scope); err != nil {
		writeError(w, r, err)
		return
	}
	rec := f.Record()
	rec.Scope = s.scope
	rec, err = s.cfg.Repo.UpdateFlow(r.Context(), rec)
	if err != nil {
		writeError(w, r, flowNotFound(err, ns, id))
		return
	}
	writeJSON(w, http.StatusOK, s.flowOf(rec))
}

func flowNotFound(err error, ns, id string) error {
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return kvflow.Errorf(kvflow.ENOTFOUND, "Flow '%s' does not exist in namespace '%s'.", id, ns)
	}
	return err
}

func (s *Server) getFlow(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, false) {
		return
	}
	ns, id := r.PathValue("namespace"), r.PathValue("id")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	rec, err := s.cfg.Repo.GetFlow(r.Context(), ns, id)
	if err != nil {
		writeError(w, r, flowNotFound(err, ns, id))
		return
	}
	writeJSON(w, http.StatusOK, s.flowOf(rec))
}

// deleteFlow answers 204, or 404 when there was no such flow.
func (s *Server) deleteFlow(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, false) {
		return
	}
	ns, id := r.PathValue("namespace"), r.PathValue("id")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	ok, err := s.cfg.Repo.DeleteFlow(r.Context(), ns, id)
	if err != nil {
		writeError(w, r, err)
		return
	} else if !ok {
		writeError(w, r, flowNotFound(kvflow.Errorf(kvflow.ENOTFOUND, ""), ns, id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listFlows answers the flows of ?namespace= (or all the API may reach).
func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, false) {
		return
	}
	ns := r.URL.Query().Get("namespace")
	if ns != "" {
		if err := s.checkNamespace(ns); err != nil {
			writeError(w, r, err)
			return
		}
	}
	recs, err := s.cfg.Repo.ListFlows(r.Context(), ns)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := []Flow{}
	for _, rec := range recs {
		if s.scope.Contains(rec.Namespace) {
			out = append(out, s.flowOf(rec))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// flowCounts returns the number of flows per namespace.
func (s *Server) flowCounts(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{}
	if s.cfg.Repo == nil {
		return counts, nil
	}
	recs, err := s.cfg.Repo.ListFlows(ctx, "")
	for _, rec := range recs {
		counts[rec.Namespace]++
	}
	return counts, err
}

// execute starts an execution of a stored flow with inputs from a JSON
// object or form fields. With ?wait=true it answers when the execution ends;
// with ?kvSnapshot=true its KV reads see the store as it was at its start.
func (s *Server) execute(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, true) {
		return
	}
	ns, id := r.PathValue("namespace"), r.PathValue("flowId")
	if err := s.checkNamespace(ns); err != nil {
		writeError(w, r, err)
		return
	}
	wait, err := boolQuery(r, "wait")
	if err != nil {
		writeError(w, r, err)
		return
	}
	snapshot, err := boolQuery(r, "kvSnapshot")
	if err != nil {
		writeError(w, r, err)
		return
	}
	inputs, err := s.readInputs(w, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	rec, err := s.cfg.Repo.GetFlow(r.Context(), ns, id)
	if err != nil {
		writeError(w, r, flowNotFound(err, ns, id))
		return
	}
	f, err := s.cfg.Engine.ParseStored(flowFile(ns, id), rec)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The execution may reach what both its deployer and this caller may.
	f.Scope = rec.Scope.Intersect(s.scope)
	f.KVSnapshot = f.KVSnapshot || snapshot // this one execution may ask for what the flow does not
	ex, err := s.cfg.Engine.Start(r.Context(), f, inputs)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.metrics.executionsStarted.WithLabelValues(ns).Inc()
	if wait {
		end, err := s.cfg.Engine.Wait(r.Context(), ex.ID)
		if r.Context().Err() != nil {
			return // the caller left
		} else if err != nil {
			writeError(w, r, err)
			return
		}
		ex = end
	}
	writeJSON(w, http.StatusOK, ex)
}

// boolQuery reads an optional boolean query parameter.
func boolQuery(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, kvflow.Errorf(kvflow.EINVALID, "%s=%q is not a boolean: expected true or false.", name, kvflow.Clip(v))
	}
	return b, nil
}

// readInputs reads execution inputs: a JSON object, or form fields
// (urlencoded or multipart). An empty body means no inputs.
func (s *Server) readInputs(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		if err := r.ParseMultipartForm(s.cfg.MaxBodyBytes); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, kvflow.Errorf(kvflow.ETOOLARGE, "The inputs are larger than the limit of %d bytes.", s.cfg.MaxBodyBytes)
			}
			return nil, kvflow.Errorf(kvflow.EINVALID, "The inputs form is invalid: %v.", err)
		}
		return formInputs(r.MultipartForm.Value), nil
	}
	body, err := s.readBody(w, r, "the inputs")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(string(body)) == "" {
		return map[string]any{}, nil
	}
	if mt == "application/x-www-form-urlencoded" {
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "The inputs form is invalid: %v.", err)
		}
		return formInputs(vals), nil
	}
	v, err := storage.DecodeJSON(body)
	in, ok := v.(map[string]any)
	if err != nil || !ok {
		return nil, kvflow.Errorf(kvflow.EINVALID, "The inputs must be a JSON object such as {\"name\": \"value\"} or form fields.")
	}
	return in, nil
}

func formInputs(vals map[string][]string) map[string]any {
	in := map[string]any{}
	for k, vs := range vals {
		if len(vs) > 0 {
			in[k] = vs[len(vs)-1]
		}
	}
	return in
}

// getExecution answers an execution with its task runs and outputs.
func (s *Server) getExecution(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, true) {
		return
	}
	ex, err := s.execution(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ex)
}

// execution reads an execution the API may reach.
func (s *Server) execution(ctx context.Context, id string) (*engine.Execution, error) {
	ex, err := s.cfg.Engine.Execution(ctx, id)
	if err != nil {
		return nil, err
	}
	if !s.scope.Contains(ex.Namespace) {
		return nil, kvflow.Errorf(kvflow.EFORBIDDEN, "Access to namespace '%s' of execution '%s' is not allowed through the API.", ex.Namespace, id)
	}
	return ex, nil
}

// executionLogs answers an execution's log lines, oldest first.
func (s *Server) executionLogs(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, true) {
		return
	}
	id := r.PathValue("id")
	if _, err := s.execution(r.Context(), id); err != nil {
		writeError(w, r, err)
		return
	}
	lines, err := s.cfg.Engine.Logs(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if lines == nil {
		lines = []engine.LogLine{}
	}
	writeJSON(w, http.StatusOK, lines)
}

// listExecutions answers executions, newest first, by ?namespace=, ?flowId= and ?limit=.
func (s *Server) listExecutions(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, false) {
		return
	}
	q := r.URL.Query()
	eq := engine.ExecutionQuery{Namespace: q.Get("namespace"), FlowID: q.Get("flowId")}
	if eq.Namespace != "" {
		if err := s.checkNamespace(eq.Namespace); err != nil {
			writeError(w, r, err)
			return
		}
	} else if eq.FlowID != "" {
		writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "flowId=%q needs a namespace: add ?namespace=.", kvflow.Clip(eq.FlowID)))
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Limit %q is out of range: expected a number from 1 to 1000.", kvflow.Clip(v)))
			return
		}
		eq.Limit = n
	}
	list, err := s.cfg.Repo.ListExecutions(r.Context(), eq)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := []*engine.Execution{}
	for _, ex := range list {
		if s.scope.Contains(ex.Namespace) {
			out = append(out, ex)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// killExecution stops a running execution (state KILLED) on whichever
// worker holds it: 202 with the execution as it is, 409 when it is over.
func (s *Server) killExecution(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, true) {
		return
	}
	id := r.PathValue("id")
	if _, err := s.execution(r.Context(), id); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.cfg.Engine.Kill(r.Context(), id); err != nil {
		writeError(w, r, err)
		return
	}
	ex, err := s.execution(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, ex)
}

// webhook starts an execution of a flow with a Webhook trigger whose key is
// in the path: trigger.body is the request body (parsed when it is JSON),
// trigger.headers and trigger.parameters the request's. A wrong key, a
// disabled trigger or a missing flow all answer the same 404.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	if !s.flowsReady(w, r, true) {
		return
	}
	ns, id, key := r.PathValue("namespace"), r.PathValue("flowId"), r.PathValue("key")
	notFound := kvflow.Errorf(kvflow.ENOTFOUND, "No webhook at this address.")
	if !s.scope.Contains(ns) {
		writeError(w, r, notFound)
		return
	}
	rec, err := s.cfg.Repo.GetFlow(r.Context(), ns, id)
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		writeError(w, r, notFound)
		return
	} else if err != nil {
		writeError(w, r, err)
		return
	}
	f, err := s.cfg.Engine.ParseStored(flowFile(ns, id), rec)
	if err != nil {
		writeError(w, r, notFound)
		return
	}
	f.Scope = rec.Scope // anonymous: the deployer's scope alone
	var trig *engine.Trigger
	for _, t := range f.Triggers {
		if spec, ok := t.Spec.(*engine.WebhookSpec); ok && !t.Disabled && subtle.ConstantTimeCompare([]byte(spec.Key), []byte(key)) == 1 {
			trig = t
		}
	}
	if trig == nil {
		writeError(w, r, notFound)
		return
	}
	body, err := s.readBody(w, r, "the webhook body")
	if err != nil {
		writeError(w, r, err)
		return
	}
	var parsed any // JSON parsed, else the text; nil when empty
	if len(body) > 0 {
		parsed = string(body)
		if v, err := storage.DecodeJSON(body); err == nil {
			parsed = v
		}
	}
	headers := map[string]any{}
	for k, vs := range r.Header {
		if strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "Cookie") {
			continue
		}
		list := make([]any, len(vs))
		for i, v := range vs {
			list[i] = v
		}
		headers[strings.ToLower(k)] = list
	}
	params := map[string]any{}
	for k, vs := range r.URL.Query() {
		list := make([]any, len(vs))
		for i, v := range vs {
			list[i] = v
		}
		params[k] = list
	}
	vars := map[string]any{"body": parsed, "headers": headers, "parameters": params}
	ex, err := s.cfg.Engine.StartTriggered(r.Context(), f, trig.Inputs, &kvflow.TriggerInfo{ID: trig.ID, Type: trig.Type, Variables: vars})
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.metrics.executionsStarted.WithLabelValues(ns).Inc()
	writeJSON(w, http.StatusOK, ex)
}
