package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
)

func init() { subcommands = append(subcommands, newDoctorCmd) }

func newDoctorCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the store: list keys whose value object is missing",
		Long: `Check the configured store for damage: every live key whose value object
is missing from the object store (deleted by hand, or a database restored
beside a newer bucket). Such a key reads as an internal error. It scans every
namespace and its objects, so it is not cheap; /readyz does not run it.
The exit code is 1 when a key is damaged.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := openApp(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			missing, err := a.Store.MissingObjects(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				type key struct {
					Namespace string `json:"namespace"`
					Key       string `json:"key"`
				}
				list := []key{}
				for _, e := range missing {
					list = append(list, key{e.Namespace, e.Key})
				}
				b, _ := json.Marshal(map[string]any{"missingObjects": list})
				fmt.Fprintln(out, string(b))
			} else if len(missing) == 0 {
				fmt.Fprintln(out, "ok: every key's value object is present")
			} else {
				for _, e := range missing {
					fmt.Fprintf(out, "missing object: key '%s' in namespace '%s'\n", e.Key, e.Namespace)
				}
			}
			if len(missing) > 0 {
				return kvflow.Errorf(kvflow.EINTERNAL, "%d keys have no value object: restore the objects or delete the keys.", len(missing))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {\"missingObjects\": [{namespace, key}]}")
	return cmd
}
