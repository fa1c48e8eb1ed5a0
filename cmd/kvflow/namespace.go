package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow/client"
)

func init() { subcommands = append(subcommands, newNamespaceCmd) }

func newNamespaceCmd() *cobra.Command {
	f := &remoteFlags{}
	cmd := &cobra.Command{
		Use:   "namespace",
		Short: "List a server's namespaces as a tree, with flow and key counts",
	}
	f.add(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the namespaces as a tree (implicit parents included) with flow and key counts",
		Long: `List the namespaces the server lets this client reach, as a tree: each parent
before its children, parents that exist only because namespaces below them do
marked "(parent)". KEYS counts the namespace's own live keys, TOTAL those of
it and every namespace listed below it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(defaultServer)
			if err != nil {
				return err
			}
			nss, err := c.Namespaces(cmd.Context())
			if err != nil {
				return err
			}
			if f.asJSON {
				if nss == nil {
					nss = []client.Namespace{}
				}
				return printJSON(cmd.OutOrStdout(), nss)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tFLOWS\tKEYS\tTOTAL")
			for _, n := range nss {
				name := strings.Repeat("  ", strings.Count(n.ID, ".")) + n.ID[strings.LastIndexByte(n.ID, '.')+1:]
				if n.Implicit {
					name += " (parent)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", name, n.Flows, n.KeyCount, n.TotalKeyCount)
			}
			return tw.Flush()
		},
	})
	return cmd
}
