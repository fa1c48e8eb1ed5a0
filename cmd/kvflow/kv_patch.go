package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

func newKVPatchCmd(f *kvFlags) *cobra.Command {
	var ifVersion int64
	var reveal bool
	cmd := &cobra.Command{
		Use:   "patch NAMESPACE KEY JSON",
		Short: "Merge a JSON merge patch (RFC 7386) into a value, atomically",
		Long: `Merge JSON ("-" reads stdin) into the value of KEY as a JSON merge patch
(RFC 7386): an object merges into a JSON object value key by key, a null
removes a field, anything else replaces the value; a missing key is created.
The merge is a compare-and-set, so concurrent patches of different fields all
land. --if-version N patches only the entry at version N. The entry keeps its
description and expiry. Prints the new value.`,
		Example: `  kvflow kv patch company.team config '{"retries": 5, "old": null}'
  kvflow kv patch company.team config '{"address": {"city": "Lyon"}}' --if-version 3`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkIfVersion(cmd, ifVersion); err != nil {
				return err
			}
			text := []byte(args[2])
			if args[2] == "-" {
				var err error
				if text, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), storage.MaxValueSize)); err != nil {
					return kvflow.Errorf(kvflow.EINVALID, "Cannot read the patch: %v.", err)
				}
			}
			patch, err := storage.DecodeJSON(text)
			if err != nil {
				return kvflow.Errorf(kvflow.EINVALID, "The patch is not valid JSON: %s.", storage.JSONErrorText(err))
			}
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			var v storage.Value
			var w client.Written
			switch tg := target.(type) {
			case remoteKV:
				v, w, err = tg.c.Patch(cmd.Context(), args[0], args[1], patch, ifVersion)
			case localKV:
				var e *storage.Entry
				if v, e, err = tg.a.Store.Merge(cmd.Context(), args[0], args[1], patch, storage.MergeOptions{IfVersion: ifVersion, NullDeletes: true}); e != nil {
					w = client.Written{Version: e.Version, Sensitive: e.Sensitive}
				}
			}
			if err != nil {
				return err
			}
			if f.asJSON {
				res := client.PatchResult{Type: string(v.Type), Value: v.JSONValue(), Version: w.Version, Sensitive: w.Sensitive}
				if w.Sensitive && !reveal {
					res.Value = storage.Mask
				}
				return printJSON(cmd.OutOrStdout(), res)
			}
			return printShown(cmd.OutOrStdout(), v, w.Sensitive, reveal, false)
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print a sensitive value instead of ******")
	cmd.Flags().Int64Var(&ifVersion, "if-version", 0, "patch only if the key is at this version (compare-and-set)")
	return cmd
}
