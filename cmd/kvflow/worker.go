package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/app"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/riverqueue"
)

func init() { subcommands = append(subcommands, newWorkerCmd) }

// durableFlags are the flags of the processes that run executions from the
// queue: kvflow server and kvflow worker.
type durableFlags struct {
	workers   int
	heartbeat time.Duration
}

func (d *durableFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().IntVar(&d.workers, "workers", runtime.NumCPU(), "executions this process runs at once"+what+" (env KVFLOW_WORKERS)")
	cmd.Flags().DurationVar(&d.heartbeat, "heartbeat-timeout", 30*time.Second, "how long a silent worker keeps its executions before another takes them over (env KVFLOW_HEARTBEAT_TIMEOUT)")
}

// resolve applies the environment to flags not given.
func (d *durableFlags) resolve(cmd *cobra.Command) error {
	if v := os.Getenv("KVFLOW_WORKERS"); v != "" && !cmd.Flags().Changed("workers") {
		if err := cmd.Flags().Set("workers", v); err != nil {
			return kvflow.Errorf(kvflow.EINVALID, "KVFLOW_WORKERS=%q is not a number of workers.", v)
		}
	}
	if v := os.Getenv("KVFLOW_HEARTBEAT_TIMEOUT"); v != "" && !cmd.Flags().Changed("heartbeat-timeout") {
		if err := cmd.Flags().Set("heartbeat-timeout", v); err != nil {
			return kvflow.Errorf(kvflow.EINVALID, "KVFLOW_HEARTBEAT_TIMEOUT=%q is not a duration such as 30s.", v)
		}
	}
	if d.workers < 0 {
		return kvflow.Errorf(kvflow.EINVALID, "--workers %d: expected 0 (no executions) or more.", d.workers)
	}
	if d.heartbeat < time.Second {
		return kvflow.Errorf(kvflow.EINVALID, "--heartbeat-timeout %s: expected 1s or more.", d.heartbeat)
	}
	return nil
}

// durable is an engine whose executions go through the job queue.
type durable struct {
	eng      *engine.Engine
	queue    *riverqueue.Queue
	triggers *engine.Triggers
	log      *slog.Logger
	grace    time.Duration // how long close waits for running executions; 0: 30s
}

// openDurable opens the queue and the engine on it, and with workers
// starts running executions and the trigger loops.
func openDurable(ctx context.Context, a *app.App, d durableFlags, logger *slog.Logger) (*durable, error) {
	q, err := riverqueue.Open(ctx, a.DB, riverqueue.Config{Workers: d.workers, HeartbeatTimeout: d.heartbeat, Logger: logger})
	if err != nil {
		return nil, err
	}
	eng := engine.New(engine.Options{
		Store: a.Store, Bucket: a.Bucket, Repo: a.DB, Policy: a.Config.Policy(), HTTPClient: a.Config.HTTPClient(),
		Queue: q, HeartbeatTimeout: d.heartbeat, Logger: logger, RunHere: d.workers,
	})
	out := &durable{eng: eng, queue: q, log: logger}
	if d.workers > 0 {
		if err := q.Start(ctx, eng); err != nil {
			q.Close()
			return nil, err
		}
		out.triggers = engine.StartTriggers(eng, a.DB, logger)
	}
	return out, nil
}

// close stops the triggers, then the queue once running executions ended
// or were handed over by the engine's shutdown; those are queued again at
// once, for another worker (or this one's next start) to take over.
func (d *durable) close() {
	if d.triggers != nil {
		d.triggers.Stop()
	}
	grace := d.grace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	d.eng.Shutdown(ctx)
	if _, err := d.queue.Reap(context.Background(), time.Now().Add(-d.eng.HeartbeatTimeout())); err != nil {
		d.log.Warn("queue: cannot queue the handed-over executions again; other workers take them over after the heartbeat timeout", "err", err)
	}
	d.queue.Close()
}

func newWorkerCmd() *cobra.Command {
	var d durableFlags
	var metricsAddr string
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run executions from the queue (no HTTP API)",
		Long: `Run executions that any kvflow server created, from the job queue in the
configured database, on the configured object store. Start any number of
workers, on any machine that reaches the same PostgreSQL and object store:
each execution runs on one worker at a time. A worker that stops
heartbeating (kill -9, machine loss) has its executions taken over by
another after --heartbeat-timeout: finished task runs are kept, the
interrupted task runs again (a new attempt). Schedules and flow triggers run
in every worker and fire once however many run. SIGINT or SIGTERM stops it:
executions still running after --shutdown-timeout (30 s) are handed over
(progress saved, queued again) to another worker, or to this one's next
start. --metrics-addr
serves /metrics: this worker's running executions, trigger fires and
takeovers, and the queue's depth.`,
		Example: `  kvflow worker --workers 8
  kvflow worker --metrics-addr 127.0.0.1:9100
  KVFLOW_DATABASE_URL=postgres://… KVFLOW_STORAGE_URL=s3://… kvflow worker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := d.resolve(cmd); err != nil {
				return err
			}
			if d.workers == 0 {
				return kvflow.Errorf(kvflow.EINVALID, "--workers 0: a worker needs at least one.")
			}
			if grace <= 0 {
				return kvflow.Errorf(kvflow.EINVALID, "--shutdown-timeout %s: expected a positive duration such as 30s.", grace)
			}
			logger, err := newLogger(cmd, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			a, err := openApp(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			logStarting(logger, a.Config)
			ctx := cmd.Context()
			dur, err := openDurable(ctx, a, d, logger)
			if err != nil {
				return err
			}
			dur.grace = grace
			if metricsAddr != "" {
				l, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					dur.close()
					return kvflow.Errorf(kvflow.EINVALID, "--metrics-addr %s: %v", metricsAddr, err)
				}
				mux := http.NewServeMux()
				mux.Handle("GET /metrics", api.WorkerMetrics(dur.eng, dur.queue))
				srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				go srv.Serve(l)
				defer srv.Close()
				logger.Info("worker metrics", "url", "http://"+l.Addr().String()+"/metrics")
			}
			logger.Info("worker started", "worker", dur.eng.Worker(), "workers", d.workers, "heartbeat_timeout", d.heartbeat)
			<-ctx.Done()
			dur.close()
			logger.Info("worker stopped", "worker", dur.eng.Worker())
			return nil
		},
	}
	d.add(cmd, "")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics at this address (host:port); none by default")
	cmd.Flags().DurationVar(&grace, "shutdown-timeout", 30*time.Second, "how long a stopping worker waits for its executions before handing them over")
	return cmd
}
