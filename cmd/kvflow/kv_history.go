package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

// KV history commands (issue 11): kv history, kv restore, kv watch, and
// kv get --version. addKVHistory is the one hook newKVCmd calls.
func addKVHistory(kv *cobra.Command, f *kvFlags) {
	kv.AddCommand(newKVHistoryCmd(f), newKVRestoreCmd(f), newKVWatchCmd(f))
	for _, c := range kv.Commands() {
		if c.Name() == "get" {
			addGetVersion(c, f)
		}
	}
}

// addGetVersion gives kv get a --version flag that reads from history.
func addGetVersion(get *cobra.Command, f *kvFlags) {
	var version int64
	get.Flags().Int64Var(&version, "version", 0, "print this version of the key, from its history")
	plain := get.RunE
	get.RunE = func(cmd *cobra.Command, args []string) error {
		if !cmd.Flags().Changed("version") {
			return plain(cmd, args)
		}
		if version < 1 {
			return kvflow.Errorf(kvflow.EINVALID, "--version is %d: expected a version number, 1 or more.", version)
		}
		target, err := f.open(cmd)
		if err != nil {
			return err
		}
		defer target.close()
		var v storage.Value
		var sensitive bool
		switch t := target.(type) {
		case localKV:
			var ver *storage.Version
			if ver, v, err = t.a.Store.GetVersion(cmd.Context(), args[0], args[1], version); err == nil {
				sensitive = ver.Sensitive
			}
		case remoteKV:
			v, sensitive, err = t.c.GetVersionTyped(cmd.Context(), args[0], args[1], version)
		}
		if err != nil {
			return err
		}
		reveal, _ := cmd.Flags().GetBool("reveal")
		return printShown(cmd.OutOrStdout(), v, sensitive, reveal, f.asJSON)
	}
}

func newKVHistoryCmd(f *kvFlags) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history NAMESPACE KEY",
		Short: "List a key's versions, newest first: who wrote each and when (deletes included)",
		Example: `  kvflow kv history company.team my_key
  kvflow kv get company.team my_key --version 3
  kvflow kv restore company.team my_key 3`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > storage.MaxListLimit {
				return kvflow.Errorf(kvflow.EINVALID, "--limit is %d: expected 1 to %d.", limit, storage.MaxListLimit)
			}
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			var vs []api.Version
			more := false // older versions past --limit
			switch t := target.(type) {
			case localKV:
				var p storage.VersionPage
				p, err = t.a.Store.History(cmd.Context(), args[0], args[1], storage.HistoryOptions{Limit: limit})
				for i := range p.Versions {
					vs = append(vs, api.VersionOf(&p.Versions[i]))
				}
				more = p.Next > 0
			case remoteKV:
				var next int64
				vs, next, err = t.c.History(cmd.Context(), args[0], args[1], limit, 0)
				more = next > 0
			}
			if more {
				fmt.Fprintf(cmd.ErrOrStderr(), "The newest %d versions; older ones follow: raise --limit (up to %d).\n", len(vs), storage.MaxListLimit)
			}
			if err != nil {
				return err
			}
			if len(vs) == 0 {
				return storage.NotFound(args[0], args[1])
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), vs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tCHANGE\tTYPE\tDATE\tWRITER\tDESCRIPTION")
			for _, v := range vs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", v.Version, v.Change, v.Type, v.UpdateDate.UTC().Format(time.RFC3339), v.Writer, v.Description)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", storage.DefaultListLimit, "at most this many versions")
	return cmd
}

func newKVRestoreCmd(f *kvFlags) *cobra.Command {
	var ifMatch int64
	cmd := &cobra.Command{
		Use:   "restore NAMESPACE KEY VERSION",
		Short: "Write a new version holding an old version's value, type and description",
		Example: `  kvflow kv history company.team my_key
  kvflow kv restore company.team my_key 1
  kvflow kv restore company.team my_key 1 --if-version 3`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			version, err := strconv.ParseInt(args[2], 10, 64)
			if err != nil || version < 1 {
				return kvflow.Errorf(kvflow.EINVALID, "VERSION is %q: expected a version number, 1 or more.", args[2])
			}
			if err := checkIfVersion(cmd, ifMatch); err != nil {
				return err
			}
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			var e api.Entry
			switch t := target.(type) {
			case localKV:
				var se *storage.Entry
				if se, err = t.a.Store.Restore(cmd.Context(), args[0], args[1], version, storage.SetOptions{IfVersion: ifMatch}); err == nil {
					e = api.EntryOf(se, true)
				}
			case remoteKV:
				var re *api.Entry
				if re, err = t.c.Restore(cmd.Context(), args[0], args[1], version, ifMatch); err == nil {
					e = *re
				}
			}
			if err != nil {
				return err
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), e)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Restored version %d of key '%s' in namespace '%s' as version %d.\n", version, args[1], args[0], e.Version)
			return nil
		},
	}
	cmd.Flags().Int64Var(&ifMatch, "if-version", 0, "restore only if the key is at this version (for a deleted key: its deletion's)")
	return cmd
}

