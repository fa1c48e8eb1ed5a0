package core

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
)

// Download fetches a file over HTTP into the execution's object storage:
// io.kestra.plugin.core.http.Download.
//
// Properties: uri (http or https), method (default GET), headers (a map of
// strings or lists of strings), body, failOnEmptyResponse (default true).
// The body streams to the object store with bounded memory.
//
// Outputs: uri, the kestra:///_executions/... URI of the stored file; code,
// the HTTP status; length, the bytes stored; headers, the response headers
// (name → list of values). Loopback, link-local, private and other internal
// addresses are refused unless the configuration allows them (download.allow),
// redirects included. A status outside 2xx, a network failure or an
// empty body (unless failOnEmptyResponse is false) fails the task with a
// message naming the URI.
type Download struct {
	URI                 plugin.Property[string]         `yaml:"uri" required:"true"`
	Method              plugin.Property[string]         `yaml:"method"`
	Headers             plugin.Property[map[string]any] `yaml:"headers"`
	Body                plugin.Property[string]         `yaml:"body"`
	FailOnEmptyResponse plugin.Property[bool]           `yaml:"failOnEmptyResponse"`
}

// Validate checks the literal properties when the flow loads.
func (t *Download) Validate() error {
	var errs []error
	if !t.URI.IsSet() {
		errs = append(errs, invalid("uri", "the property is required."))
	} else if s, ok := t.URI.Raw().(string); ok && !t.URI.IsTemplate() {
		if _, err := parseURI(s); err != nil {
			errs = append(errs, invalid("uri", "%s", kvflow.ErrorMessage(err)))
		}
	}
	if m, ok := t.Method.Raw().(string); ok && !t.Method.IsTemplate() {
		if _, err := parseMethod(m); err != nil {
			errs = append(errs, invalid("method", "%s", kvflow.ErrorMessage(err)))
		}
	}
	if h, ok := t.Headers.Raw().(map[string]any); ok && !t.Headers.IsTemplate() {
		if _, err := headerValues(h); err != nil {
			errs = append(errs, invalid("headers", "%s", kvflow.ErrorMessage(err)))
		}
	}
	errs = append(errs, t.URI.Check(), t.Headers.Check(), t.Body.Check(), t.FailOnEmptyResponse.Check())
	return joinErrors(errs...)
}

// Run downloads the file.
func (t *Download) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	raw, err := t.URI.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	u, err := parseURI(raw)
	if err != nil {
		return nil, propErr(rc, "uri", err)
	}
	where := u.Redacted()
	methodText, err := t.Method.Get(ctx, rc, "GET")
	if err != nil {
		return nil, err
	}
	method, err := parseMethod(methodText)
	if err != nil {
		return nil, propErr(rc, "method", err)
	}
	hm, err := t.Headers.Get(ctx, rc, nil)
	if err != nil {
		return nil, err
	}
	headers, err := headerValues(hm)
	if err != nil {
		return nil, propErr(rc, "headers", err)
	}
	body, err := t.Body.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	failOnEmpty, err := t.FailOnEmptyResponse.Get(ctx, rc, true)
	if err != nil {
		return nil, err
	}

	var reqBody io.Reader
	if t.Body.IsSet() {
		reqBody = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reqBody)
	if err != nil {
		return nil, propErr(rc, "uri", kvflow.Errorf(kvflow.EINVALID, "Cannot build a request for %s: %v.", where, err))
	}
	for k, vs := range headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := rc.HTTP().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Download of %s stopped: %w.", where, ctx.Err())
		}
		if kvflow.ErrorCode(err) == kvflow.EFORBIDDEN { // netguard refused the address
			return nil, kvflow.Errorf(kvflow.EFORBIDDEN, "Cannot download %s: %s.", where, kvflow.ErrorMessage(err))
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URI, unredacted
		}
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot download %s: %v.", where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, statusError(where, resp)
	}

	// Peek one byte so an empty body fails before anything is stored.
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	if _, err := br.Peek(1); err == io.EOF && failOnEmpty {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Download of %s returned an empty body (HTTP %d); set failOnEmptyResponse: false to accept it.", where, resp.StatusCode)
	} else if err != nil && err != io.EOF {
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot download %s: reading the body failed: %v.", where, err)
	}
	cr := &countingReader{r: br}
	name := filename(resp)
	stored, err := rc.PutFile(ctx, name, cr)
	if err != nil {
		if cr.err != nil { // the download failed, not the store
			return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot download %s: reading the body failed after %d bytes: %v.", where, cr.n, cr.err)
		}
		return nil, err
	}
	if cr.n == 0 {
		rc.Log(ctx, slog.LevelWarn, fmt.Sprintf("File %s is empty", where))
	}
	rc.Log(ctx, slog.LevelDebug, fmt.Sprintf("Downloaded %s: %d bytes stored as %s", where, cr.n, stored))
	return plugin.Outputs{
		"uri":     stored,
		"code":    int64(resp.StatusCode),
		"length":  cr.n,
		"headers": responseHeaders(resp.Header),
	}, nil
}

