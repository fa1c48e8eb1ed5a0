package api

import (
	"context"
	"net/http"

	"github.com/kvflow/kvflow"
)

// Flows is the engine side of the API.
type Flows interface {
	FlowCounts(ctx context.Context) (map[string]int, error)
	Shutdown(ctx context.Context) error
}

func (s *Server) noEngine(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, kvflow.Errorf(kvflow.EUNAVAILABLE, "This server runs no flow engine."))
}

func (s *Server) createFlow(w http.ResponseWriter, r *http.Request)     { s.noEngine(w, r) }
func (s *Server) listFlows(w http.ResponseWriter, r *http.Request)      { s.noEngine(w, r) }
func (s *Server) getFlow(w http.ResponseWriter, r *http.Request)        { s.noEngine(w, r) }
func (s *Server) updateFlow(w http.ResponseWriter, r *http.Request)     { s.noEngine(w, r) }
func (s *Server) deleteFlow(w http.ResponseWriter, r *http.Request)     { s.noEngine(w, r) }
func (s *Server) execute(w http.ResponseWriter, r *http.Request)        { s.noEngine(w, r) }
func (s *Server) listExecutions(w http.ResponseWriter, r *http.Request) { s.noEngine(w, r) }
func (s *Server) getExecution(w http.ResponseWriter, r *http.Request)   { s.noEngine(w, r) }
func (s *Server) executionLogs(w http.ResponseWriter, r *http.Request)  { s.noEngine(w, r) }

// FieldError is one problem of an invalid flow.
type FieldError struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func fieldErrors(err error) []FieldError { return nil }
