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
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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

// exportAhead bounds how many values Export holds at once: readers run at
// most this many entries ahead of the writer, so memory stays flat.
const exportAhead = 64

// Export writes every live entry selected as JSON Lines, namespace by
// namespace and key by key, a page at a time, so memory stays flat. Expired
// entries are left out. It returns the number of lines written.
func (s *Store) Export(ctx context.Context, w io.Writer, o ExportOptions) (int, error) {
	nss, err := s.exportNamespaces(ctx, o)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	// Lines go out whole: the buffer is flushed between lines, never inside
	// one, so a stop leaves complete lines. On a stop, the lines buffered are
	// written too once some are out (else nothing is, and the caller can
	// still answer with an error alone).
	out := false
	put := func(line []byte) error {
		if bw.Buffered() > 0 && bw.Available() < len(line) {
			if err := bw.Flush(); err != nil {
				return err
			}
			out = true
		}
		if _, err := bw.Write(line); err != nil {
			return err
		}
		out = out || bw.Buffered() == 0 // a line past the buffer went straight out
		return nil
	}
	stop := func(err error) error {
		if out {
			bw.Flush()
		}
		return err
	}
	n := 0
	var line []byte
	for _, ns := range nss {
		type listed struct {
			page Page
			err  error
		}
		list := func(after string) chan listed {
			c := make(chan listed, 1)
			go func() {
				page, err := s.List(ctx, ns, ListOptions{Prefix: o.Prefix, After: after, Limit: MaxListLimit})
				c <- listed{page, err}
			}()
			return c
		}
		pending := list("")
		for {
			got := <-pending
			page, err := got.page, got.err
			if err != nil {
				return n, stop(err)
			}
			if page.Next != "" {
				pending = list(page.Next) // the next page is listed while this one is written
			}
			// 8 readers fetch values in page order, up to exportAhead
			// entries ahead of the writer, which writes them in key order.
			results := make([]exportResult, len(page.Entries))
			for i := range results {
				results[i].done = make(chan struct{})
			}
			slots := make(chan struct{}, exportAhead)
			next := make(chan int)
			stopReaders := make(chan struct{})
			var wg sync.WaitGroup
			go func() {
				defer close(next)
				for i := range page.Entries {
					select {
					case slots <- struct{}{}:
					case <-stopReaders:
						return
					}
					select {
					case next <- i:
					case <-stopReaders:
						return
					}
				}
			}()
			for r := 0; r < 8; r++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						res := &results[i]
						res.e, res.v, res.err = s.exportRead(ctx, ns, &page.Entries[i])
						close(res.done)
					}
				}()
			}
			var werr error
			for i := range results {
				res := &results[i]
				<-res.done
				switch {
				case res.err != nil:
					werr = res.err
				case res.e == nil: // deleted or expired since the page was read
				default:
					if line, werr = appendExportLine(line[:0], res.e, res.v); werr == nil {
						if werr = put(line); werr == nil {
							n++
						}
					}
				}
				*res = exportResult{} // drop the value
				<-slots
				if werr != nil {
					break
				}
			}
			close(stopReaders)
			wg.Wait()
			if werr != nil {
				return n, stop(werr)
			}
			if page.Next == "" {
				break
			}
		}
	}
	return n, bw.Flush()
}

