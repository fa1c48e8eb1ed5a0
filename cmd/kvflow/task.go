package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/taskrun"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	_ "github.com/kvflow/kvflow/tasks/all" // the built-in task types
)

func init() { subcommands = append(subcommands, newTaskCmd) }

func newTaskCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Run one task outside any flow, or list the task types",
	}
	cmd.AddCommand(newTaskRunCmd(), newTaskListCmd())
	return cmd
}

func newTaskRunCmd() *cobra.Command {
	var ns, propsJSON string
	var reveal bool
	var props []string
	cmd := &cobra.Command{
		Use:   "run TYPE",
		Short: "Run one task and print its outputs as JSON",
		Long: `Run one task of TYPE outside any flow, as a shell step of another
orchestrator can: its properties come from --props-json and --prop (which
win), it runs in --namespace, its logs go to stderr and its outputs are
printed to stdout as one JSON object. --prop key=value gives text (templates
allowed); --prop key:=JSON gives a typed value (42, true, ["a","b"]).`,
		Example: `  kvflow task run io.kestra.plugin.core.kv.Set --namespace company.team --prop key=my_key --prop value=hello
  kvflow task run io.kestra.plugin.core.kv.Get --namespace company.team --prop key=my_key
  kvflow task run io.kestra.plugin.core.kv.Set --namespace company.team --props-json '{"key":"n","value":42}'`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTaskTypes,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ns == "" {
				return kvflow.Errorf(kvflow.EINVALID, "--namespace is required.")
			}
			given, err := parseProps(propsJSON, props)
			if err != nil {
				return err
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
			// Sensitive values the task reads or writes are masked in its
			// logs, error and outputs unless --reveal.
			secrets := &storage.Secrets{}
			if !reveal {
				logger = slog.New(maskHandler{logger.Handler(), secrets})
			}
			rc := &plugin.RunContext{
				Namespace: ns, Store: a.Store, Bucket: a.Bucket,
				Access: storage.Access{Policy: a.Config.Policy()}, HTTPClient: a.Config.HTTPClient(),
				Logger: logger,
			}
			out, err := taskrun.Run(storage.WithSecrets(cmd.Context(), secrets), plugin.Default, args[0], given, rc)
			if err != nil && !reveal {
				return &kvflow.Error{Code: kvflow.ErrorCode(err), Message: secrets.MaskText(kvflow.ErrorMessage(err))}
			} else if err != nil {
				return err
			}
			if out == nil {
				out = plugin.Outputs{}
			}
			if !reveal {
				out, _ = secrets.MaskAny(map[string]any(out)).(map[string]any)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			return enc.Encode(out)
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "namespace the task runs in (required)")
	cmd.Flags().StringArrayVarP(&props, "prop", "p", nil, "a property as `key=value` (text) or key:=JSON (typed); repeat for more")
	cmd.Flags().StringVar(&propsJSON, "props-json", "", "all properties as one JSON object")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print sensitive values the task reads instead of ******")
	cmd.RegisterFlagCompletionFunc("namespace", completeNamespaceFlag(&serverFlags{}, ""))
	return cmd
}

// parseProps merges --props-json and --prop flags.
func parseProps(propsJSON string, flags []string) (map[string]any, error) {
	out := map[string]any{}
	if propsJSON != "" {
		v, err := storage.DecodeJSON([]byte(propsJSON))
		m, ok := v.(map[string]any)
		if err != nil || !ok {
			return nil, kvflow.Errorf(kvflow.EINVALID, "--props-json is not a JSON object: %v.", errOr(err, "got %s", plugin.Describe(v)))
		}
		out = m
	}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" || k == ":" {
			return nil, kvflow.Errorf(kvflow.EINVALID, "--prop %q: expected key=value or key:=JSON.", f)
		}
		if name, typed := strings.CutSuffix(k, ":"); typed {
			x, err := storage.DecodeJSON([]byte(v))
			if err != nil {
				return nil, kvflow.Errorf(kvflow.EINVALID, "--prop %s:=%s: the value is not JSON: %v.", name, v, err)
			}
			out[name] = x
			continue
		}
		out[k] = v
	}
	return out, nil
}

// errOr is err, or a new error from the format when err is nil.
func errOr(err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	return fmt.Errorf(format, args...)
}

func newTaskListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the task types this build knows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, t := range plugin.Default.Types() {
				d, _ := plugin.Default.Lookup(t)
				fmt.Fprintf(cmd.OutOrStdout(), "%-45s %s\n", t, d.Description)
			}
			return nil
		},
	}
}

// maskHandler masks sensitive values in log records' messages and text attributes.
type maskHandler struct {
	slog.Handler
	secrets *storage.Secrets
}

func (h maskHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.secrets.MaskText(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindString {
			a.Value = slog.StringValue(h.secrets.MaskText(a.Value.String()))
		}
		out.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h maskHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return maskHandler{h.Handler.WithAttrs(attrs), h.secrets}
}

func (h maskHandler) WithGroup(name string) slog.Handler {
	return maskHandler{h.Handler.WithGroup(name), h.secrets}
}
