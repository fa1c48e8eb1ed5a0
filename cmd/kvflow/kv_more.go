package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

// addMoreKVCommands adds kv incr, set-many, export, import and patch, and the flag
// get --default, to the kv command (one hook line in kv.go).
func addMoreKVCommands(kv *cobra.Command, f *kvFlags) {
	kv.AddCommand(newKVIncrCmd(f), newKVSetManyCmd(f), newKVExportCmd(f), newKVImportCmd(f), newKVPatchCmd(f))
	for _, c := range kv.Commands() {
		switch c.Name() {
		case "get":
			addDefault(c, f)
		case "delete":
			addDeleteAll(c, f)
		}
	}
}

// addDefault gives kv get --default VALUE: printed (typed as set infers it)
// when the key is missing or expired, instead of failing.
func addDefault(get *cobra.Command, f *kvFlags) {
	var dflt string
	get.Flags().StringVar(&dflt, "default", "", "print this value when the key is missing or expired, and exit 0")
	plain := get.RunE
	get.RunE = func(cmd *cobra.Command, args []string) error {
		err := plain(cmd, args)
		switch kvflow.ErrorCode(err) {
		case kvflow.ENOTFOUND, kvflow.EEXPIRED:
			if cmd.Flags().Changed("default") {
				return printValue(cmd.OutOrStdout(), storage.Infer(dflt), f.asJSON)
			}
		}
		return err
	}
}

func newKVIncrCmd(f *kvFlags) *cobra.Command {
	var by, ttl, description string
	var reveal bool
	cmd := &cobra.Command{
		Use:   "incr NAMESPACE KEY",
		Short: "Add to a NUMBER atomically (creating it at --by) and print the new value",
		Long: `Add --by (default 1) to the NUMBER at KEY as one compare-and-set, so concurrent
increments never lose an update; a missing or expired key is created at --by.
The sum is exact; an integer counter past 64 bits is refused. --ttl and
--description, when given, apply on this increment.`,
		Example: `  kvflow kv incr company.team visits
  kvflow kv incr company.team budget --by -2.5 --ttl 3600`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			delta, err := storage.ParseAs(storage.NUMBER, by)
			if err != nil {
				return kvflow.Errorf(kvflow.EINVALID, "--by %s", kvflow.ErrorMessage(err))
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
				v, w, err = tg.c.Increment(cmd.Context(), args[0], args[1], delta, ttl, description)
			case localKV:
				o := storage.SetOptions{Description: description}
				if ttl != "" {
					if o.TTL, err = storage.ParseTTL(ttl); err != nil {
						return err
					}
				}
				var e *storage.Entry
				if v, e, err = tg.a.Store.Increment(cmd.Context(), args[0], args[1], delta, o); e != nil {
					w = client.Written{Version: e.Version, Sensitive: e.Sensitive}
				}
			}
			if err != nil {
				return err
			}
			if f.asJSON {
				res := client.IncrementResult{Value: v.JSONValue(), Version: w.Version, Sensitive: w.Sensitive}
				if w.Sensitive && !reveal {
					res.Value = storage.Mask
				}
				return printJSON(cmd.OutOrStdout(), res)
			}
			return printShown(cmd.OutOrStdout(), v, w.Sensitive, reveal, false)
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print a sensitive counter's value instead of ******")
	cmd.Flags().StringVar(&by, "by", "1", "the number to add (negative to subtract; decimals are exact)")
	cmd.Flags().StringVar(&ttl, "ttl", "", "time to live from now: ISO-8601 (PT1H) or whole seconds (3600)")
	cmd.Flags().StringVar(&description, "description", "", "description of the entry")
	return cmd
}

func newKVSetManyCmd(f *kvFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "set-many NAMESPACE FILE",
		Short: "Write many keys from a JSON file, all or nothing",
		Long: `Write every entry of FILE ("-" reads stdin) into NAMESPACE, or none: FILE holds a
JSON array of {"key", "value", "type"?, "ttl"?, "description"?} (the value's JSON
type gives the KV type unless "type" says otherwise; ttl is ISO-8601 or whole
seconds) or an object of key to value. One bad entry refuses the whole batch,
naming its index and the reason, and nothing is stored.`,
		Example: `  kvflow kv set-many company.team batch.json
  echo '[{"key":"a","value":1,"ttl":3600},{"key":"b","value":"x","description":"bee"}]' | kvflow kv set-many company.team -`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if args[1] != "-" {
				file, err := os.Open(args[1])
				if err != nil {
					return kvflow.Errorf(kvflow.EINVALID, "Cannot read the batch file: %v.", err)
				}
				defer file.Close()
				r = file
			}
			b, err := io.ReadAll(io.LimitReader(r, 1<<30))
			if err != nil {
				return kvflow.Errorf(kvflow.EINVALID, "Cannot read the batch: %v.", err)
			}
			doc, err := storage.DecodeJSON(b)
			if err != nil {
				return kvflow.Errorf(kvflow.EINVALID, "The batch %s is not valid JSON: %s.", args[1], storage.JSONErrorText(err))
			}
			batch, err := storage.ParseBatch(doc)
			if err != nil {
				return err
			}
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			var out []client.BatchResult
			switch tg := target.(type) {
			case remoteKV:
				out, err = tg.c.SetMany(cmd.Context(), args[0], doc)
			case localKV:
				var es []*storage.Entry
				es, err = tg.a.Store.SetMany(cmd.Context(), args[0], batch)
				for _, e := range es {
					out = append(out, client.BatchResult{Key: e.Key, Version: e.Version})
				}
			}
			if err != nil {
				return err
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Stored %d keys in namespace '%s'.\n", len(out), args[0])
			return nil
		},
	}
}

