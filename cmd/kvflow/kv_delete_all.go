package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// isTerminal reports whether r is an interactive terminal; tests replace it.
var isTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && terminal(f)
}

// addDeleteAll gives kv delete NAMESPACE --all [--yes]: every key of the
// namespace (not of those below it), each a tombstone in its history. On a
// terminal it asks first; otherwise it needs --yes.
func addDeleteAll(del *cobra.Command, f *kvFlags) {
	var all, yes bool
	del.Use = "delete NAMESPACE KEY | delete NAMESPACE --all [--yes]"
	del.Flags().BoolVar(&all, "all", false, "delete every key of NAMESPACE (asks first on a terminal)")
	del.Flags().BoolVar(&yes, "yes", false, "with --all: do not ask for confirmation")
	del.Args = func(cmd *cobra.Command, args []string) error {
		if all {
			return cobra.ExactArgs(1)(cmd, args)
		}
		return cobra.ExactArgs(2)(cmd, args)
	}
	plain := del.RunE
	del.RunE = func(cmd *cobra.Command, args []string) error {
		if !all {
			return plain(cmd, args)
		}
		ns := args[0]
		if err := storage.ValidateNamespace(ns); err != nil {
			return err
		}
		if !yes {
			in := cmd.InOrStdin()
			if !isTerminal(in) {
				return kvflow.Errorf(kvflow.EINVALID, "Refusing to delete every key of namespace '%s' without confirmation: stdin is not a terminal. Pass --yes to confirm.", ns)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Delete every key of namespace '%s' (keys of namespaces below it are kept)? [y/N] ", ns)
			answer, _ := bufio.NewReader(in).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
				fmt.Fprintln(cmd.ErrOrStderr(), "Nothing deleted.")
				return nil
			}
		}
		target, err := f.open(cmd)
		if err != nil {
			return err
		}
		defer target.close()
		var keys []string
		switch tg := target.(type) {
		case remoteKV:
			keys, err = tg.c.DeleteAll(cmd.Context(), ns)
		case localKV:
			keys, err = tg.a.Store.DeleteAll(cmd.Context(), ns)
		}
		if err != nil {
			return err
		}
		if f.asJSON {
			return printJSON(cmd.OutOrStdout(), map[string][]string{"keys": keys})
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deleted %d keys from namespace '%s'.\n", len(keys), ns)
		return nil
	}
}
