package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/ui"
)

func init() { subcommands = append(subcommands, newServerCmd) }

func newServerCmd() *cobra.Command {
	var addr, flowsDir, token, tokenFile string
	var insecure bool
	var d durableFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the REST API, Prometheus metrics and the web UI",
		Long: `Serve the KV store's REST API (Kestra's routes under /api/v1), flows and
executions, /metrics, /healthz, /readyz and the web UI at /ui/, on the
configured database and object store. A background sweeper purges expired
entries. SIGINT or SIGTERM shuts down gracefully: requests in flight finish
and executions still running are marked KILLED.

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
				cfg.Server.Addr = addr
			}
			if flags.Changed("flows") {
				cfg.Server.Flows = flowsDir
			}
			if flags.Changed("token") {
				cfg.Server.Token = token
			}
			if flags.Changed("token-file") {
				cfg.Server.TokenFile = tokenFile
			}
			if flags.Changed("insecure") {
				cfg.Server.Insecure = insecure
			} else if v := os.Getenv("KVFLOW_INSECURE"); v != "" {
				if cfg.Server.Insecure, err = strconv.ParseBool(v); err != nil {
					return kvflow.Errorf(kvflow.EINVALID, "KVFLOW_INSECURE=%q is not a boolean.", v)
				}
			}
			tok, err := serverToken(cfg.Server.Token, cfg.Server.TokenFile)
			if err != nil {
				return err
			}
			if err := d.resolve(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			a, err := openApp(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			dur, err := openDurable(ctx, a, d, logger)
			if err != nil {
				return err
			}
			defer dur.close()
			eng := dur.eng
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
				Logger: logger, UI: ui.Handler(),
			})
			return srv.ListenAndServe(ctx, cfg.Server.Addr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (env KVFLOW_ADDR)")
	f.StringVar(&flowsDir, "flows", "", "directory of flow files (*.yaml, *.yml) stored at start (env KVFLOW_FLOWS)")
	f.StringVar(&token, "token", "", "API bearer token (env KVFLOW_API_TOKEN)")
	f.StringVar(&tokenFile, "token-file", "", "file holding the API bearer token (env KVFLOW_API_TOKEN_FILE)")
	f.BoolVar(&insecure, "insecure", false, "allow a non-loopback address without a token (env KVFLOW_INSECURE)")
	d.add(cmd, "; 0: API and UI only")
	return cmd
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
