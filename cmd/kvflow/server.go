package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/app"
	"github.com/kvflow/kvflow/config"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/ui"
)

func init() { subcommands = append(subcommands, newServerCmd) }

func newServerCmd() *cobra.Command {
	var addr, flowsDir, token, tokenFile string
	var insecure bool
	var shutdownTimeout time.Duration
	var d durableFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the REST API, Prometheus metrics and the web UI",
		Long: `Serve the KV store's REST API (Kestra's routes under /api/v1), flows and
executions, /metrics, /healthz, /readyz and the web UI at /ui/, on the
configured database and object store. A background sweeper purges expired
entries. SIGINT (Ctrl-C) or SIGTERM shuts down gracefully: requests in
flight finish and executions still running get half of --shutdown-timeout,
then are handed over (progress saved, queued again) to another worker or to
the next start, as a worker's are; a second Ctrl-C stops at once.

With a token (--token, --token-file, KVFLOW_API_TOKEN or server.token) every
API call needs "Authorization: Bearer <token>". Without one the server only
listens on a loopback address, unless --insecure is given.`,
		Example: `  kvflow server
  kvflow server --addr 0.0.0.0:8080 --token-file /run/secrets/kvflow --flows ./flows`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			flags := cmd.Flags()
			if flags.Changed("addr") {
				if err := config.CheckAddr(addr); err != nil {
					return kvflow.Errorf(kvflow.EINVALID, "--addr %v.", err)
				}
				cfg.Server.Addr = addr
			}
			if flags.Changed("flows") {
				cfg.Server.Flows = flowsDir
			}
			// Either flag replaces the configured token and token file.
			if flags.Changed("token") && flags.Changed("token-file") {
				return kvflow.Errorf(kvflow.EINVALID, "Set --token or --token-file, not both.")
			}
			if flags.Changed("token") {
				cfg.Server.Token, cfg.Server.TokenFile = token, ""
			}
			if flags.Changed("token-file") {
				cfg.Server.Token, cfg.Server.TokenFile = "", tokenFile
			}
			if flags.Changed("insecure") {
				cfg.Server.Insecure = insecure
			}
			if flags.Changed("shutdown-timeout") {
				if shutdownTimeout <= 0 {
					return kvflow.Errorf(kvflow.EINVALID, "--shutdown-timeout %s must be positive.", shutdownTimeout)
				}
				cfg.Server.ShutdownTimeout = shutdownTimeout
			}
			logger, err := newLogger(cmd, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			tok, err := serverToken(cfg.Server.Token, cfg.Server.TokenFile)
			if err != nil {
				return err
			}
			if err := d.resolve(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			a, err := app.Open(ctx, cfg)
			if err != nil {
				return err
			}
			defer a.Close()
			logStarting(logger, cfg)
			dur, err := openDurable(ctx, a, d, logger)
			if err != nil {
				return err
			}
			defer dur.close()
			eng := dur.eng
			if d.workers > 0 {
				logger.Info("executions run here too", "worker", eng.Worker(), "workers", d.workers, "heartbeat_timeout", d.heartbeat)
			}
			if cfg.Server.Flows != "" {
				n, changed, err := loadFlowDir(ctx, cfg.Server.Flows, a.DB, eng.Registry())
				if err != nil {
					return err
				}
				logger.Info("flows loaded", "dir", cfg.Server.Flows, "flows", n, "new_or_changed", changed)
			}
			srv := api.New(api.Config{
				Store: a.Store, DB: a.DB, Engine: eng, Queue: dur.queue,
				Token: tok, Insecure: cfg.Server.Insecure, Namespaces: cfg.Server.Namespaces,
				MaxBodyBytes: cfg.Server.MaxBodyBytes, SweepInterval: cfg.Server.SweepInterval, SweepBatch: cfg.Server.SweepBatch,
				ShutdownTimeout: cfg.Server.ShutdownTimeout, History: cfg.History.Policy(),
				Logger: logger, UI: ui.Handler(),
			})
			l, err := net.Listen("tcp", cfg.Server.Addr)
			if err != nil {
				return kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot listen on %s: %v.", cfg.Server.Addr, err)
			}
			base := "http://" + l.Addr().String()
			auth := "on (bearer token)"
			if tok == "" {
				auth = "off (loopback only)"
				if cfg.Server.Insecure {
					auth = "off (--insecure: anyone who can connect)"
				}
			}
			stopping := make(chan struct{})
			defer close(stopping)
			go func() {
				// Said once the server answers, so a refused start says nothing.
				for {
					if resp, err := http.Get(base + "/healthz"); err == nil {
						resp.Body.Close()
						logger.Info("web UI at "+base+"/ui/", "api", base+"/api/v1", "auth", auth)
						break
					}
					select {
					case <-stopping:
						return
					case <-ctx.Done():
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}()
			go func() {
				select {
				case <-ctx.Done():
					logger.Info("shutting down; Ctrl-C again stops at once", "executions", eng.Running(),
						"executions_wait", (cfg.Server.ShutdownTimeout / 2).String(), "requests_wait", cfg.Server.ShutdownTimeout.String())
				case <-stopping:
				}
			}()
			serverHandlesSecondSignal.Store(true)
			stopOnSecondSignal(logger, stopping)
			return srv.Serve(ctx, l)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (env KVFLOW_ADDR)")
	f.StringVar(&flowsDir, "flows", "", "directory of flow files (*.yaml, *.yml) stored at start (env KVFLOW_FLOWS)")
	f.StringVar(&token, "token", "", "API bearer token (env KVFLOW_API_TOKEN)")
	f.StringVar(&tokenFile, "token-file", "", "file holding the API bearer token (env KVFLOW_API_TOKEN_FILE)")
	f.BoolVar(&insecure, "insecure", false, "allow a non-loopback address without a token (env KVFLOW_INSECURE)")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a stopping server waits for requests and executions (server.shutdownTimeout)")
	d.add(cmd, "; 0: API and UI only")
	return cmd
}

// logStarting says, as server and worker start, where their data is:
// URLs redacted, the secret key by its source.
func logStarting(logger *slog.Logger, cfg config.Config) {
	logger.Info("kvflow "+versionString()+" starting", "data_dir", cfg.DataDir,
		"database", config.RedactURL(cfg.DatabaseURL), "storage", config.RedactURL(cfg.StorageURL), "secret_key", cfg.KeySource())
}

// exitNow ends the process; a variable for tests.
var exitNow = os.Exit

// stopOnSecondSignal exits at once when SIGINT or SIGTERM comes a second
// time (the first one cancelled the command's context) before stopping is
// closed.
func stopOnSecondSignal(logger *slog.Logger, stopping <-chan struct{}) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		defer signal.Stop(ch)
		for n := 0; ; {
			select {
			case <-ch:
				if n++; n == 2 {
					logger.Warn("second interrupt: stopping now, without waiting")
					exitNow(130)
				}
			case <-stopping:
				return
			}
		}
	}()
}

// serverToken is the token, or the trimmed content of the token file.
func serverToken(token, file string) (string, error) {
	if token != "" || file == "" {
		return strings.TrimSpace(token), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", kvflow.Errorf(kvflow.EINVALID, "Cannot read the API token file: %v.", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", kvflow.Errorf(kvflow.EINVALID, "The API token file %s is empty.", file)
	}
	return tok, nil
}

// loadFlowDir parses every *.yaml and *.yml file under dir and stores the
// flows that are new or whose source changed. Every problem of every file
// is reported at once and then nothing is stored.
func loadFlowDir(ctx context.Context, dir string, repo engine.Repository, reg *plugin.Registry) (total, changed int, err error) {
	var files []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return 0, 0, kvflow.Errorf(kvflow.EINVALID, "Cannot read the flows directory: %v.", err)
	}
	sort.Strings(files)
	var flows []*engine.Flow
	var problems engine.ValidationErrors
	seen := map[string]string{}
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, engine.ValidationError{File: path, Message: err.Error()})
			continue
		}
		f, err := engine.Parse(path, src, reg)
		var ve engine.ValidationErrors
		switch {
		case errors.As(err, &ve):
			problems = append(problems, ve...)
			continue
		case err != nil:
			return 0, 0, err
		}
		key := f.Namespace + "/" + f.ID
		if first, dup := seen[key]; dup {
			problems = append(problems, engine.ValidationError{File: path, Field: "id", Message: "flow " + key + " is also defined in " + first})
			continue
		}
		seen[key] = path
		flows = append(flows, f)
	}
	if len(problems) > 0 {
		return 0, 0, problems
	}
	for _, f := range flows {
		old, err := repo.GetFlow(ctx, f.Namespace, f.ID)
		if err == nil && old.Source == f.Source {
			continue
		} else if err != nil && kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
			return 0, 0, err
		}
		if _, err := repo.SaveFlow(ctx, f.Record()); err != nil {
			return 0, 0, err
		}
		changed++
	}
	return len(flows), changed, nil
}
