package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/storage"
)

// metrics are the server's Prometheus collectors, in a registry of its own so
// several servers can live in one process (tests).
type metrics struct {
	reg *prometheus.Registry

	retrieved *prometheus.CounterVec // namespace
	updated   *prometheus.CounterVec // namespace
	deleted   *prometheus.CounterVec // namespace
	purged    *prometheus.CounterVec // namespace

	operation *prometheus.HistogramVec // operation: kv_get, kv_set, …
	request   *prometheus.HistogramVec // route, method, code

	executionsStarted  *prometheus.CounterVec // namespace
	executionsFinished *prometheus.CounterVec // namespace, state

	handler http.Handler
}

// latencyBuckets go from 0.25 ms to about 8 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.00025, 2, 16)

// newMetrics makes a server's metrics; /metrics shows only the series of
// namespaces in scope, as the rest of the API does.
func newMetrics(scope storage.Scope) *metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		reg:       prometheus.NewRegistry(),
		retrieved: counter("kvflow_kv_keys_retrieved_total", "KV values read through the API.", "namespace"),
		updated:   counter("kvflow_kv_keys_updated_total", "KV values written through the API.", "namespace"),
		deleted:   counter("kvflow_kv_keys_deleted_total", "KV entries deleted through the API.", "namespace"),
		purged:    counter("kvflow_kv_keys_expired_purged_total", "KV entries removed by the expired-entry sweeper and purge calls.", "namespace"),
		operation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kvflow_kv_operation_duration_seconds", Help: "Time spent in KV store operations, by operation.", Buckets: latencyBuckets,
		}, []string{"operation"}),
		request: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kvflow_http_request_duration_seconds", Help: "HTTP request latency, by route pattern, method and status code.", Buckets: latencyBuckets,
		}, []string{"route", "method", "code"}),
		executionsStarted:  counter("kvflow_executions_started_total", "Executions started through the API.", "namespace"),
		executionsFinished: counter("kvflow_executions_finished_total", "Executions this process ran that ended, by final state.", "namespace", "state"),
	}
	m.reg.MustRegister(m.retrieved, m.updated, m.deleted, m.purged, m.operation, m.request,
		m.executionsStarted, m.executionsFinished,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var g prometheus.Gatherer = m.reg
	if !scope.Unrestricted() {
		g = inScope{m.reg, scope}
	}
	m.handler = promhttp.HandlerFor(g, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

// inScope gathers the series whose namespace label, if any, is in scope.
type inScope struct {
	g     prometheus.Gatherer
	scope storage.Scope
}

func (s inScope) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := s.g.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		kept := mf.Metric[:0]
		for _, m := range mf.Metric {
			if ns := labelValue(m, "namespace"); ns == "" || s.scope.Contains(ns) {
				kept = append(kept, m)
			}
		}
		if mf.Metric = kept; len(kept) > 0 {
			out = append(out, mf)
		}
	}
	return out, err
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (m *metrics) serve(w http.ResponseWriter, r *http.Request) { m.handler.ServeHTTP(w, r) }

// QueueStats is what the job queue tells /metrics (riverqueue.Queue).
type QueueStats interface {
	// Depth counts executions waiting for a worker and running, in every process.
	Depth(ctx context.Context) (waiting, running int, err error)
	// Takeovers counts executions this process queued again for takeover.
	Takeovers() int64
}

// durable registers the metrics of durable executions: queue depth,
// executions running here, trigger fires and takeovers.
func (m *metrics) durable(eng *engine.Engine, q QueueStats) {
	if eng != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kvflow_worker_executions_running", Help: "Executions this process runs now.",
				ConstLabels: prometheus.Labels{"worker": eng.Worker()}},
				func() float64 { return float64(eng.Running()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kvflow_trigger_fires_total", Help: "Executions created by triggers (schedule, flow, webhook) through this process."},
				func() float64 { return float64(eng.TriggerFires()) }))
	}
	if q == nil {
		return
	}
	depth := func(running bool) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			w, r, err := q.Depth(ctx)
			if err != nil {
				return -1
			} else if running {
				return float64(r)
			}
			return float64(w)
		}
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kvflow_queue_depth", Help: "Executions waiting for a worker, in every process (-1: the database did not answer)."}, depth(false)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kvflow_executions_running", Help: "Executions running on any worker (-1: the database did not answer)."}, depth(true)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kvflow_takeovers_total", Help: "Executions of silent workers this process queued again for takeover."},
			func() float64 { return float64(q.Takeovers()) }))
}

// deadlocks registers the count of transactions the database broke as a
// deadlock's victim (each was run again): it should stay at 0.
func (m *metrics) deadlocks(count func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kvflow_db_deadlocks_total",
		Help: "Transactions the database broke as a deadlock's victim since this process started; each was run again."},
		func() float64 { return float64(count()) }))
}

// WorkerMetrics serves /metrics for a process without the API (kvflow
// worker): its running executions, trigger fires and takeovers, the
// queue's depth and the Go runtime's figures.
func WorkerMetrics(eng *engine.Engine, q QueueStats) http.Handler {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.durable(eng, q)
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observe records how long an operation took since start.
func (m *metrics) observe(op string, start time.Time) {
	m.operation.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// instrument records the latency of requests to one route.
func (s *Server) instrument(pattern string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		status := http.StatusOK
		if lw, ok := w.(*logWriter); ok && lw.status != 0 {
			status = lw.status
		}
		s.metrics.request.WithLabelValues(pattern, r.Method, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
	})
}
