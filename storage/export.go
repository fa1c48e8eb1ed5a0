package storage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kvflow/kvflow"
)

// ExportLine is one entry of an export, one JSON object per line (JSON
// Lines): the value typed and exact, the expiry absolute. Version and dates
// are informative: an import writes fresh versions.
type ExportLine struct {
	Namespace   string          `json:"namespace"`
	Key         string          `json:"key"`
	Type        Type            `json:"type"`
	Value       json.RawMessage `json:"value"`
	Description string          `json:"description,omitempty"`
	Expires     *time.Time      `json:"expirationDate,omitempty"`
	Version     int64           `json:"version,omitempty"`
	Created     *time.Time      `json:"creationDate,omitempty"`
	Updated     *time.Time      `json:"updateDate,omitempty"`
	// Sensitive entries are exported with their value in clear (an export is
	// a backup: keep the file as safe as the key) and the flag, so an import
	// seals them again with the importing store's key.
	Sensitive bool `json:"sensitive,omitempty"`
}

// ExportOptions select what Export writes.
type ExportOptions struct {
	Namespaces      []string // none: every namespace
	IncludeChildren bool     // also the namespaces below each one
	Prefix          string   // only keys starting with Prefix
}

// Export writes every live entry selected as JSON Lines, namespace by
// namespace and key by key, a page at a time, so memory stays flat. Expired
// entries are left out. It returns the number of lines written.
func (s *Store) Export(ctx context.Context, w io.Writer, o ExportOptions) (int, error) {
	nss, err := s.exportNamespaces(ctx, o)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	for _, ns := range nss {
		lo := ListOptions{Prefix: o.Prefix, Limit: MaxListLimit}
		for {
			page, err := s.List(ctx, ns, lo)
			if err != nil {
				return n, err
			}
			// Values are read 32 at a time by 8 readers, then written in key order.
			for lo := 0; lo < len(page.Entries); lo += 32 {
				window := page.Entries[lo:min(lo+32, len(page.Entries))]
				vals := make([]Value, len(window))
				ents := make([]*Entry, len(window))
				errs := make([]error, len(window))
				var wg sync.WaitGroup
				sem := make(chan struct{}, 8)
				for i := range window {
					wg.Add(1)
					sem <- struct{}{}
					go func(i int) {
						defer func() { <-sem; wg.Done() }()
						ents[i], vals[i], errs[i] = s.exportRead(ctx, ns, &window[i])
					}(i)
				}
				wg.Wait()
				for i := range window {
					if errs[i] != nil {
						return n, errs[i]
					}
					if ents[i] == nil {
						continue // deleted or expired since the page was read
					}
					if err := writeExportLine(bw, ents[i], vals[i]); err != nil {
						return n, err
					}
					n++
				}
			}
			if page.Next == "" {
				break
			}
			lo.After = page.Next
		}
	}
	return n, bw.Flush()
}

// exportRead reads a listed entry's value; nil entry when it is gone.
func (s *Store) exportRead(ctx context.Context, ns string, e *Entry) (*Entry, Value, error) {
	v, err := s.read(ctx, e) // the listed entry's object: no second metadata read
	if !errors.Is(err, fs.ErrNotExist) {
		return e, v, err
	}
	// Replaced or deleted since the page was read: read it afresh.
	fresh, v, err := s.Get(ctx, ns, e.Key)
	switch kvflow.ErrorCode(err) {
	case kvflow.ENOTFOUND, kvflow.EEXPIRED:
		return nil, Value{}, nil
	case kvflow.ETOOLARGE:
		if fresh, err = s.Stat(ctx, ns, e.Key); err == nil {
			v, err = s.read(ctx, fresh)
		}
	}
	return fresh, v, err
}

