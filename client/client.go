// Package client is the Go client of kvflow's REST API, with the API's
// request and answer bodies. It depends only on kvflow's domain types
// (errors and typed values), never on a database driver or the template
// engine, so a program such as the Terraform provider can link it alone.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// Client talks to a kvflow server. Errors are kvflow errors rebuilt from the
// status and message: 404 is ENOTFOUND, 410 EEXPIRED, 422 EINVALID and so on;
// a server that cannot be reached, or a 404 not in kvflow's JSON (the
// address is not a kvflow API), is EUNAVAILABLE.
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:8080
	Token   string       // sent as a bearer token when set
	HTTP    *http.Client // nil: http.DefaultClient
}

// NewClient returns a client for the server at baseURL.
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token}
}

// SetOptions are the optional parts of Client.Set.
type SetOptions struct {
	// Type, when set, parses the body as this type (STRING, NUMBER, …).
	Type storage.Type
	// ContentType of the body: "" or text/plain reads it as Kestra reads
	// text (inferring the type), application/json as a JSON value.
	ContentType string
	TTL         string // ISO-8601 duration such as PT5M or P30D
	Description string
	NoOverwrite bool // fail with ECONFLICT when the key exists
	// IfVersion, when set, writes only if the entry is at this version
	// (If-Match); otherwise EPRECONDITION.
	IfVersion int64
	// IfAbsent writes only if no live entry exists (If-None-Match: *);
	// otherwise EPRECONDITION.
	IfAbsent  bool
	Sensitive bool // seal the value at rest and mask it (header sensitive: true)
}

// Set writes body as the value of ns/key.
func (c *Client) Set(ctx context.Context, ns, key, body string, o SetOptions) error {
	_, err := c.Put(ctx, ns, key, body, o)
	return err
}

