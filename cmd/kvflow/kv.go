package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/app"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

func init() { subcommands = append(subcommands, newKVCmd) }

// kvFlags are the flags every kv subcommand shares.
type kvFlags struct {
	serverFlags
	asJSON bool
}

func newKVCmd() *cobra.Command {
	f := &kvFlags{}
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "Read and write KV entries, on the local store or on a server",
		Long: `Manage KV entries. By default the commands work on the configured store
(the embedded SQLite + local directory unless configured otherwise); with
--server URL (or KVFLOW_SERVER) they go through that server's REST API.
A value that starts with '-' goes after "--": kvflow kv set ns n -- -5.

` + exitCodesHelp(),
	}
	f.add(cmd, "kvflow server, as http://host:port or host:port (env KVFLOW_SERVER); default: the local store")
	cmd.PersistentFlags().BoolVar(&f.asJSON, "json", false, "print JSON")
	cmd.AddCommand(newKVSetCmd(f), newKVGetCmd(f), newKVKeysCmd(f), newKVDeleteCmd(f), newKVPurgeCmd(f), newKVGCCmd(f))
	addKVHistory(cmd, f)
	addMoreKVCommands(cmd, f) // kv_more.go
	return cmd
}

// kvTarget is where kv commands act: the local store or a server.
type kvTarget interface {
	set(ctx context.Context, ns, key, text string, t storage.Type, o setOptions) (version int64, err error)
	get(ctx context.Context, ns, key string, w io.Writer, asJSON, reveal bool) error
	list(ctx context.Context, ns, prefix string) ([]client.Entry, error)
	delete(ctx context.Context, ns, key string) (bool, error)
	purge(ctx context.Context, req client.PurgeRequest) (client.PurgeResult, error)
	close()
}

// open returns the server client when --server is set, else the local store.
func (f *kvFlags) open(cmd *cobra.Command) (kvTarget, error) {
	c, err := f.client("")
	if err != nil {
		return nil, err
	} else if c != nil {
		return remoteKV{c}, nil
	}
	a, err := openApp(cmd)
	if err != nil {
		return nil, err
	}
	// Every write of a local command is recorded as the CLI's.
	cmd.SetContext(storage.WithWriter(cmd.Context(), storage.WriterCLI))
	return localKV{a}, nil
}