// exportResult is one value Export read, ready once done is closed.
type exportResult struct {
	done chan struct{}
	e    *Entry
	v    Value
	err  error
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

// appendExportLine appends e and v as one ExportLine of JSON and a newline.
// It writes the line by hand: encoding/json would scan the value twice more
// (once to check the raw message, once to compact it), the hot spot of an
// export of text values.
func appendExportLine(b []byte, e *Entry, v Value) ([]byte, error) {
	b = append(b, `{"namespace":`...)
	b = appendJSONString(b, e.Namespace)
	b = append(b, `,"key":`...)
	b = appendJSONString(b, e.Key)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, string(v.Type))
	b = append(b, `,"value":`...)
	switch x := v.JSONValue().(type) {
	case string:
		b = appendJSONString(b, x)
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(x); err != nil {
			return b, kvflow.Errorf(kvflow.EINTERNAL, "Cannot export key '%s' in namespace '%s': %v.", e.Key, e.Namespace, err)
		}
		b = append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
	}
	if e.Description != "" {
		b = append(b, `,"description":`...)
		b = appendJSONString(b, e.Description)
	}
	if e.Expires != nil {
		b = appendJSONTime(append(b, `,"expirationDate":`...), *e.Expires)
	}
	if e.Version != 0 {
		b = strconv.AppendInt(append(b, `,"version":`...), e.Version, 10)
	}
	b = appendJSONTime(append(b, `,"creationDate":`...), e.Created)
	b = appendJSONTime(append(b, `,"updateDate":`...), e.Updated)
	if e.Sensitive {
		b = append(b, `,"sensitive":true`...)
	}
	return append(b, "}\n"...), nil
}

// appendJSONTime appends t as encoding/json writes a time.Time.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it without HTML escaping (U+2028 and U+2029 included; invalid
// UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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

// CheckOnConflict says what is wrong with a conflict policy of Import, or
// nil; "" is skip.
func CheckOnConflict(policy string) error {
	switch policy {
	case "", OnConflictSkip, OnConflictOverwrite, OnConflictFail:
		return nil
	}
	return kvflow.Errorf(kvflow.EINVALID, "On-conflict %q is unknown: expected skip, overwrite or fail.", kvflow.Clip(policy))
}

