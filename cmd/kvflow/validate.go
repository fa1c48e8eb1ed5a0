package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow/engine"
)

func init() { subcommands = append(subcommands, newValidateCmd) }

func newValidateCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check flow files and print every problem, with file, line and field",
		Long: `Check flow files without running them: YAML shape, unknown keys, ids,
task types, required and typed properties. Every problem of every file is
printed as FILE:LINE: FIELD: MESSAGE. The exit code is 2 when any file has a
problem.`,
		Example: `  kvflow validate examples/*.yaml`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			type result struct {
				File   string                   `json:"file"`
				Valid  bool                     `json:"valid"`
				Flow   string                   `json:"flow,omitempty"`
				Errors []engine.ValidationError `json:"errors,omitempty"`
			}
			var results []result
			bad := false
			for _, path := range args {
				f, err := loadFlow(path)
				r := result{File: path, Valid: err == nil}
				var ve engine.ValidationErrors
				switch {
				case err == nil:
					r.Flow = f.Namespace + "." + f.ID
					if !asJSON {
						fmt.Fprintf(out, "ok  %s (%s, %d tasks)\n", path, r.Flow, len(f.AllTasks()))
					}
				case errors.As(err, &ve):
					bad = true
					r.Errors = ve
					if !asJSON {
						for _, e := range ve {
							fmt.Fprintln(errOut, e.Error())
						}
					}
				default:
					bad = true
					r.Errors = []engine.ValidationError{{File: path, Message: err.Error()}}
					if !asJSON {
						fmt.Fprintf(errOut, "%s: %v\n", path, err)
					}
				}
				results = append(results, r)
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(results); err != nil {
					return err
				}
			}
			if bad {
				return exitError{2}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as one JSON array")
	return cmd
}
