package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow/config"
)

func init() { subcommands = append(subcommands, newConfigCmd) }

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective configuration and where each setting comes from",
	}
	cmd.AddCommand(newConfigShowCmd())
	return cmd
}

func newConfigShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print every setting, its value (secrets redacted) and its source",
		Long: `Print the effective configuration: every setting of the configuration file
with its value and where it came from: "default", "file PATH" or "env NAME".
Passwords and credentials in URLs and the API token are shown as REDACTED.

The file read is --config, else $KVFLOW_CONFIG, else
$XDG_CONFIG_HOME/kvflow/config.yaml (~/.config/kvflow/config.yaml) when it
exists. Environment variables override the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, _ := cmd.Flags().GetString("config")
			cfg, src, err := config.LoadSources(path)
			if err != nil {
				return err
			}
			type row struct {
				Setting string `json:"setting"`
				Value   string `json:"value"`
				Source  string `json:"source"`
				Env     string `json:"env,omitempty"`
			}
			rows := make([]row, len(config.Settings))
			for i, s := range config.Settings {
				rows[i] = row{s.Key, cfg.Value(s), src.From[s.Key], s.Env}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, map[string]any{"file": src.File, "settings": rows})
			}
			file := src.File
			if file == "" {
				file = "none (" + config.DefaultFile(os.Getenv) + " does not exist)"
			}
			fmt.Fprintf(out, "Configuration file: %s\n\n", file)
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE\tENVIRONMENT")
			for _, r := range rows {
				v := r.Value
				if v == "" {
					v = "-"
				}
				env := r.Env
				if env == "" {
					env = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Setting, v, r.Source, env)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: {file, settings: [{setting, value, source, env}]}")
	return cmd
}