func newKVExportCmd(f *kvFlags) *cobra.Command {
	var prefix, output string
	var children bool
	cmd := &cobra.Command{
		Use:   "export [NAMESPACE...]",
		Short: "Write entries as JSON Lines (every namespace when none is named)",
		Long: `Write every live entry of the namespaces named (all when none is) as JSON Lines,
one entry a line: namespace, key, type, value (typed, exact), description,
absolute expiration, version and dates. Expired entries are left out. The
lines go to stdout or --output; on a terminal, stderr shows the count and
rate as they go, and the total at the end (--json: {"exported": N}).`,
		Example: `  kvflow kv export company.team --include-children > team.jsonl
  kvflow kv export --server http://127.0.0.1:8080 -o all.jsonl`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var w io.Writer = cmd.OutOrStdout()
			if output != "" {
				file, err := os.Create(output)
				if err != nil {
					return kvflow.Errorf(kvflow.EINVALID, "Cannot create the export file: %v.", err)
				}
				defer file.Close()
				w = file
			}
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			bar := startProgress(cmd.ErrOrStderr(), "Exported")
			w = bar.Writer(w)
			n := 0
			switch tg := target.(type) {
			case localKV:
				n, err = tg.a.Store.Export(cmd.Context(), w, storage.ExportOptions{Namespaces: args, IncludeChildren: children, Prefix: prefix})
			case remoteKV:
				nss, sub := args, children
				if len(nss) == 0 {
					all, lerr := tg.c.Namespaces(cmd.Context())
					if lerr != nil {
						return lerr
					}
					for _, ns := range all {
						if ns.Keys > 0 {
							nss = append(nss, ns.ID)
						}
					}
					sub = false
				}
				for _, ns := range nss {
					var k int
					k, err = tg.c.Export(cmd.Context(), ns, prefix, sub, w)
					if n += k; err != nil {
						break
					}
				}
			}
			bar.Stop()
			if err != nil {
				return err
			}
			if f.asJSON {
				return printJSON(cmd.ErrOrStderr(), map[string]int{"exported": n})
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Exported %d entries.\n", n)
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "only keys starting with this")
	cmd.Flags().BoolVar(&children, "include-children", false, "also the namespaces below each one named")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

func newKVImportCmd(f *kvFlags) *cobra.Command {
	var onConflict string
	var maps []string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Read JSON Lines written by export (FILE - reads stdin)",
		Long: `Write each entry of FILE with its type, exact value, description and absolute
expiry (lines already expired are counted, not written). --on-conflict skip
(the default: re-running an interrupted import completes it), overwrite, or
fail (stop at the first existing key; nothing after it is written). A line
that does not parse stops the import with its line number. --namespace-map
old=new moves old and its children (old.x becomes new.x).`,
		Example: `  kvflow kv import team.jsonl --namespace-map company.team=company.staging
  kvflow kv import - --on-conflict overwrite < team.jsonl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := storage.CheckOnConflict(onConflict); err != nil {
				return err
			}
			o := storage.ImportOptions{OnConflict: onConflict, NamespaceMap: map[string]string{}}
			for _, m := range maps {
				from, to, ok := strings.Cut(m, "=")
				if !ok {
					return kvflow.Errorf(kvflow.EINVALID, "--namespace-map %q is not old=new.", m)
				}
				o.NamespaceMap[from] = to
			}
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				file, err := os.Open(args[0])
				if err != nil {
					return kvflow.Errorf(kvflow.EINVALID, "Cannot read the import file: %v.", err)
				}
				defer file.Close()
				r = file
			}
			target, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer target.close()
			bar := startProgress(cmd.ErrOrStderr(), "Read")
			r = bar.Reader(r)
			var res storage.ImportResult
			switch tg := target.(type) {
			case localKV:
				res, err = tg.a.Store.Import(cmd.Context(), r, o)
			case remoteKV:
				res, err = remoteImport(cmd.Context(), tg.c, r, o)
			}
			bar.Stop()
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "Before stopping: %d written, %d skipped, %d expired.\n", res.Written, res.Skipped, res.Expired)
				return err
			}
			if f.asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Imported %d entries (%d existing skipped, %d expired).\n", res.Written, res.Skipped, res.Expired)
			return nil
		},
	}
	cmd.Flags().StringVar(&onConflict, "on-conflict", "skip", "skip, overwrite or fail when a key exists")
	cmd.Flags().StringArrayVar(&maps, "namespace-map", nil, "old=new: import old's entries, and its children's, into new (repeatable; the longest old wins)")
	return cmd
}

// remoteImport sends each run of lines of one namespace to that namespace's
// import route, streaming. The server numbers the lines of each run from 1:
// its errors are given the file's line numbers.
func remoteImport(ctx context.Context, c *client.Client, r io.Reader, o storage.ImportOptions) (storage.ImportResult, error) {
	var total storage.ImportResult
	br := bufio.NewReaderSize(r, 64<<10)
	var pw *io.PipeWriter
	var done chan error
	var cur string
	first := 0 // the file's line number of the run's first line
	finish := func() error {
		if pw == nil {
			return nil
		}
		pw.Close()
		err := <-done
		pw = nil
		return fileLine(err, first)
	}
	for lineNo := 1; ; lineNo++ {
		line, rerr := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var head struct {
				Namespace string `json:"namespace"`
			}
			if err := json.Unmarshal(line, &head); err != nil || head.Namespace == "" {
				if ferr := finish(); ferr != nil {
					return total, ferr
				}
				return total, kvflow.Errorf(kvflow.EINVALID, "Line %d of the import: not an export line (no namespace).", lineNo)
			}
			ns := o.MapNamespace(head.Namespace) // where the server puts it: the route's namespace
			if ns != cur || pw == nil {
				if err := finish(); err != nil {
					return total, err
				}
				cur, first = ns, lineNo
				var pr *io.PipeReader
				pr, pw = io.Pipe()
				done = make(chan error, 1)
				go func(ns string) {
					res, err := c.Import(ctx, ns, pr, o.OnConflict, o.NamespaceMap)
					total.Written += res.Written
					total.Skipped += res.Skipped
					total.Expired += res.Expired
					pr.CloseWithError(err)
					done <- err
				}(ns)
			}
		}
		if pw != nil && len(line) > 0 { // blank lines too, so the server counts as the file does
			if _, err := pw.Write(line); err != nil {
				return total, finish()
			}
		}
		if rerr != nil {
			if err := finish(); err != nil {
				return total, err
			}
			if rerr == io.EOF {
				return total, nil
			}
			return total, kvflow.Errorf(kvflow.EINVALID, "Cannot read the import: %v.", rerr)
		}
	}
}

var importLineRe = regexp.MustCompile(`^Line (\d+) of the import`)

// fileLine turns the server's "Line N of the import" of a run that starts
// at the file's line first into the file's line number.
func fileLine(err error, first int) error {
	m := importLineRe.FindStringSubmatch(kvflow.ErrorMessage(err))
	if err == nil || m == nil {
		return err
	}
	n, _ := strconv.Atoi(m[1])
	msg := fmt.Sprintf("Line %d of the import", n+first-1) + kvflow.ErrorMessage(err)[len(m[0]):]
	return &kvflow.Error{Code: kvflow.ErrorCode(err), Message: msg, Err: err}
}
