// Package api is kvflow's REST API: the KV store (Kestra's routes), namespaces,
// flows and executions, health checks and Prometheus metrics, served by
// Server; and Client, the Go HTTP client the CLI and the Terraform provider use.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/storage"
)

// DefaultMaxBodyBytes bounds a request body unless Config.MaxBodyBytes says otherwise.
const DefaultMaxBodyBytes = 8 << 20

// Config holds what a Server serves and how.
type Config struct {
	Store *storage.Store // required
	DB    Namespaces     // required: namespaces created through the API

	// Engine runs flows; nil: the flow and execution routes answer 503.
	// Its Policy (config.Config.Policy) governs what flows may reach,
	// within the Namespaces of whoever deployed or started them.
	Engine *engine.Engine
	// Repo stores flows and executions; nil: DB when it is one.
	Repo engine.Repository
	// Queue, when set, adds the job queue's figures to /metrics.
	Queue QueueStats

	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every route except /healthz, /readyz and /ui/.
	Token string
	// Insecure allows serving a non-loopback address without a token.
	Insecure bool
	// Namespaces limits the namespaces API callers may reach, as patterns
	// "a.b", "a.b.*" (a.b and below) or "*"; empty means all. Others get 403.
	// Flows deployed and executions started through the API keep this
	// scope: their tasks and kv() cannot reach further (storage.Scope).
	Namespaces []string

	MaxBodyBytes    int64                 // request body limit; 0: DefaultMaxBodyBytes
	SweepInterval   time.Duration         // expired-entry purge period; 0: 1m; <0: no sweeper
	SweepBatch      int                   // entries per purge transaction; 0: 1000
	ShutdownTimeout time.Duration         // how long in-flight requests may take to finish; 0: 30s
	History         storage.HistoryPolicy // retention of KV versions and changes, applied by the sweeper

	Logger *slog.Logger
	UI     http.Handler // served at /ui/ when set, with / redirecting there
}

// Namespaces records the namespaces created through the API (storage/sqldb).
type Namespaces interface {
	CreateNamespace(ctx context.Context, ns string, now time.Time) error
	CreatedNamespaces(ctx context.Context) ([]string, error)
}

// Server serves the API. Create it with New.
type Server struct {
	cfg     Config
	scope   storage.Scope // what callers, and the flows they deploy or start, may reach
	log     *slog.Logger
	metrics *metrics
	handler http.Handler
	routes  []route

	sweepMu sync.Mutex // one sweep at a time

	stopping    context.Context // done when the server shuts down: ends watches
	stopWatches context.CancelFunc
	feeds       feedHub // wakes watches for other processes' changes
}

// route is one registered method and path pattern.
type route struct {
	Method  string
	Pattern string // Go 1.22 ServeMux path pattern
	Public  bool   // served without the token
	handler http.HandlerFunc
}

// New returns a server for cfg; it does not listen until Serve.
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = time.Minute
	}
	if cfg.SweepBatch <= 0 {
		cfg.SweepBatch = 1000
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if repo, ok := cfg.DB.(engine.Repository); ok && cfg.Repo == nil {
		cfg.Repo = repo
	}
	scope := storage.NewScope(cfg.Namespaces...)
	s := &Server{cfg: cfg, scope: scope, log: cfg.Logger, metrics: newMetrics(scope)}
	s.stopping, s.stopWatches = context.WithCancel(context.Background())
	s.feeds.store = cfg.Store
	s.metrics.durable(cfg.Engine, cfg.Queue)
	if d, ok := cfg.DB.(interface{ Deadlocks() int64 }); ok {
		s.metrics.deadlocks(d.Deadlocks)
	}
	if cfg.Engine != nil {
		// Count the ends of the executions this process runs.
		cfg.Engine.OnEnd(func(ex *engine.Execution) {
			s.metrics.executionsFinished.WithLabelValues(ex.Namespace, string(ex.State)).Inc()
		})
	}
	s.routes = s.routeTable()
	mux := http.NewServeMux()
	for _, r := range s.routes {
		h := http.Handler(r.handler)
		if !r.Public {
			h = s.authenticate(h)
		}
		mux.Handle(r.Method+" "+r.Pattern, s.instrument(r.Pattern, h))
	}
	if cfg.UI != nil {
		mux.Handle("/ui/", cfg.UI)
		mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}
	// Other /api requests answer in JSON like the rest of the API: 405 with
	// the allowed methods when the path is a route's, else 404.
	allowed := map[string][]string{}
	paths := http.NewServeMux()
	for _, r := range s.routes {
		if allowed[r.Pattern] == nil {
			pattern := r.Pattern
			paths.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Allow", strings.Join(allowed[pattern], ", "))
				writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Message: fmt.Sprintf("Method %s is not allowed on %s: use %s.", r.Method, r.URL.Path, strings.Join(allowed[pattern], ", "))})
			})
		}
		allowed[r.Pattern] = append(allowed[r.Pattern], r.Method)
	}
	mux.Handle("/api/", s.authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, pattern := paths.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
		writeError(w, r, kvflow.Errorf(kvflow.ENOTFOUND, "No API route %s %s.", r.Method, r.URL.Path))
	})))
	s.handler = s.logRequests(s.checkPath(paths, withWriter(mux)))
	return s
}