func writeExportLine(w io.Writer, e *Entry, v Value) error {
	raw, err := json.Marshal(v.JSONValue())
	if err != nil {
		return kvflow.Errorf(kvflow.EINTERNAL, "Cannot export key '%s' in namespace '%s': %v.", e.Key, e.Namespace, err)
	}
	created, updated := e.Created, e.Updated
	line := ExportLine{Namespace: e.Namespace, Key: e.Key, Type: v.Type, Value: raw, Description: e.Description,
		Expires: e.Expires, Version: e.Version, Created: &created, Updated: &updated, Sensitive: e.Sensitive}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(line); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

func (s *Store) exportNamespaces(ctx context.Context, o ExportOptions) ([]string, error) {
	for _, ns := range o.Namespaces {
		if err := ValidateNamespace(ns); err != nil {
			return nil, err
		}
	}
	if len(o.Namespaces) > 0 && !o.IncludeChildren {
		return o.Namespaces, nil
	}
	stats, err := s.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, st := range stats {
		keep := len(o.Namespaces) == 0
		for _, ns := range o.Namespaces {
			keep = keep || st.Namespace == ns || strings.HasPrefix(st.Namespace, ns+".")
		}
		if keep {
			out = append(out, st.Namespace)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Conflict policies of Import.
const (
	OnConflictSkip      = "skip"      // keep the existing entry (re-running an import completes it)
	OnConflictOverwrite = "overwrite" // replace it
	OnConflictFail      = "fail"      // stop; nothing after that line is written
)

// ImportOptions control Import.
type ImportOptions struct {
	OnConflict   string            // skip (default), overwrite or fail
	NamespaceMap map[string]string // old namespace → new (exact match)
	// Allow, when set, vets each line's namespace (after mapping) before
	// anything of it is written; its error stops the import.
	Allow func(ns string) error
}

// ImportResult counts what Import did.
type ImportResult struct {
	Written int `json:"written"`
	Skipped int `json:"skipped"` // existing keys kept (skip)
	Expired int `json:"expired"` // lines whose expiry has passed: not written
}

// Import reads JSON Lines as Export writes them and writes each entry, line
// by line, with its type, description and absolute expiry. A line that does
// not parse stops the import with its line number; with OnConflict fail an
// existing key stops it too. Lines before the stop are written.
func (s *Store) Import(ctx context.Context, r io.Reader, o ImportOptions) (ImportResult, error) {
	var res ImportResult
	switch o.OnConflict {
	case "":
		o.OnConflict = OnConflictSkip
	case OnConflictSkip, OnConflictOverwrite, OnConflictFail:
	default:
		return res, kvflow.Errorf(kvflow.EINVALID, "On-conflict %q is unknown: expected skip, overwrite or fail.", kvflow.Clip(o.OnConflict))
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for lineNo := 1; ; lineNo++ {
		text, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(text)) > 0 {
			if werr := s.importLine(ctx, lineNo, text, o, &res); werr != nil {
				return res, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return res, nil
		} else if err != nil {
			return res, kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot read the import at line %d: %v.", lineNo, err)
		}
	}
}

func (s *Store) importLine(ctx context.Context, lineNo int, text []byte, o ImportOptions, res *ImportResult) error {
	bad := func(format string, args ...any) error {
		return kvflow.Errorf(kvflow.EINVALID, "Line %d of the import: "+format, append([]any{lineNo}, args...)...)
	}
	var l ExportLine
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return bad("not an export line: %s.", JSONErrorText(err))
	}
	if to, ok := o.NamespaceMap[l.Namespace]; ok {
		l.Namespace = to
	}
	if err := ValidateNamespace(l.Namespace); err != nil {
		return bad("%s", kvflow.ErrorMessage(err))
	}
	if o.Allow != nil {
		if err := o.Allow(l.Namespace); err != nil {
			return kvflow.Errorf(kvflow.ErrorCode(err), "Line %d of the import: %s", lineNo, kvflow.ErrorMessage(err))
		}
	}
	if len(l.Value) == 0 {
		return bad("the value is missing.")
	}
	v, err := ValueFromJSON(l.Type, l.Value)
	if err != nil {
		return bad("%s", kvflow.ErrorMessage(err))
	}
	so := SetOptions{Description: l.Description, NoOverwrite: o.OnConflict != OnConflictOverwrite, Sensitive: l.Sensitive}
	if l.Expires != nil {
		if !l.Expires.After(s.now()) {
			res.Expired++
			return nil
		}
		so.ExpiresAt = *l.Expires
	}
	_, err = s.Set(ctx, l.Namespace, l.Key, v, so)
	switch {
	case err == nil:
		res.Written++
	case kvflow.ErrorCode(err) == kvflow.ECONFLICT && o.OnConflict == OnConflictSkip:
		res.Skipped++
	case kvflow.ErrorCode(err) == kvflow.ECONFLICT:
		return kvflow.Errorf(kvflow.ECONFLICT, "Line %d of the import: key '%s' exists in namespace '%s' and on-conflict is fail; nothing after this line was written.", lineNo, l.Key, l.Namespace)
	case kvflow.ErrorCode(err) == kvflow.EINVALID:
		return bad("%s", kvflow.ErrorMessage(err))
	default:
		return err
	}
	return nil
}

// ValueFromJSON rebuilds a typed value from its type and its JSON form as
// the API shows it (Value.JSONValue): NUMBER, BOOLEAN and JSON as JSON,
// the others as a JSON string.
func ValueFromJSON(t Type, raw json.RawMessage) (Value, error) {
	t, err := ParseType(string(t))
	if err != nil {
		return Value{}, err
	}
	if t == JSON || t == NUMBER || t == BOOLEAN {
		return ParseAs(t, string(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return Value{}, kvflow.Errorf(kvflow.EINVALID, "A %s value must be a JSON string.", t)
	}
	return ParseAs(t, s)
}
