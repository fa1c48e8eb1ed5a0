package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/app"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/config"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/template"
)

func init() { subcommands = append(subcommands, newRunCmd) }

func newRunCmd() *cobra.Command {
	var inputs []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run FLOW.yaml",
		Short: "Run a flow file: its logs as they happen, then its state and outputs",
		Long: `Run a flow file once, on the configured database and object store (by
default the embedded SQLite + local directory). Task logs are printed as they
happen; at the end come the execution's state and outputs. The exit code is 0
for SUCCESS and WARNING, 1 when the execution fails, 2 for a flow or inputs
that do not validate.`,
		Example: `  kvflow run examples/kv_json_flow.yaml
  kvflow run flow.yaml --input count=3 --input name=world --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			given, err := parseInputs(inputs)
			if err != nil {
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			flow, err := loadFlow(args[0])
			if err != nil {
				return reportInvalid(out, errOut, asJSON, err)
			}
			logger, err := newLogger(cmd, out)
			if err != nil {
				return err
			}
			a, err := openApp(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			if !asJSON {
				logger.Info("store", "database", config.RedactURL(a.Config.DatabaseURL), "storage", config.RedactURL(a.Config.StorageURL))
			}
			eng := newEngine(a)
			defer eng.Shutdown(cmd.Context())

			opts := engine.RunOptions{}
			if !asJSON {
				opts.OnLog = func(l engine.LogLine) { logLine(cmd.Context(), logger, l.Time, l.Level, l.TaskID, l.Message) }
			}
			ex, err := eng.Run(cmd.Context(), flow, given, opts)
			if ex == nil {
				return reportInvalid(out, errOut, asJSON, err)
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(ex); err != nil {
					return err
				}
			} else {
				printSummary(out, ex)
			}
			if err != nil {
				return err
			}
			if ex.State.Failed() {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&inputs, "input", "i", nil, "an input as `key=value` (repeat for more); converted to the input's declared type")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document: the execution with its task runs, outputs and logs")
	return cmd
}

// newEngine builds the engine on an opened configuration.
func newEngine(a *app.App) *engine.Engine {
	return engine.New(engine.Options{
		Store: a.Store, Bucket: a.Bucket, Repo: a.DB,
		Policy: a.Config.Policy(), HTTPClient: a.Config.HTTPClient(),
	})
}

// loadFlow reads and parses a flow file against the built-in task types.
func loadFlow(path string) (*engine.Flow, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Cannot read flow file: %v.", err)
	}
	return engine.Parse(path, src, plugin.Default)
}

// parseInputs reads --input key=value flags.
func parseInputs(flags []string) (map[string]any, error) {
	out := map[string]any{}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, kvflow.Errorf(kvflow.EINVALID, "--input %q: expected key=value.", f)
		}
		out[k] = v
	}
	return out, nil
}

// reportInvalid prints validation errors one per line (or as JSON) and
// turns them into exit code 2; other errors go back to main.
func reportInvalid(out, errOut io.Writer, asJSON bool, err error) error {
	var ve engine.ValidationErrors
	if !errors.As(err, &ve) {
		return err
	}
	if asJSON {
		json.NewEncoder(out).Encode(map[string]any{"state": "INVALID", "errors": ve})
	} else {
		for _, e := range ve {
			fmt.Fprintln(errOut, e.Error())
		}
	}
	return exitError{2}
}

// logLine writes an execution's log line through the command's logger, at
// the time it happened.
func logLine(ctx context.Context, logger *slog.Logger, at time.Time, level, taskID, msg string) {
	lvl := slog.LevelInfo
	switch level {
	case "TRACE":
		lvl = slog.LevelDebug - 4
	case "DEBUG":
		lvl = slog.LevelDebug
	case "WARN":
		lvl = slog.LevelWarn
	case "ERROR":
		lvl = slog.LevelError
	}
	h := logger.Handler()
	if !h.Enabled(ctx, lvl) {
		return
	}
	r := slog.NewRecord(at, lvl, msg, 0)
	if taskID != "" {
		r.AddAttrs(slog.String("task", taskID))
	}
	h.Handle(ctx, r)
}

// printSummary prints the final state, the task outputs and the flow
// outputs, as execution run --wait does for a server's execution.
func printSummary(w io.Writer, ex *engine.Execution) {
	var wire client.Execution
	b, err := json.Marshal(ex)
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // outputs print every digit
		err = dec.Decode(&wire)
	}
	if err != nil {
		fmt.Fprintf(w, "\nExecution %s of %s.%s: %s\n", ex.ID, ex.Namespace, ex.FlowID, ex.State)
		return
	}
	printRemoteSummary(w, &wire)
}

// text prints a value as templates do: text as is, the rest as JSON.
func text(v any) string { return template.Text(v) }
