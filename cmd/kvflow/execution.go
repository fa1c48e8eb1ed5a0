package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
)

func init() { subcommands = append(subcommands, newExecutionCmd) }

// pollInterval is how often --wait and --follow ask the server for news.
var pollInterval = 200 * time.Millisecond

func newExecutionCmd() *cobra.Command {
	f := &remoteFlags{}
	cmd := &cobra.Command{
		Use:     "execution",
		Aliases: []string{"executions", "ex"},
		Short:   "Run stored flows on a server, list executions, show them, follow their logs, kill them",
		Long: `Work with the executions of a kvflow server (--server, $KVFLOW_SERVER, else
` + defaultServer + `).

` + exitCodesHelp(),
	}
	f.add(cmd)
	cmd.AddCommand(newExecutionRunCmd(f), newExecutionListCmd(f), newExecutionGetCmd(f), newExecutionLogsCmd(f), newExecutionKillCmd(f))
	return cmd
}

func newExecutionRunCmd(f *remoteFlags) *cobra.Command {
	var inputs []string
	var wait, snapshot bool
	cmd := &cobra.Command{
		Use:   "run NAMESPACE FLOW_ID",
		Short: "Start an execution of a stored flow; with --wait, follow its logs and exit with its state",
		Long: `Start an execution of a flow stored on the server and print its id. With
--wait, print its logs as they come, then its state and outputs, and exit 0
for SUCCESS or WARNING and 1 for FAILED or KILLED.`,
		Example:           `  kvflow execution run company.team hello --input name=Ada --wait`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeFlowArgs(&f.serverFlags),
		RunE: func(cmd *cobra.Command, args []string) error {
			given, err := parseInputs(inputs)
			if err != nil {
				return err
			}
			c, err := f.client(defaultServer)
			if err != nil {
				return err
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			ex, err := c.ExecuteWith(ctx, args[0], args[1], given, client.ExecuteOptions{KVSnapshot: snapshot})
			if err != nil {
				return reportRemoteInvalid(cmd, err)
			}
			if !wait {
				if f.asJSON {
					return printJSON(out, ex)
				}
				fmt.Fprintf(out, "Execution %s of %s.%s: %s\n", ex.ID, ex.Namespace, ex.FlowID, ex.State)
				return nil
			}
			var logger *slog.Logger
			if !f.asJSON {
				if logger, err = newLogger(cmd, out); err != nil {
					return err
				}
			}
			ex, err = follow(ctx, c, ex.ID, logger)
			if err != nil {
				return err
			}
			if f.asJSON {
				if err := printJSON(out, ex); err != nil {
					return err
				}
			} else {
				printRemoteSummary(out, ex)
			}
			if ex.State.Failed() {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&inputs, "input", "i", nil, "an input as `key=value` (repeat for more)")
	cmd.Flags().BoolVarP(&wait, "wait", "w", false, "follow the logs until the execution ends and exit with its state")
	cmd.Flags().BoolVar(&snapshot, "kv-snapshot", false, "pin the execution's KV reads to the store as it was when it started")
	return cmd
}

// reportRemoteInvalid prints each problem of invalid inputs on its own line.
func reportRemoteInvalid(cmd *cobra.Command, err error) error {
	var fe client.FieldErrors
	if errors.As(err, &fe) {
		for _, e := range fe {
			fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
		}
		return exitError{2}
	}
	return err
}

// follow prints an execution's log lines as they come (when logger is not
// nil) and returns the execution once it has ended.
func follow(ctx context.Context, c *client.Client, id string, logger *slog.Logger) (*client.Execution, error) {
	seen := 0
	for {
		ex, err := c.Execution(ctx, id)
		if err != nil {
			return nil, err
		}
		if logger != nil {
			lines, err := c.ExecutionLogs(ctx, id)
			if err != nil {
				return nil, err
			}
			for ; seen < len(lines); seen++ {
				l := lines[seen]
				logLine(ctx, logger, l.Time, l.Level, l.TaskID, l.Message)
			}
		}
		if ex.State.Terminated() {
			if logger != nil {
				// Lines flushed with the final state.
				if lines, err := c.ExecutionLogs(ctx, id); err == nil {
					for ; seen < len(lines); seen++ {
						l := lines[seen]
						logLine(ctx, logger, l.Time, l.Level, l.TaskID, l.Message)
					}
				}
			}
			return ex, nil
		}
		select {
		case <-ctx.Done():
			return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Stopped following execution %s; it goes on on the server (kvflow execution kill %s stops it).", id, id)
		case <-time.After(pollInterval):
		}
	}
}

// printRemoteSummary prints the final state and the outputs, as run does.
func printRemoteSummary(w io.Writer, ex *client.Execution) {
	took := ""
	if ex.End != nil {
		took = " in " + ex.End.Sub(ex.Start).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "\nExecution %s of %s.%s: %s%s\n", ex.ID, ex.Namespace, ex.FlowID, ex.State, took)
	if ex.Error != "" {
		fmt.Fprintf(w, "Error: %s\n", ex.Error)
	}
	var lines []string
	for _, tr := range ex.TaskRuns {
		if len(tr.Outputs) == 0 {
			continue
		}
		name := tr.TaskID
		if tr.Value != "" {
			name += "[" + tr.Value + "]"
		}
		lines = append(lines, fmt.Sprintf("  %s: %s", name, text(tr.Outputs)))
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, "Task outputs:")
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	}
	if len(ex.Outputs) > 0 {
		fmt.Fprintln(w, "Flow outputs:")
		keys := make([]string, 0, len(ex.Outputs))
		for k := range ex.Outputs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s: %s\n", k, text(ex.Outputs[k]))
		}
	}
}

func newExecutionListCmd(f *remoteFlags) *cobra.Command {
	var ns, flowID string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List executions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if flowID != "" && ns == "" {
				return kvflow.Errorf(kvflow.EINVALID, "--flow needs --namespace.")
			}
			c, err := f.client(defaultServer)
			if err != nil {
				return err
			}
			list, err := c.Executions(cmd.Context(), ns, flowID)
			if err != nil {
				return err
			}
			if f.asJSON {
				if list == nil {
					list = []*client.Execution{}
				}
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAMESPACE\tFLOW\tSTATE\tSTARTED\tDURATION\tTRIGGER")
			for _, ex := range list {
				took := "-"
				if ex.End != nil {
					took = ex.End.Sub(ex.Start).Round(time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ex.ID, ex.Namespace, ex.FlowID, ex.State, ex.Start.UTC().Format("2006-01-02 15:04:05"), took, triggerName(ex.Trigger))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "only executions of this namespace")
	cmd.Flags().StringVar(&flowID, "flow", "", "only executions of this flow (needs --namespace)")
	cmd.RegisterFlagCompletionFunc("namespace", completeNamespaceFlag(&f.serverFlags, defaultServer))
	return cmd
}

func newExecutionGetCmd(f *remoteFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get EXECUTION_ID",
		Short: "Show an execution: state, task runs and outputs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(defaultServer)
			if err != nil {
				return err
			}
			ex, err := c.Execution(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), ex)
			}
			w := cmd.OutOrStdout()
			printRemoteSummary(w, ex)
			fmt.Fprintf(w, "Started by: %s\n", triggerName(ex.Trigger))
			fmt.Fprintln(w, "Task runs:")
			for _, tr := range ex.TaskRuns {
				name := tr.TaskID
				if tr.Value != "" {
					name += "[" + tr.Value + "]"
				}
				fmt.Fprintf(w, "  %s: %s\n", name, tr.State)
			}
			return nil
		},
	}
}