// ImportOptions control Import.
type ImportOptions struct {
	OnConflict   string            // skip (default), overwrite or fail
	NamespaceMap map[string]string // old namespace → new, its children with it (the longest match wins)
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

// importBatch bounds the lines Import writes together: their objects upload
// in parallel, then their metadata is written in one transaction.
const (
	importBatch      = 500
	importBatchBytes = 16 << 20 // and the bytes of their values
	importUploads    = 64
)

// Import reads JSON Lines as Export writes them and writes each entry with
// its type, description and absolute expiry, a batch of lines at a time:
// their value objects upload in parallel, then their metadata is written in
// one transaction, while the next batch uploads. A line that does not parse
// stops the import with its line number; with OnConflict fail an existing
// key stops it too. Lines before the stop are written, none after it.
func (s *Store) Import(ctx context.Context, r io.Reader, o ImportOptions) (ImportResult, error) {
	var res ImportResult
	if err := CheckOnConflict(o.OnConflict); err != nil {
		return res, err
	}
	if o.OnConflict == "" {
		o.OnConflict = OnConflictSkip
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan importReady, 1) // one batch uploads while the previous one commits
	go s.importRead(rctx, r, o, ready)
	var err error
	for b := range ready {
		switch {
		case err != nil: // stopped: what was uploaded meanwhile is dropped
			s.importDrop(ctx, b.items, nil)
			continue
		case b.err != nil:
			err = b.err
		default:
			err = s.importCommit(ctx, b.items, o, &res)
			if err == nil {
				res.Expired += b.expired
				err = b.stop
			}
		}
		if err != nil {
			stop()
		}
	}
	return res, err
}

// importReady is a batch of lines whose objects are uploaded; stop is the
// error to report once it is written (a bad line after it), err one that
// stops the import before it (its objects already dropped).
type importReady struct {
	items   []importItem
	expired int
	stop    error
	err     error
}

// importRead parses lines into batches, uploads each batch's objects and
// hands it over, until the input ends, a line is bad or ctx is cancelled.
func (s *Store) importRead(ctx context.Context, r io.Reader, o ImportOptions, ready chan<- importReady) {
	defer close(ready)
	send := func(b importReady) bool {
		if b.err == nil && len(b.items) > 0 {
			if b.err = s.importUpload(ctx, b.items); b.err != nil {
				b.items = nil
			}
		}
		select {
		case ready <- b:
			return b.err == nil && b.stop == nil
		case <-ctx.Done():
			s.importDrop(ctx, b.items, nil)
			return false
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var b importReady
	size := 0
	for lineNo := 1; ; lineNo++ {
		text, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(text)) > 0 {
			it, perr := s.importLine(lineNo, text, o)
			switch {
			case perr != nil:
				b.stop = perr
				send(b)
				return
			case it == nil:
				b.expired++
			default:
				b.items, size = append(b.items, *it), size+len(it.body)
			}
		}
		if errors.Is(err, io.EOF) {
			send(b)
			return
		} else if err != nil {
			b.stop = kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot read the import at line %d: %v.", lineNo, err)
			send(b)
			return
		}
		if len(b.items) == importBatch || size >= importBatchBytes {
			if !send(b) {
				return
			}
			b, size = importReady{}, 0
		}
	}
}

// importItem is one parsed line, its value encoded, ready to write.
type importItem struct {
	line int
	e    Entry
	body []byte
}

// importLine parses and checks one line; nil when it has expired.
func (s *Store) importLine(lineNo int, text []byte, o ImportOptions) (*importItem, error) {
	bad := func(format string, args ...any) error {
		return kvflow.Errorf(kvflow.EINVALID, "Line %d of the import: "+format, append([]any{lineNo}, args...)...)
	}
	// Dates are read as text here, so a bad one is named.
	var raw struct {
		ExportLine
		Expires *string `json:"expirationDate"`
		Created *string `json:"creationDate"`
		Updated *string `json:"updateDate"`
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, bad("not an export line: %s.", JSONErrorText(err))
	}
	l := raw.ExportLine
	for _, d := range []struct {
		field string
		text  *string
		to    **time.Time
	}{{"expirationDate", raw.Expires, &l.Expires}, {"creationDate", raw.Created, &l.Created}, {"updateDate", raw.Updated, &l.Updated}} {
		if d.text == nil {
			continue
		}
		t, err := ParseInstant(*d.text)
		if err != nil {
			return nil, bad("%s %q is not an RFC 3339 instant such as 2024-07-15T06:10:33Z.", d.field, kvflow.Clip(*d.text))
		}
		*d.to = &t
	}
	l.Namespace = o.MapNamespace(l.Namespace)
	if err := ValidateNamespace(l.Namespace); err != nil {
		return nil, bad("%s", kvflow.ErrorMessage(err))
	}
	if o.Allow != nil {
		if err := o.Allow(l.Namespace); err != nil {
			return nil, kvflow.Errorf(kvflow.ErrorCode(err), "Line %d of the import: %s", lineNo, kvflow.ErrorMessage(err))
		}
	}
	if len(l.Value) == 0 {
		return nil, bad("the value is missing.")
	}
	v, err := ValueFromJSON(l.Type, l.Value)
	if err != nil {
		return nil, bad("%s", kvflow.ErrorMessage(err))
	}
	if err := s.checkSet(l.Namespace, l.Key, SetOptions{Description: l.Description}); err != nil {
		return nil, bad("%s", kvflow.ErrorMessage(err))
	}
	if err := checkValue(v); err != nil {
		return nil, bad("%s", kvflow.ErrorMessage(err))
	}
	var buf bytes.Buffer
	if err := EncodeION(&buf, v); err != nil {
		return nil, bad("the value cannot be encoded: %v.", err)
	}
	if buf.Len() > MaxValueSize {
		return nil, bad("the value is %d bytes; the limit for a whole value is %d bytes.", buf.Len(), MaxValueSize)
	}
	body := buf.Bytes()
	if l.Sensitive { // sealed again with this store's key
		if body, err = s.seal(l.Namespace, l.Key, body); err != nil {
			return nil, kvflow.Errorf(kvflow.ErrorCode(err), "Line %d of the import: %s", lineNo, kvflow.ErrorMessage(err))
		}
	}
	it := &importItem{line: lineNo, body: body, e: Entry{Namespace: l.Namespace, Key: l.Key, Type: v.Type,
		Size: int64(len(body)), Hash: sha256Hex(body), Description: l.Description, Sensitive: l.Sensitive}}
	if l.Expires != nil {
		if !l.Expires.After(s.now()) {
			return nil, nil
		}
		exp := l.Expires.UTC().Truncate(time.Microsecond)
		it.e.Expires = &exp
	}
	return it, nil
}

// importUpload uploads a batch's objects in parallel, the small values of a
// namespace in one pack; on error it removes those it uploaded.
func (s *Store) importUpload(ctx context.Context, batch []importItem) error {
	nss := make([]string, len(batch))
	bodies := make([][]byte, len(batch))
	for i := range batch {
		nss[i], bodies[i] = batch[i].e.Namespace, batch[i].body
	}
	names, uploads := planObjects(nss, bodies)
	intents := make([]Intent, len(batch))
	for i := range batch {
		batch[i].e.Object, batch[i].body = names[i], nil // the uploads hold the bytes now
		intents[i] = Intent{Namespace: nss[i], Object: names[i]}
	}
	wait := s.recordIntents(ctx, intents)
	errs := make([]error, len(batch))
	next := make(chan upload)
	var wg sync.WaitGroup
	for w := 0; w < min(importUploads, len(uploads)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				n := int64(len(u.body))
				if err := s.bucket.Put(ctx, u.name, s.gate(bytes.NewReader(u.body), n, wait), n); err != nil {
					for _, i := range u.members {
						it := &batch[i]
						it.e.Object = ""
						errs[i] = unavailable(err, "Cannot write value for key '%s' in namespace '%s' (line %d of the import): the object store is unreachable", it.e.Key, it.e.Namespace, it.line)
					}
				}
			}
		}()
	}
	for _, u := range uploads {
		next <- u
	}
	close(next)
	wg.Wait()
	if err := wait(); err != nil {
		s.importDrop(ctx, batch, nil)
		return unavailable(err, "Cannot write values of lines %d to %d of the import: the database is unreachable", batch[0].line, batch[len(batch)-1].line)
	}
	for i, err := range errs {
		if err != nil {
			s.importDrop(ctx, batch, nil)
			if s.intentTaken(ctx, intents[i], nil) {
				return ErrIntentGone
			}
			return err
		}
	}
	return nil
}