// Put is Set, returning the version written (the answer's ETag; 0 from a
// server that sends none).
func (c *Client) Put(ctx context.Context, ns, key, body string, o SetOptions) (int64, error) {
	q := url.Values{}
	h := http.Header{}
	if o.ContentType != "" {
		h.Set("Content-Type", o.ContentType)
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	if o.Type != "" {
		h.Set("kv-type", string(o.Type))
	}
	if o.TTL != "" {
		h.Set("ttl", o.TTL)
	}
	if o.Description != "" {
		// A header cannot carry every text; the query parameter can.
		if httpguts.ValidHeaderFieldValue(o.Description) && isASCII(o.Description) {
			h.Set("description", o.Description)
		} else {
			q.Set("description", o.Description)
		}
	}
	if o.NoOverwrite {
		h.Set("overwrite", "false")
	}
	if o.IfVersion > 0 {
		h.Set("If-Match", ETag(o.IfVersion))
	}
	if o.IfAbsent {
		h.Set("If-None-Match", "*")
	}
	if o.Sensitive {
		h.Set("sensitive", "true")
	}
	var version int64
	err := c.doResp(ctx, "PUT", kvPath(ns, key), q, h, strings.NewReader(body), nil, func(resp *http.Response) {
		version, _ = strconv.ParseInt(strings.Trim(resp.Header.Get("ETag"), `"`), 10, 64)
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// SetValue writes a typed value: its text with its type.
func (c *Client) SetValue(ctx context.Context, ns, key string, v storage.Value, o SetOptions) error {
	o.Type, o.ContentType = v.Type, "text/plain; charset=utf-8"
	return c.Set(ctx, ns, key, v.Text(), o)
}

// Get returns the type and the JSON value of ns/key, as the API shows it.
func (c *Client) Get(ctx context.Context, ns, key string) (storage.Type, json.RawMessage, error) {
	var tv struct {
		Type  storage.Type    `json:"type"`
		Value json.RawMessage `json:"value"`
	}
	if err := c.do(ctx, "GET", kvPath(ns, key), nil, nil, nil, &tv); err != nil {
		return "", nil, err
	}
	return tv.Type, tv.Value, nil
}

// GetValue returns ns/key as a typed value.
func (c *Client) GetValue(ctx context.Context, ns, key string) (storage.Value, error) {
	v, _, err := c.GetTyped(ctx, ns, key)
	return v, err
}

// GetTyped returns ns/key as a typed value, and whether it is sensitive
// (the value is in clear: the caller masks it for display).
func (c *Client) GetTyped(ctx context.Context, ns, key string) (storage.Value, bool, error) {
	return c.getTyped(ctx, ns, key, nil)
}

func (c *Client) getTyped(ctx context.Context, ns, key string, q url.Values) (storage.Value, bool, error) {
	var tv struct {
		Type      storage.Type    `json:"type"`
		Value     json.RawMessage `json:"value"`
		Sensitive bool            `json:"sensitive"`
	}
	if err := c.do(ctx, "GET", kvPath(ns, key), q, nil, nil, &tv); err != nil {
		return storage.Value{}, false, err
	}
	v, err := ValueOf(tv.Type, tv.Value)
	return v, tv.Sensitive, err
}

// ValueOf rebuilds a typed value from the API's type and JSON value.
func ValueOf(t storage.Type, raw json.RawMessage) (storage.Value, error) {
	if t == storage.JSON || t == storage.NUMBER || t == storage.BOOLEAN {
		return storage.ParseAs(t, string(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return storage.Value{}, kvflow.Errorf(kvflow.EINTERNAL, "The server sent a %s value that is not a JSON string: %s.", t, kvflow.Clip(string(raw)))
	}
	return storage.ParseAs(t, s)
}

// Detail returns the metadata and the value of ns/key.
// A sensitive value is "******": Reveal gives it.
func (c *Client) Detail(ctx context.Context, ns, key string) (*EntryDetail, error) {
	return c.detail(ctx, ns, key, nil)
}

// Reveal is Detail with a sensitive value shown (?reveal=true).
func (c *Client) Reveal(ctx context.Context, ns, key string) (*EntryDetail, error) {
	return c.detail(ctx, ns, key, url.Values{"reveal": {"true"}})
}

func (c *Client) detail(ctx context.Context, ns, key string, q url.Values) (*EntryDetail, error) {
	var d struct {
		Entry
		Value json.RawMessage `json:"value"`
	}
	if err := c.do(ctx, "GET", kvPath(ns, key)+"/detail", q, nil, nil, &d); err != nil {
		return nil, err
	}
	return &EntryDetail{Entry: d.Entry, Value: d.Value}, nil
}

// ListOptions select a page of entries.
type ListOptions struct {
	Prefix     string
	Contains   string // keys containing it anywhere
	IgnoreCase bool   // Contains ignores case
	Limit      int    // 0: every entry in one answer
	Cursor     string // the next cursor of the previous page
	Offset     int    // skip this many entries first
}

// query encodes o's filters and paging.
func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.Prefix != "" {
		q.Set("prefix", o.Prefix)
	}
	if o.Contains != "" {
		q.Set("q", o.Contains)
		if o.IgnoreCase {
			q.Set("ci", "true")
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if o.Offset > 0 {
		q.Set("offset", strconv.Itoa(o.Offset))
	}
	return q
}

// List returns entries of ns sorted by key, and the cursor of the next page
// ("" on the last one, and always when Limit is 0).
func (c *Client) List(ctx context.Context, ns string, o ListOptions) ([]Entry, string, error) {
	q := o.query()
	var out []Entry
	var next string
	err := c.doResp(ctx, "GET", "/api/v1/namespaces/"+url.PathEscape(ns)+"/kv", q, nil, nil, &out, func(resp *http.Response) {
		next = resp.Header.Get(NextCursorHeader)
	})
	return out, next, err
}

// ListAll returns one page of entries across the namespaces the server lets
// the API reach (namespace, when set, and those below it), sorted by
// namespace then key, with the number of entries the filters select.
// o.Limit 0 is the server's default page; o.Cursor is not used.
func (c *Client) ListAll(ctx context.Context, namespace string, o ListOptions) ([]Entry, int, error) {
	q := o.query()
	q.Del("cursor")
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	var out []Entry
	var total int
	err := c.doResp(ctx, "GET", "/api/v1/kv", q, nil, nil, &out, func(resp *http.Response) {
		total, _ = strconv.Atoi(resp.Header.Get(TotalCountHeader))
	})
	return out, total, err
}

// Keys returns every live key of ns starting with prefix, in order.
func (c *Client) Keys(ctx context.Context, ns, prefix string) ([]string, error) {
	entries, _, err := c.List(ctx, ns, ListOptions{Prefix: prefix})
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	return keys, nil
}

// Inherited returns the entries ns inherits from its ancestors, nearest first.
func (c *Client) Inherited(ctx context.Context, ns string) ([]Entry, error) {
	var out []Entry
	err := c.do(ctx, "GET", "/api/v1/namespaces/"+url.PathEscape(ns)+"/kv/inheritance", nil, nil, nil, &out)
	return out, err
}

// Delete removes ns/key and reports whether it existed.
func (c *Client) Delete(ctx context.Context, ns, key string) (bool, error) {
	var deleted bool
	err := c.do(ctx, "DELETE", kvPath(ns, key), nil, nil, nil, &deleted)
	return deleted, err
}

// BulkDelete removes keys of ns and returns those that existed.
func (c *Client) BulkDelete(ctx context.Context, ns string, keys []string) ([]string, error) {
	if keys == nil {
		keys = []string{}
	}
	body, _ := json.Marshal(KeysBody{Keys: keys})
	var out KeysBody
	err := c.do(ctx, "DELETE", "/api/v1/namespaces/"+url.PathEscape(ns)+"/kv", nil, jsonHeader(), bytes.NewReader(body), &out)
	return out.Keys, err
}

// DeleteAll removes every key of ns (not those of namespaces below it) and
// returns the keys that existed.
func (c *Client) DeleteAll(ctx context.Context, ns string) ([]string, error) {
	var out KeysBody
	err := c.do(ctx, "DELETE", "/api/v1/namespaces/"+url.PathEscape(ns)+"/kv", url.Values{"all": {"true"}}, nil, nil, &out)
	return out.Keys, err
}

// Purge removes expired entries (or, with All, every matching entry).
func (c *Client) Purge(ctx context.Context, req PurgeRequest) (PurgeResult, error) {
	body, _ := json.Marshal(req)
	var out PurgeResult
	err := c.do(ctx, "POST", "/api/v1/kv/purge", nil, jsonHeader(), bytes.NewReader(body), &out)
	return out, err
}

// Namespaces lists the namespaces with their flow and key counts.
func (c *Client) Namespaces(ctx context.Context) ([]Namespace, error) {
	var out []Namespace
	err := c.do(ctx, "GET", "/api/v1/namespaces", nil, nil, nil, &out)
	return out, err
}

// CreateNamespace creates a namespace; ECONFLICT when it was already created.
func (c *Client) CreateNamespace(ctx context.Context, id string) (Namespace, error) {
	body, _ := json.Marshal(map[string]string{"id": id})
	var out Namespace
	err := c.do(ctx, "POST", "/api/v1/namespaces", nil, jsonHeader(), bytes.NewReader(body), &out)
	return out, err
}

// CreateFlow stores a new flow from its YAML. An invalid flow comes back as
// FieldErrors (EINVALID), every problem with its line.
func (c *Client) CreateFlow(ctx context.Context, source string) (Flow, error) {
	var out Flow
	err := c.do(ctx, "POST", "/api/v1/flows", nil, yamlHeader(), strings.NewReader(source), &out)
	return out, err
}

// UpdateFlow replaces the YAML of an existing flow.
func (c *Client) UpdateFlow(ctx context.Context, ns, id, source string) (Flow, error) {
	var out Flow
	err := c.do(ctx, "PUT", flowPath(ns, id), nil, yamlHeader(), strings.NewReader(source), &out)
	return out, err
}

// Flow returns a stored flow.
func (c *Client) Flow(ctx context.Context, ns, id string) (Flow, error) {
	var out Flow
	err := c.do(ctx, "GET", flowPath(ns, id), nil, nil, nil, &out)
	return out, err
}

// Flows lists the flows of ns ("" for every namespace).
func (c *Client) Flows(ctx context.Context, ns string) ([]Flow, error) {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
	}
	var out []Flow
	err := c.do(ctx, "GET", "/api/v1/flows", q, nil, nil, &out)
	return out, err
}

// DeleteFlow deletes a flow; ENOTFOUND when there was none.
func (c *Client) DeleteFlow(ctx context.Context, ns, id string) error {
	return c.do(ctx, "DELETE", flowPath(ns, id), nil, nil, nil, nil)
}

// Execute starts an execution of a stored flow; with wait it returns once
// the execution has ended.
func (c *Client) Execute(ctx context.Context, ns, flowID string, inputs map[string]any, wait bool) (*Execution, error) {
	return c.ExecuteWith(ctx, ns, flowID, inputs, ExecuteOptions{Wait: wait})
}

// ExecuteOptions are the choices of one execution beside its inputs.
type ExecuteOptions struct {
	Wait       bool // answer when the execution ends
	KVSnapshot bool // pin its KV reads to the store as it was at its start
}

// ExecuteWith starts an execution of a stored flow as o asks.
func (c *Client) ExecuteWith(ctx context.Context, ns, flowID string, inputs map[string]any, o ExecuteOptions) (*Execution, error) {
	if inputs == nil {
		inputs = map[string]any{}
	}
	body, err := json.Marshal(inputs)
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Inputs cannot be sent as JSON: %v.", err)
	}
	q := url.Values{}
	if o.Wait {
		q.Set("wait", "true")
	}
	if o.KVSnapshot {
		q.Set("kvSnapshot", "true")
	}
	var out Execution
	err = c.do(ctx, "POST", "/api/v1/executions/"+url.PathEscape(ns)+"/"+url.PathEscape(flowID), q, jsonHeader(), bytes.NewReader(body), &out)
	return &out, err
}

// Execution returns an execution with its task runs and outputs.
func (c *Client) Execution(ctx context.Context, id string) (*Execution, error) {
	var out Execution
	err := c.do(ctx, "GET", "/api/v1/executions/"+url.PathEscape(id), nil, nil, nil, &out)
	return &out, err
}

// ExecutionLogs returns an execution's log lines, oldest first.
func (c *Client) ExecutionLogs(ctx context.Context, id string) ([]LogLine, error) {
	var out []LogLine
	err := c.do(ctx, "GET", "/api/v1/executions/"+url.PathEscape(id)+"/logs", nil, nil, nil, &out)
	return out, err
}

// Executions lists executions, newest first, of ns ("" for all) and flowID
// ("" for all; needs ns).
func (c *Client) Executions(ctx context.Context, ns, flowID string) ([]*Execution, error) {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
	}
	if flowID != "" {
		q.Set("flowId", flowID)
	}
	var out []*Execution
	err := c.do(ctx, "GET", "/api/v1/executions", q, nil, nil, &out)
	return out, err
}

// Kill stops a running execution (DELETE /api/v1/executions/{id}/kill) and
// returns it as it is once the kill is requested; it ends KILLED. ENOTFOUND
// when there is no such execution.
func (c *Client) Kill(ctx context.Context, id string) (*Execution, error) {
	var out Execution
	err := c.do(ctx, "DELETE", "/api/v1/executions/"+url.PathEscape(id)+"/kill", nil, nil, nil, &out)
	return &out, err
}

// Ready checks the server's database and object store.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, "GET", "/readyz", nil, nil, nil, nil)
}

func kvPath(ns, key string) string {
	return "/api/v1/namespaces/" + url.PathEscape(ns) + "/kv/" + url.PathEscape(key)
}

func flowPath(ns, id string) string {
	return "/api/v1/flows/" + url.PathEscape(ns) + "/" + url.PathEscape(id)
}

func yamlHeader() http.Header {
	return http.Header{"Content-Type": {"application/x-yaml"}}
}

func jsonHeader() http.Header {
	return http.Header{"Content-Type": {"application/json"}}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, h http.Header, body io.Reader, out any) error {
	return c.doResp(ctx, method, path, q, h, body, out, nil)
}

// doResp sends a request and decodes a 2xx JSON answer into out (when not
// nil); seen, when set, sees the response first.
func (c *Client) doResp(ctx context.Context, method, path string, q url.Values, h http.Header, body io.Reader, out any, seen func(*http.Response)) error {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return kvflow.Errorf(kvflow.EINVALID, "Server URL %q is invalid: %v.", c.BaseURL, err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: fmt.Sprintf("Cannot reach the kvflow server at %s: %v.", c.BaseURL, unwrapURLError(err)), Err: err}
	}
	defer resp.Body.Close()
	if seen != nil {
		seen(resp)
	}
	if resp.StatusCode >= 300 {
		return c.responseError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber() // a value or an output keeps every digit
	if err := dec.Decode(out); err != nil {
		return &kvflow.Error{Code: kvflow.EINTERNAL, Message: fmt.Sprintf("The answer of %s %s is not the JSON expected: %v.", method, path, err), Err: err}
	}
	return nil
}

// responseError rebuilds the kvflow error of an error response. A refused
// token is told from what the client sent, not in the server's words (which
// speak of HTTP headers): callers add how their user gives a token.
func (c *Client) responseError(resp *http.Response) error {
	if resp.StatusCode == http.StatusUnauthorized {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		if c.Token == "" {
			return kvflow.Errorf(kvflow.EUNAUTHORIZED, "The kvflow server at %s requires an API token.", c.BaseURL)
		}
		return kvflow.Errorf(kvflow.EUNAUTHORIZED, "The API token is wrong for the kvflow server at %s.", c.BaseURL)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body ErrorBody
	msg := ""
	if json.Unmarshal(b, &body) == nil && body.Message != "" {
		msg = body.Message
		if len(body.Errors) > 0 && resp.StatusCode == http.StatusUnprocessableEntity {
			return FieldErrors(body.Errors)
		}
	} else if resp.StatusCode == http.StatusNotFound {
		// kvflow answers every /api path in JSON: this is another server.
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "The address %s is not a kvflow API: %s %s answered %s.", c.BaseURL, resp.Request.Method, resp.Request.URL.Path, resp.Status)
	} else {
		msg = fmt.Sprintf("The server answered %s.", resp.Status)
		if text := strings.TrimSpace(string(b)); text != "" && len(text) < 200 {
			msg = fmt.Sprintf("The server answered %s: %s", resp.Status, text)
		}
	}
	return &kvflow.Error{Code: CodeOf(resp.StatusCode), Message: msg}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Increment adds by to the NUMBER at ns/key atomically (see the server's
// POST .../kv/{key}/increment); ttl and description apply when not empty.
func (c *Client) Increment(ctx context.Context, ns, key string, by storage.Value, ttl, description string) (storage.Value, Written, error) {
	req := IncrementBody{By: by.JSONValue(), Description: description}
	if ttl != "" {
		req.TTL = ttl
	}
	body, err := marshal(req)
	if err != nil {
		return storage.Value{}, Written{}, kvflow.Errorf(kvflow.EINVALID, "Increment %s cannot be sent: %v.", storage.Describe(by), err)
	}
	var out struct {
		Value     json.RawMessage `json:"value"`
		Version   int64           `json:"version"`
		Sensitive bool            `json:"sensitive"`
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if err := c.do(ctx, "POST", kvPath(ns, key)+"/increment", nil, h, bytes.NewReader(body), &out); err != nil {
		return storage.Value{}, Written{}, err
	}
	v, err := ValueOf(storage.NUMBER, out.Value)
	return v, Written{out.Version, out.Sensitive}, err
}

// Written is what the server says of an entry it has just written.
type Written struct {
	Version   int64
	Sensitive bool // the value is sensitive: show it masked unless asked
}

// SetMany writes a batch (see storage.ParseBatch: a list of {key, value,
// type?, ttl?, description?} or a map of key to value), all or nothing.
func (c *Client) SetMany(ctx context.Context, ns string, batch any) ([]BatchResult, error) {
	body, err := marshal(batch)
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "The batch cannot be sent: %v.", err)
	}
	var out []BatchResult
	h := http.Header{"Content-Type": {"application/json"}}
	err = c.do(ctx, "PUT", "/api/v1/namespaces/"+url.PathEscape(ns)+"/kv", nil, h, bytes.NewReader(body), &out)
	return out, err
}

// Export copies the JSON Lines export of ns (see the server's GET
// .../kv/export) to w and returns the number of lines.
func (c *Client) Export(ctx context.Context, ns, prefix string, includeChildren bool, w io.Writer) (int, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if includeChildren {
		q.Set("includeChildren", "true")
	}
	lines := 0
	var copyErr error
	err := c.doResp(ctx, "GET", "/api/v1/namespaces/"+url.PathEscape(ns)+"/kv/export", q, nil, nil, nil, func(resp *http.Response) {
		if resp.StatusCode >= 300 {
			return
		}
		cw := &lineCounter{w: w}
		if _, err := io.Copy(cw, resp.Body); err != nil {
			copyErr = kvflow.Errorf(kvflow.EUNAVAILABLE, "The export of namespace '%s' was cut short: %v.", ns, err)
		}
		lines = cw.n
		if msg := resp.Trailer.Get(ExportErrorTrailer); msg != "" && copyErr == nil {
			lines-- // the last line says why
			copyErr = kvflow.Errorf(kvflow.EINTERNAL, "The export of namespace '%s' stopped after %d entries: %s", ns, lines, msg)
		}
	})
	if err == nil {
		err = copyErr
	}
	return lines, err
}

// ExportErrorTrailer is the HTTP trailer of an export that stopped on an
// error after its first lines; the stream then ends with a line
// {"error": …} that no import takes for an entry.
const ExportErrorTrailer = "Kvflow-Export-Error"

type lineCounter struct {
	w io.Writer
	n int
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n += bytes.Count(p, []byte{'\n'})
	return l.w.Write(p)
}

// Import sends JSON Lines to the server's POST .../kv/import.
func (c *Client) Import(ctx context.Context, ns string, r io.Reader, onConflict string, namespaceMap map[string]string) (storage.ImportResult, error) {
	q := url.Values{}
	if onConflict != "" {
		q.Set("onConflict", onConflict)
	}
	for from, to := range namespaceMap {
		q.Add("namespaceMap", from+"="+to)
	}
	var res storage.ImportResult
	h := http.Header{"Content-Type": {"application/x-ndjson"}}
	// An error answer holds the counts so far beside its message.
	counts := func(resp *http.Response) {
		if resp.StatusCode >= 300 {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			json.Unmarshal(b, &res)
			resp.Body = io.NopCloser(bytes.NewReader(b))
		}
	}
	err := c.doResp(ctx, "POST", "/api/v1/namespaces/"+url.PathEscape(ns)+"/kv/import", q, h, r, &res, counts)
	return res, err
}

// Patch applies a JSON merge patch (RFC 7386) to ns/key atomically: an
// object merges into a JSON object value, a null removes a field, anything
// else replaces; a missing key is created. ifVersion > 0 sends If-Match (a
// mismatch is EPRECONDITION). It returns the new value and version.
func (c *Client) Patch(ctx context.Context, ns, key string, patch any, ifVersion int64) (storage.Value, Written, error) {
	body, err := marshal(patch)
	if err != nil {
		return storage.Value{}, Written{}, kvflow.Errorf(kvflow.EINVALID, "The patch of key '%s' cannot be sent: %v.", key, err)
	}
	h := http.Header{"Content-Type": {"application/merge-patch+json"}}
	if ifVersion > 0 {
		h.Set("If-Match", ETag(ifVersion))
	}
	var out struct {
		Type      string          `json:"type"`
		Value     json.RawMessage `json:"value"`
		Version   int64           `json:"version"`
		Sensitive bool            `json:"sensitive"`
	}
	if err := c.do(ctx, "PATCH", kvPath(ns, key), nil, h, bytes.NewReader(body), &out); err != nil {
		return storage.Value{}, Written{}, err
	}
	t, err := storage.ParseType(out.Type)
	if err != nil {
		return storage.Value{}, Written{}, err
	}
	v, err := ValueOf(t, out.Value)
	return v, Written{out.Version, out.Sensitive}, err
}