func newExecutionLogsCmd(f *remoteFlags) *cobra.Command {
	var followLogs bool
	cmd := &cobra.Command{
		Use:   "logs EXECUTION_ID",
		Short: "Print an execution's logs; with --follow, until it ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(defaultServer)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if f.asJSON && !followLogs {
				lines, err := c.ExecutionLogs(ctx, args[0])
				if err != nil {
					return err
				}
				if lines == nil {
					lines = []client.LogLine{}
				}
				return printJSON(cmd.OutOrStdout(), lines)
			}
			logger, err := newLogger(cmd, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			if followLogs {
				_, err := follow(ctx, c, args[0], logger)
				return err
			}
			lines, err := c.ExecutionLogs(ctx, args[0])
			if err != nil {
				return err
			}
			for _, l := range lines {
				logLine(ctx, logger, l.Time, l.Level, l.TaskID, l.Message)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&followLogs, "follow", "f", false, "keep printing new lines until the execution ends")
	return cmd
}

func newExecutionKillCmd(f *remoteFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "kill EXECUTION_ID",
		Short: "Stop a running execution; it ends KILLED",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(defaultServer)
			if err != nil {
				return err
			}
			ex, err := c.Kill(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), ex)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Kill requested for execution %s of %s.%s (now %s).\n", ex.ID, ex.Namespace, ex.FlowID, ex.State)
			return nil
		},
	}
}

// triggerName says what started an execution: its trigger's id and short
// type ("daily (Schedule)"), or "-" for an API call, the UI or the CLI.
func triggerName(t *kvflow.TriggerInfo) string {
	if t == nil {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", t.ID, t.Type[strings.LastIndex(t.Type, ".")+1:])
}