func newKVWatchCmd(f *kvFlags) *cobra.Command {
	var prefix string
	var since int64
	var values, reveal bool
	cmd := &cobra.Command{
		Use:   "watch NAMESPACE",
		Short: "Print the namespace's changes as they happen (--since SEQ resumes after SEQ)",
		Long: `Print one line per change of a key in NAMESPACE: its seq, key, change (SET,
DELETE or EXPIRE), version and type; with --values also each SET's value
(a sensitive one masked unless --reveal); with --json one JSON object per line.
Without --since it starts with the next change. Stop it with Ctrl-C.`,
		Example: `  kvflow kv watch company.team
  kvflow kv watch company.team --prefix config_ --since 0 --json
  kvflow kv watch company.team --values
  kvflow kv watch company.team --server localhost:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			if !cmd.Flags().Changed("since") {
				since = -1 // from the next change
			} else if since < 0 {
				return kvflow.Errorf(kvflow.EINVALID, "--since %d is not a change seq: expected 0 or more.", since)
			}
			out := cmd.OutOrStdout()
			print := func(c api.Change) error {
				if f.asJSON {
					return printJSON(out, c)
				}
				line := fmt.Sprintf("%d\t%s\t%s\tv%d\t%s", c.Seq, c.Key, c.Change, c.Version, c.Type)
				if len(c.Value) > 0 {
					line += "\t" + string(c.Value)
				}
				_, err := fmt.Fprintln(out, line)
				return err
			}
			if reveal && !values {
				return kvflow.Errorf(kvflow.EINVALID, "--reveal shows sensitive values: it needs --values.")
			}
			o := client.WatchOptions{Prefix: prefix, Since: since, Values: values, Reveal: reveal}
			var werr error
			switch t := target.(type) {
			case localKV:
				werr = watchLocal(cmd.Context(), t.a.Store, args[0], o, print)
			case remoteKV:
				werr = t.c.WatchWith(cmd.Context(), args[0], o, print)
			}
			if cmd.Context().Err() != nil {
				return nil // interrupted: a normal end
			}
			return werr
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "only keys starting with this")
	cmd.Flags().Int64Var(&since, "since", 0, "print the changes after this seq first")
	cmd.Flags().BoolVar(&values, "values", false, "print each SET's value too")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "with --values, show sensitive values instead of masking them")
	return cmd
}

// watchLocal follows the local store's feed: its own writes wake it, and it
// polls for other processes'.
func watchLocal(ctx context.Context, s *storage.Store, ns string, o client.WatchOptions, fn func(api.Change) error) error {
	prefix, since := o.Prefix, o.Since
	var err error
	if since < 0 {
		since, err = s.FeedHead(ctx, ns)
	} else {
		err = s.CheckSince(ctx, ns, since)
	}
	if err != nil {
		return err
	}
	for {
		wrote := s.Wrote()
		cs, err := s.Changes(ctx, ns, since, storage.MaxListLimit)
		if err != nil {
			return err
		}
		for i := range cs {
			since = cs[i].Seq
			if len(cs[i].Key) >= len(prefix) && cs[i].Key[:len(prefix)] == prefix {
				c := api.ChangeOf(&cs[i])
				c.Date = api.Time{} // as the server's watch events
				if o.Values && cs[i].Change == storage.SET {
					if c.Value, c.Sensitive, err = versionJSON(ctx, s, ns, &cs[i], o.Reveal); err != nil {
						return err
					}
				}
				if err := fn(c); err != nil {
					return err
				}
			}
		}
		if len(cs) == storage.MaxListLimit {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wrote:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// versionJSON is the value of a change's version as JSON, masked when
// sensitive unless reveal; none, as in the server's watch, when it cannot be
// read (retention purged it meanwhile).
func versionJSON(ctx context.Context, s *storage.Store, ns string, c *storage.Change, reveal bool) (json.RawMessage, bool, error) {
	ver, v, err := s.GetVersion(ctx, ns, c.Key, c.Version)
	if err != nil {
		return nil, false, nil
	}
	val := v.JSONValue()
	if ver.Sensitive && !reveal {
		val = storage.Mask
	}
	b, err := json.Marshal(val)
	return b, ver.Sensitive, err
}