// checkPath answers 422 JSON, before the ServeMux sees them, for API paths
// and query parameters no route can take: text that is not UTF-8 or holds a
// NUL byte (the databases refuse both), and "." or ".." segments, which
// ServeMux would otherwise redirect to a cleaned path with a non-JSON 307.
// The error names the path parameter (key, namespace, id) or query parameter.
func (s *Server) checkPath(paths *http.ServeMux, next http.Handler) http.Handler {
	bad := func(t string) bool { return !utf8.ValidString(t) || strings.IndexByte(t, 0) >= 0 }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		segs := strings.Split(r.URL.Path, "/")
		for i, seg := range segs {
			dots := seg == "." || seg == ".."
			empty := seg == "" && i > 0 && i < len(segs)-1 // net/http would redirect //
			if !dots && !empty && !bad(seg) {
				continue
			}
			field := pathField(paths, r, segs, i)
			if empty {
				writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Path parameter '%s' is empty (the path has //): expected a namespace, key or id.", field))
			} else if dots {
				writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Path parameter '%s' cannot be %q: keys, namespaces and ids start with a letter or a digit.", field, seg))
			} else {
				writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Path parameter '%s' is not valid UTF-8 text or contains a NUL byte.", field))
			}
			return
		}
		for name, vals := range r.URL.Query() {
			for _, v := range vals {
				if bad(name) || bad(v) {
					writeError(w, r, kvflow.Errorf(kvflow.EINVALID, "Query parameter '%s' is not valid UTF-8 text or contains a NUL byte.", strings.ToValidUTF8(strings.ReplaceAll(name, "\x00", ""), "?")))
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// pathField names the route parameter at segment i of a path, such as "key"
// for /api/v1/namespaces/ns/kv/.., by matching the path with a placeholder
// there; "path" when no route matches.
func pathField(paths *http.ServeMux, r *http.Request, segs []string, i int) string {
	probe := append([]string(nil), segs...)
	probe[i] = "x"
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = strings.Join(probe, "/"), ""
	if _, pattern := paths.Handler(r2); pattern != "" {
		if ps := strings.Split(pattern, "/"); i < len(ps) && strings.HasPrefix(ps[i], "{") {
			return strings.Trim(ps[i], "{}.$")
		}
	}
	return "path"
}

// routeTable lists every route; the OpenAPI test checks the document against it.
func (s *Server) routeTable() []route {
	return []route{
		{Method: "GET", Pattern: "/healthz", Public: true, handler: s.healthz},
		{Method: "GET", Pattern: "/readyz", Public: true, handler: s.readyz},
		{Method: "GET", Pattern: "/metrics", handler: s.metrics.serve},
		{Method: "GET", Pattern: "/api/v1/openapi.json", handler: serveOpenAPI},

		{Method: "GET", Pattern: "/api/v1/namespaces", handler: s.listNamespaces},
		{Method: "POST", Pattern: "/api/v1/namespaces", handler: s.createNamespace},

		{Method: "GET", Pattern: "/api/v1/namespaces/{namespace}/kv", handler: s.listKV},
		{Method: "DELETE", Pattern: "/api/v1/namespaces/{namespace}/kv", handler: s.bulkDeleteKV},
		{Method: "PUT", Pattern: "/api/v1/namespaces/{namespace}/kv", handler: s.setManyKV},
		{Method: "GET", Pattern: "/api/v1/namespaces/{namespace}/kv/export", handler: s.exportKV},
		{Method: "POST", Pattern: "/api/v1/namespaces/{namespace}/kv/import", handler: s.importKV},
		{Method: "GET", Pattern: "/api/v1/namespaces/{namespace}/kv/inheritance", handler: s.inheritedKV},
		{Method: "GET", Pattern: "/api/v1/namespaces/{namespace}/kv/changes", handler: s.changesKV},
		{Method: "GET", Pattern: "/api/v1/namespaces/{namespace}/kv/watch", handler: s.watchKV},
		{Method: "GET", Pattern: "/api/v1/namespaces/{namespace}/kv/{key}/versions", handler: s.versionsKV},
		{Method: "POST", Pattern: "/api/v1/namespaces/{namespace}/kv/{key}/restore", handler: s.restoreKV},
		{Method: "GET", Pattern: "/api/v1/namespaces/{namespace}/kv/{key}", handler: s.getKV},
		{Method: "GET", Pattern: "/api/v1/namespaces/{namespace}/kv/{key}/detail", handler: s.detailKV},
		{Method: "PUT", Pattern: "/api/v1/namespaces/{namespace}/kv/{key}", handler: s.putKV},
		{Method: "DELETE", Pattern: "/api/v1/namespaces/{namespace}/kv/{key}", handler: s.deleteKV},
		{Method: "POST", Pattern: "/api/v1/namespaces/{namespace}/kv/{key}/increment", handler: s.incrementKV},
		{Method: "POST", Pattern: "/api/v1/kv/purge", handler: s.purgeKV},
		{Method: "GET", Pattern: "/api/v1/kv", handler: s.listAllKV},
		{Method: "PATCH", Pattern: "/api/v1/namespaces/{namespace}/kv/{key}", handler: s.patchKV},

		{Method: "POST", Pattern: "/api/v1/flows", handler: s.createFlow},
		{Method: "GET", Pattern: "/api/v1/flows", handler: s.listFlows},
		{Method: "GET", Pattern: "/api/v1/flows/{namespace}/{id}", handler: s.getFlow},
		{Method: "PUT", Pattern: "/api/v1/flows/{namespace}/{id}", handler: s.updateFlow},
		{Method: "DELETE", Pattern: "/api/v1/flows/{namespace}/{id}", handler: s.deleteFlow},
		{Method: "POST", Pattern: "/api/v1/executions/{namespace}/{flowId}", handler: s.execute},
		{Method: "GET", Pattern: "/api/v1/executions", handler: s.listExecutions},
		{Method: "GET", Pattern: "/api/v1/executions/{id}", handler: s.getExecution},
		{Method: "GET", Pattern: "/api/v1/executions/{id}/logs", handler: s.executionLogs},
		{Method: "DELETE", Pattern: "/api/v1/executions/{id}/kill", handler: s.killExecution},
		// The webhook's key is its secret: no token.
		{Method: "POST", Pattern: "/api/v1/executions/webhook/{namespace}/{flowId}/{key}", Public: true, handler: s.webhook},
		{Method: "GET", Pattern: "/api/v1/executions/webhook/{namespace}/{flowId}/{key}", Public: true, handler: s.webhook},
	}
}

// Handler returns the HTTP handler with every route, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on addr and serves until ctx ends; see Serve. Without
// a token it refuses a non-loopback addr unless Insecure is set.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if err := s.checkExposure(addr); err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot listen on %s: %v.", addr, err)
	}
	return s.Serve(ctx, l)
}

// Serve serves on l until ctx ends, running the expired-entry sweeper
// meanwhile. Then it stops accepting connections, lets in-flight requests
// finish (up to ShutdownTimeout) and shuts the engine down, which marks the
// executions still running. It closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if err := s.checkExposure(l.Addr().String()); err != nil {
		l.Close()
		return err
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// Requests keep their own context so a shutdown lets them finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	srv.RegisterOnShutdown(s.stopWatches)
	sweepCtx, stopSweep := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if s.cfg.SweepInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.sweepLoop(sweepCtx)
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	s.log.Info("kvflow server listening", "addr", l.Addr().String(), "auth", s.cfg.Token != "")

	var err error
	select {
	case err = <-errc:
		stopSweep()
		wg.Wait()
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Server stopped: %v.", err)
	case <-ctx.Done():
	}
	stopSweep()
	s.log.Info("kvflow server shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	// The engine shuts down beside the HTTP server, killing (and marking)
	// executions still running after half the timeout, so requests waiting
	// for one can still answer.
	var engErr error
	if s.cfg.Engine != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ectx, cancel := context.WithTimeout(sctx, s.cfg.ShutdownTimeout/2)
			defer cancel()
			engErr = s.cfg.Engine.Shutdown(ectx)
		}()
	}
	err = srv.Shutdown(sctx)
	wg.Wait()
	<-errc
	if err != nil {
		srv.Close()
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Requests were still running after %s: %v.", s.cfg.ShutdownTimeout, err)
	}
	return engErr
}

// checkExposure refuses a non-loopback address without a token unless Insecure.
func (s *Server) checkExposure(addr string) error {
	if s.cfg.Token != "" || s.cfg.Insecure || isLoopback(addr) {
		return nil
	}
	return kvflow.Errorf(kvflow.EFORBIDDEN, "Refusing to serve on %s without an API token: set KVFLOW_API_TOKEN (or --token, or a token file), listen on 127.0.0.1, or pass --insecure.", addr)
}

// isLoopback reports whether every address addr's host names is a loopback one.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if host == "" {
		return false // all interfaces
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// authenticate requires the bearer token when one is configured.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := sha256.Sum256([]byte(s.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			tok, ok = strings.CutPrefix(auth, "bearer ")
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kvflow"`)
			if auth == "" {
				writeError(w, r, kvflow.Errorf(kvflow.EUNAUTHORIZED, "This server requires an API token: send the header \"Authorization: Bearer <token>\"."))
			} else {
				writeError(w, r, kvflow.Errorf(kvflow.EUNAUTHORIZED, "The API token is wrong: send the header \"Authorization: Bearer <token>\" with the server's token."))
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkNamespace validates ns and checks API callers may reach it.
func (s *Server) checkNamespace(ns string) error {
	if err := storage.ValidateNamespace(ns); err != nil {
		return err
	}
	if !s.scope.Contains(ns) {
		return kvflow.Errorf(kvflow.EFORBIDDEN, "Access to namespace '%s' is not allowed through the API: the server allows only %s.", ns, s.scope)
	}
	return nil
}

// statusOf is the only map from error codes to HTTP statuses.
func statusOf(code string) int {
	switch code {
	case kvflow.EINVALID:
		return http.StatusUnprocessableEntity // as Kestra answers a bad key
	case kvflow.ENOTFOUND:
		return http.StatusNotFound
	case kvflow.EEXPIRED:
		return http.StatusGone
	case kvflow.ECONFLICT:
		return http.StatusConflict
	case kvflow.EPRECONDITION:
		return http.StatusPreconditionFailed
	case kvflow.EFORBIDDEN:
		return http.StatusForbidden
	case kvflow.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case kvflow.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case kvflow.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case kvflow.ETIMEOUT:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// writeError answers err with its status and message. Internal errors are
// logged and answered with a generic message.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := kvflow.ErrorCode(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		code = kvflow.EUNAVAILABLE
		err = kvflow.Errorf(code, "The request was cancelled or timed out.")
	}
	status := statusOf(code)
	msg := kvflow.ErrorMessage(err)
	if status >= 500 {
		if lw, ok := w.(*logWriter); ok {
			lw.err = err
		}
	}
	writeJSON(w, status, ErrorBody{Message: msg, Errors: fieldErrors(err)})
}

// writeJSON writes v compactly, without HTML escaping and without a trailing newline.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"message":"Internal error."}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// logWriter records the status and size of a response for the request log.
type logWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    error // an internal error behind a 5xx, for the log
}

func (lw *logWriter) WriteHeader(status int) {
	if lw.status == 0 {
		lw.status = status
	}
	lw.ResponseWriter.WriteHeader(status)
}

func (lw *logWriter) Write(b []byte) (int, error) {
	if lw.status == 0 {
		lw.status = http.StatusOK
	}
	n, err := lw.ResponseWriter.Write(b)
	lw.bytes += int64(n)
	return n, err
}

func (lw *logWriter) Unwrap() http.ResponseWriter { return lw.ResponseWriter }

func (lw *logWriter) Flush() {
	if f, ok := lw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// logRequests logs one line per request: method, path, status, duration and
// size. Bodies, query strings and headers are never logged, so no value is.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &logWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				if lw.status == 0 {
					writeError(lw, r, kvflow.Errorf(kvflow.EINTERNAL, "Internal error."))
				}
			}
			if lw.status == 0 {
				lw.status = http.StatusOK
			}
			level := slog.LevelInfo
			attrs := []any{"method", r.Method, "path", r.URL.Path, "status", lw.status,
				"duration", time.Since(start), "bytes", lw.bytes}
			if lw.err != nil {
				level = slog.LevelError
				attrs = append(attrs, "err", lw.err.Error())
			}
			s.log.Log(r.Context(), level, "request", attrs...)
		}()
		next.ServeHTTP(lw, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz checks the database and the object store.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