func parseURI(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown := s
		if err == nil {
			shown = u.Redacted()
		}
		return nil, kvflow.Errorf(kvflow.EINVALID, "%q is not an http or https URL such as https://example.com/data.csv.", kvflow.Clip(shown))
	}
	return u, nil
}

func parseMethod(s string) (string, error) {
	m := strings.ToUpper(strings.TrimSpace(s))
	switch m {
	case "":
		return http.MethodGet, nil
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
		return m, nil
	}
	return "", kvflow.Errorf(kvflow.EINVALID, "%q is not an HTTP method; expected GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS.", kvflow.Clip(s))
}

// headerValues reads the headers property: each value a scalar or a list.
func headerValues(m map[string]any) (map[string][]string, error) {
	out := map[string][]string{}
	for k, v := range m {
		vals, ok := v.([]any)
		if !ok {
			vals = []any{v}
		}
		for _, e := range vals {
			switch x := e.(type) {
			case string:
				out[k] = append(out[k], x)
			case int, int64, float64, bool:
				out[k] = append(out[k], fmt.Sprint(x))
			default:
				return nil, kvflow.Errorf(kvflow.EINVALID, "Header %q: expected a string or a list of strings, got %s.", k, kind(e))
			}
		}
	}
	return out, nil
}

// statusError reports a non-2xx answer with the start of its body, which
// often says why.
func statusError(where string, resp *http.Response) error {
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	detail := strings.Join(strings.Fields(strings.ToValidUTF8(string(snippet), "?")), " ")
	if detail != "" {
		detail = ": " + strings.TrimSuffix(detail, ".")
	}
	code := kvflow.EUNAVAILABLE
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		code = kvflow.ENOTFOUND
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		code = kvflow.EINVALID
	}
	return kvflow.Errorf(code, "Download of %s failed: the server answered HTTP %s%s.", where, resp.Status, detail)
}

// filename is the stored file's name: Content-Disposition's filename, else
// the last segment of the final URL's path, else "download".
func filename(resp *http.Response) string {
	if cd := resp.Header.Get("Content-Disposition"); cd != "" {
		if _, params, err := mime.ParseMediaType(cd); err == nil && params["filename"] != "" {
			return params["filename"]
		}
	}
	if resp.Request != nil && resp.Request.URL != nil {
		if base := path.Base(resp.Request.URL.Path); base != "/" && base != "." && base != "" {
			return base
		}
	}
	return "download"
}

func responseHeaders(h http.Header) map[string]any {
	out := make(map[string]any, len(h))
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := make([]any, len(h[k]))
		for i, v := range h[k] {
			vs[i] = v
		}
		out[k] = vs
	}
	return out
}

// countingReader counts the bytes read and keeps the first read error.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