// importDrop removes the uploaded objects of a batch that no entry points
// to: all of them, or those keep does not mark.
func (s *Store) importDrop(ctx context.Context, batch []importItem, keep []bool) {
	names := make([]string, len(batch))
	for i := range batch {
		names[i] = batch[i].e.Object
	}
	s.dropWritten(ctx, names, keep)
}

// importCommit writes an uploaded batch's metadata in one transaction under
// the conflict policy, and counts.
func (s *Store) importCommit(ctx context.Context, batch []importItem, o ImportOptions, res *ImportResult) error {
	if len(batch) == 0 {
		return nil
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	writer := WriterFrom(ctx)
	entries := make([]*Entry, len(batch))
	for i := range batch {
		batch[i].e.Updated, batch[i].e.Writer = now, writer
		entries[i] = &batch[i].e
	}
	fail := o.OnConflict == OnConflictFail
	written, err := s.index.PutEntriesCond(ctx, entries, o.OnConflict != OnConflictOverwrite, fail)
	if err != nil {
		s.importDrop(ctx, batch, nil)
		return unavailable(err, "Cannot write the metadata of lines %d to %d of the import: the database is unreachable", batch[0].line, batch[len(batch)-1].line)
	}
	s.importDrop(ctx, batch, written)
	s.wrote.fire()
	for i, ok := range written {
		switch {
		case ok:
			res.Written++
		case fail:
			it := batch[i]
			return kvflow.Errorf(kvflow.ECONFLICT, "Line %d of the import: key '%s' exists in namespace '%s' and on-conflict is fail; nothing after this line was written.", it.line, it.e.Key, it.e.Namespace)
		default:
			res.Skipped++
		}
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

// MapNamespace is ns moved by NamespaceMap: old becomes new, and old.child
// becomes new.child, by the longest old that matches.
func (o *ImportOptions) MapNamespace(ns string) string {
	best := ""
	for from := range o.NamespaceMap {
		if (ns == from || strings.HasPrefix(ns, from+".")) && len(from) > len(best) {
			best = from
		}
	}
	if best == "" {
		return ns
	}
	return o.NamespaceMap[best] + ns[len(best):]
}
