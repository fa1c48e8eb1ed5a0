package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// newKVGCCmd is kv gc: the server's garbage collection, run once on the
// configured store; --full also lists the bucket for orphans no record names.
func newKVGCCmd(f *kvFlags) *cobra.Command {
	var grace time.Duration
	var full bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete value objects no entry or version needs (--full: also list the bucket for orphans)",
		Long: `Apply the history retention (history: in the configuration), then delete the
value objects of purged versions and of writes that never committed, as a
server's sweeper does, reading only the database's records: the work follows
the garbage, not the size of the store. --full also lists every object in the
bucket and deletes those no record names (left by a crash, or written before
write intents existed): run it rarely on a large store. The names a process
reserves ahead for its writes count from their reservation, so after a crash
--grace 0 collects what the crash left. Works on the local store only (a server
collects its own garbage).`,
		Example: `  kvflow kv gc
  kvflow kv gc --full --grace 1h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if grace < 0 {
				return kvflow.Errorf(kvflow.EINVALID, "--grace must be 0 or more, not %s.", grace)
			}
			if c, err := f.client(""); err != nil {
				return err
			} else if c != nil {
				return kvflow.Errorf(kvflow.EINVALID, "kv gc works on the local store: a server collects its own garbage. Run it without --server (and without KVFLOW_SERVER).")
			}
			a, err := openApp(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			res := struct {
				Versions int `json:"versions"` // purged by retention
				Changes  int `json:"changes"`
				Removed  int `json:"removed"`
				Orphans  int `json:"orphans"`
			}{}
			if res.Versions, res.Changes, err = a.Store.PruneHistory(cmd.Context(), a.Config.History.Policy(), 0); err != nil {
				return err
			}
			// Reserved names' intents are dated at the end of their reservation.
			if res.Removed, err = a.Store.CollectGarbage(cmd.Context(), grace-storage.ReservedFor); err != nil {
				return err
			}
			if full {
				if res.Orphans, err = a.Store.SweepOrphans(cmd.Context(), grace); err != nil {
					return err
				}
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Purged %d versions and %d changes past the history retention; removed %d objects", res.Versions, res.Changes, res.Removed)
			if full {
				fmt.Fprintf(cmd.OutOrStdout(), " and %d orphans", res.Orphans)
			}
			fmt.Fprintln(cmd.OutOrStdout(), ".")
			return nil
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", storage.DefaultGCGrace, "leave objects queued, intended or written less than this long ago")
	cmd.Flags().BoolVar(&full, "full", false, "also list the whole bucket for orphan objects")
	return cmd
}