func newKVSetCmd(f *kvFlags) *cobra.Command {
	var typ string
	var o setOptions
	cmd := &cobra.Command{
		Use:   "set NAMESPACE KEY VALUE",
		Short: "Write a value; its type is inferred as the API infers text, unless --type says",
		Long: `Write VALUE under KEY in NAMESPACE. Without --type the type is inferred from the
text as Kestra's API reads a text body: 42 is a NUMBER, true a BOOLEAN,
2024-07-15 a DATE, 2024-07-15T06:10:33Z a DATETIME, PT5M a DURATION, {...} or
[...] JSON, anything else a STRING. VALUE "-" reads the value from stdin.`,
		Example: `  kvflow kv set company.team my_key "Hello World"
  kvflow kv set company.team count 42 --ttl P30D --description "a counter"
  kvflow kv set company.team code 007 --type STRING --no-overwrite
  kvflow kv set company.team count 43 --if-version 7
  cat doc.json | kvflow kv set company.team doc - --type JSON`,
		Args:              cobra.ExactArgs(3),
		ValidArgsFunction: completeKVArgs(&f.serverFlags, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkIfVersion(cmd, o.ifVersion); err != nil {
				return err
			}
			var t storage.Type
			if typ != "" {
				var err error
				if t, err = storage.ParseType(typ); err != nil {
					return err
				}
			}
			text := args[2]
			if text == "-" {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return kvflow.Errorf(kvflow.EINVALID, "Cannot read the value from stdin: %v.", err)
				}
				text = string(b)
			}
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			version, err := target.set(cmd.Context(), args[0], args[1], text, t, o)
			if err != nil {
				return err
			}
			if f.asJSON {
				out := map[string]any{"namespace": args[0], "key": args[1], "stored": true}
				if version > 0 {
					out["version"] = version
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			if o.ifVersion > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "Stored key '%s' in namespace '%s' at version %d.\n", args[1], args[0], version)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Stored key '%s' in namespace '%s'.\n", args[1], args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "type of the value: STRING, NUMBER, BOOLEAN, DATETIME, DATE, DURATION or JSON")
	cmd.Flags().StringVar(&o.ttl, "ttl", "", "time to live, an ISO-8601 duration such as PT5M or P30D, or whole seconds")
	cmd.Flags().StringVar(&o.description, "description", "", "description of the entry")
	cmd.Flags().BoolVar(&o.noOverwrite, "no-overwrite", false, "fail if the key already exists")
	cmd.Flags().Int64Var(&o.ifVersion, "if-version", 0, "write only if the key is at this version (compare-and-set); else fail")
	cmd.Flags().BoolVar(&o.sensitive, "sensitive", false, "seal the value at rest and mask it (get prints ****** unless --reveal)")
	return cmd
}

func newKVGetCmd(f *kvFlags) *cobra.Command {
	var reveal bool
	cmd := &cobra.Command{
		Use:   "get NAMESPACE KEY",
		Short: "Print a value (with --json: {\"type\":…,\"value\":…} as the API answers)",
		Example: `  kvflow kv get company.team my_key
  kvflow kv get company.team my_key --json
  kvflow kv get company.team retries --default 3
  kvflow kv get company.team my_key --version 1
  kvflow kv get company.team my_key --server localhost:8080`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeKVArgs(&f.serverFlags, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			return target.get(cmd.Context(), args[0], args[1], cmd.OutOrStdout(), f.asJSON, reveal)
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print a sensitive value instead of ******")
	return cmd
}

func newKVKeysCmd(f *kvFlags) *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "keys NAMESPACE",
		Short: "List live keys, sorted (with --json: the entries with their metadata)",
		Example: `  kvflow kv keys company.team
  kvflow kv keys company.team --prefix config_ --json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeKVArgs(&f.serverFlags, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			entries, err := target.list(cmd.Context(), args[0], prefix)
			if err != nil {
				return err
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), entries)
			}
			for _, e := range entries {
				fmt.Fprintln(cmd.OutOrStdout(), e.Key)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "only keys starting with this")
	return cmd
}

func newKVDeleteCmd(f *kvFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAMESPACE KEY",
		Short: "Delete a key (a key that did not exist is not an error)",
		Example: `  kvflow kv delete company.team my_key
  kvflow kv delete company.team --all --yes`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeKVArgs(&f.serverFlags, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			deleted, err := target.delete(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]bool{"deleted": deleted})
			}
			if deleted {
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted key '%s' from namespace '%s'.\n", args[1], args[0])
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "Key '%s' did not exist in namespace '%s'.\n", args[1], args[0])
			}
			return nil
		},
	}
}

func newKVPurgeCmd(f *kvFlags) *cobra.Command {
	var req client.PurgeRequest
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Remove expired entries (with --all, every matching entry of the namespaces named)",
		Example: `  kvflow kv purge
  kvflow kv purge --namespace company --include-children
  kvflow kv purge --namespace company.team --key 'tmp_*' --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.All && len(req.Namespaces) == 0 {
				return kvflow.Errorf(kvflow.EINVALID, "--all removes entries that have not expired: name the namespaces with --namespace.")
			}
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			res, err := target.purge(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			nss := make([]string, 0, len(res.Purged))
			for ns := range res.Purged {
				nss = append(nss, ns)
			}
			sort.Strings(nss)
			var parts []string
			for _, ns := range nss {
				parts = append(parts, fmt.Sprintf("%s: %d", ns, res.Purged[ns]))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Purged %d entries.", res.Total)
			if len(parts) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), " (%s)", strings.Join(parts, ", "))
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&req.Namespaces, "namespace", nil, "namespace to purge (repeat for more); default: every namespace")
	cmd.Flags().BoolVar(&req.IncludeChildren, "include-children", false, "also the namespaces below each --namespace")
	cmd.Flags().StringVar(&req.KeyGlob, "key", "", "only keys matching this glob (* and ?)")
	cmd.Flags().BoolVar(&req.All, "all", false, "also remove entries that have not expired (needs --namespace)")
	return cmd
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// setOptions are kv set's flags.
type setOptions struct {
	ttl, description string
	noOverwrite      bool
	ifVersion        int64 // 0: any version
	sensitive        bool
}

// localKV works on the configured store.
type localKV struct{ a *app.App }

func (l localKV) close() { l.a.Close() }

func (l localKV) set(ctx context.Context, ns, key, text string, t storage.Type, o setOptions) (int64, error) {
	so := storage.SetOptions{NoOverwrite: o.noOverwrite, IfVersion: o.ifVersion, Description: o.description, Sensitive: o.sensitive}
	if o.ttl != "" {
		d, err := storage.ParseTTL(o.ttl)
		if err != nil {
			return 0, err
		}
		so.TTL = d
	}
	v := storage.Infer(text)
	if t != "" {
		var err error
		if v, err = storage.ParseAs(t, text); err != nil {
			return 0, err
		}
	}
	e, err := l.a.Store.Set(ctx, ns, key, v, so)
	if err != nil {
		return 0, err
	}
	return e.Version, nil
}

func (l localKV) get(ctx context.Context, ns, key string, w io.Writer, asJSON, reveal bool) error {
	e, v, err := l.a.Store.Get(ctx, ns, key)
	if kvflow.ErrorCode(err) == kvflow.ETOOLARGE && !asJSON {
		// Too large to hold: stream the text.
		_, rc, err := l.a.Store.Open(ctx, ns, key)
		if err != nil {
			return err
		}
		defer rc.Close()
		if _, err := io.Copy(w, rc); err != nil {
			return err
		}
		_, err = fmt.Fprintln(w)
		return err
	} else if err != nil {
		return err
	}
	return printShown(w, v, e.Sensitive, reveal, asJSON)
}

// printValue prints a value's text, or with asJSON the API's {"type","value"}.
func printValue(w io.Writer, v storage.Value, asJSON bool) error {
	if asJSON {
		return printJSON(w, client.TypedValue{Type: string(v.Type), Value: v.JSONValue()})
	}
	_, err := fmt.Fprintln(w, v.Text())
	return err
}

// printShown is printValue for a stored value: a sensitive one prints as
// storage.Mask unless reveal, and with asJSON carries "sensitive": true.
func printShown(w io.Writer, v storage.Value, sensitive, reveal, asJSON bool) error {
	switch {
	case !sensitive:
		return printValue(w, v, asJSON)
	case asJSON && reveal:
		return printJSON(w, client.TypedValue{Type: string(v.Type), Value: v.JSONValue(), Sensitive: true})
	case asJSON:
		return printJSON(w, client.TypedValue{Type: string(v.Type), Value: storage.Mask, Sensitive: true})
	case reveal:
		return printValue(w, v, false)
	}
	_, err := fmt.Fprintln(w, storage.Mask)
	return err
}

func (l localKV) list(ctx context.Context, ns, prefix string) ([]client.Entry, error) {
	out := []client.Entry{}
	o := storage.ListOptions{Prefix: prefix, Limit: storage.MaxListLimit}
	for {
		page, err := l.a.Store.List(ctx, ns, o)
		if err != nil {
			return nil, err
		}
		for i := range page.Entries {
			out = append(out, api.EntryOf(&page.Entries[i], false))
		}
		if page.Next == "" {
			return out, nil
		}
		o.After = page.Next
	}
}

func (l localKV) delete(ctx context.Context, ns, key string) (bool, error) {
	return l.a.Store.Delete(ctx, ns, key)
}

func (l localKV) purge(ctx context.Context, req client.PurgeRequest) (client.PurgeResult, error) {
	purged, err := l.a.Store.Purge(ctx, storage.PurgeOptions{
		Namespaces: req.Namespaces, IncludeChildren: req.IncludeChildren, KeyGlob: req.KeyGlob, All: req.All,
	})
	res := client.PurgeResult{Purged: map[string]int{}}
	for ns, n := range purged {
		res.Purged[ns] = n
		res.Total += n
	}
	if err != nil {
		return res, err
	}
	// No server may be running to collect the objects: do it here.
	_, err = l.a.Store.CollectGarbage(ctx, storage.DefaultGCGrace)
	return res, err
}

// remoteKV goes through a server's API.
type remoteKV struct{ c *client.Client }

func (r remoteKV) close() {}

func (r remoteKV) set(ctx context.Context, ns, key, text string, t storage.Type, o setOptions) (int64, error) {
	return r.c.Put(ctx, ns, key, text, client.SetOptions{Type: t, TTL: o.ttl, Description: o.description, NoOverwrite: o.noOverwrite, IfVersion: o.ifVersion, Sensitive: o.sensitive})
}

func (r remoteKV) get(ctx context.Context, ns, key string, w io.Writer, asJSON, reveal bool) error {
	v, sensitive, err := r.c.GetTyped(ctx, ns, key)
	if err != nil {
		return err
	}
	return printShown(w, v, sensitive, reveal, asJSON)
}

func (r remoteKV) list(ctx context.Context, ns, prefix string) ([]client.Entry, error) {
	entries, _, err := r.c.List(ctx, ns, client.ListOptions{Prefix: prefix})
	if entries == nil {
		entries = []client.Entry{}
	}
	return entries, err
}

func (r remoteKV) delete(ctx context.Context, ns, key string) (bool, error) {
	return r.c.Delete(ctx, ns, key)
}

func (r remoteKV) purge(ctx context.Context, req client.PurgeRequest) (client.PurgeResult, error) {
	return r.c.Purge(ctx, req)
}

// checkIfVersion refuses an --if-version given below 1: 0 would turn the
// compare-and-set off, silently.
func checkIfVersion(cmd *cobra.Command, v int64) error {
	if !cmd.Flags().Changed("if-version") || v >= 1 {
		return nil
	}
	hint := ""
	if cmd.Flags().Lookup("no-overwrite") != nil {
		hint = " (to write only a key that does not exist, use --no-overwrite)"
	}
	return kvflow.Errorf(kvflow.EINVALID, "--if-version %d is not a version: versions start at 1%s.", v, hint)
}
