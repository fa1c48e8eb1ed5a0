package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
)

func init() { subcommands = append(subcommands, newFlowCmd) }

// remoteFlags are the flags of the commands that work on a server.
type remoteFlags struct {
	serverFlags
	asJSON bool
}

func (f *remoteFlags) add(cmd *cobra.Command) {
	f.serverFlags.add(cmd, "kvflow server, as http://host:port or host:port (env KVFLOW_SERVER); default "+defaultServer)
	cmd.PersistentFlags().BoolVar(&f.asJSON, "json", false, "print JSON, as the API answers")
}

func newFlowCmd() *cobra.Command {
	f := &remoteFlags{}
	cmd := &cobra.Command{
		Use:   "flow",
		Short: "Validate flow files, deploy them to a server, list, show and delete stored flows",
		Long: `Manage the flows stored on a kvflow server (--server, $KVFLOW_SERVER, else
` + defaultServer + `). "flow validate" checks files locally, with this binary's
task types, as "kvflow validate" does.`,
	}
	f.add(cmd)
	cmd.AddCommand(newValidateCmd(), newFlowDeployCmd(f), newFlowListCmd(f), newFlowGetCmd(f), newFlowDeleteCmd(f))
	return cmd
}

func newFlowDeployCmd(f *remoteFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "deploy FILE...",
		Short: "Store flow files on the server: created, or updated to a new revision",
		Example: `  kvflow flow deploy flows/*.yaml
  kvflow flow deploy hello.yaml --server 127.0.0.1:8080`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(defaultServer)
			if err != nil {
				return err
			}
			ctx, out, errOut := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			bad := false
			var deployed []client.Flow
			for _, path := range args {
				src, err := os.ReadFile(path)
				if err != nil {
					return kvflow.Errorf(kvflow.EINVALID, "Cannot read flow file: %v.", err)
				}
				var head struct {
					ID        string `yaml:"id"`
					Namespace string `yaml:"namespace"`
				}
				yaml.Unmarshal(src, &head)
				fl, err := c.CreateFlow(ctx, string(src))
				if kvflow.ErrorCode(err) == kvflow.ECONFLICT && head.ID != "" && head.Namespace != "" {
					fl, err = c.UpdateFlow(ctx, head.Namespace, head.ID, string(src))
				}
				var fe client.FieldErrors
				switch {
				case errors.As(err, &fe):
					bad = true
					for _, e := range fe {
						if e.File == "" || e.File != path {
							e.File = path
						}
						fmt.Fprintln(errOut, e.Error())
					}
					continue
				case err != nil:
					return err
				}
				deployed = append(deployed, fl)
				if !f.asJSON {
					fmt.Fprintf(out, "Deployed %s.%s revision %d from %s.\n", fl.Namespace, fl.ID, fl.Revision, path)
				}
			}
			if f.asJSON {
				if deployed == nil {
					deployed = []client.Flow{}
				}
				if err := printJSON(out, deployed); err != nil {
					return err
				}
			}
			if bad {
				return exitError{2}
			}
			return nil
		},
	}
}

func newFlowListCmd(f *remoteFlags) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the stored flows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(defaultServer)
			if err != nil {
				return err
			}
			flows, err := c.Flows(cmd.Context(), ns)
			if err != nil {
				return err
			}
			if f.asJSON {
				if flows == nil {
					flows = []client.Flow{}
				}
				return printJSON(cmd.OutOrStdout(), flows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tID\tREVISION\tUPDATED\tDESCRIPTION")
			for _, fl := range flows {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", fl.Namespace, fl.ID, fl.Revision, fl.Updated.UTC().Format("2006-01-02 15:04:05"), fl.Description)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "only the flows of this namespace")
	cmd.RegisterFlagCompletionFunc("namespace", completeNamespaceFlag(&f.serverFlags, defaultServer))
	return cmd
}

func newFlowGetCmd(f *remoteFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "get NAMESPACE FLOW_ID",
		Short:             "Print a stored flow's YAML source (with --json: its description, inputs and tasks)",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeFlowArgs(&f.serverFlags),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(defaultServer)
			if err != nil {
				return err
			}
			fl, err := c.Flow(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), fl)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), fl.Source)
			return err
		},
	}
}

func newFlowDeleteCmd(f *remoteFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAMESPACE FLOW_ID",
		Short:             "Delete a stored flow (its executions stay)",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeFlowArgs(&f.serverFlags),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(defaultServer)
			if err != nil {
				return err
			}
			if err := c.DeleteFlow(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted flow '%s' from namespace '%s'.\n", args[1], args[0])
			return nil
		},
	}
}
