package client

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// History returns one page of a key's versions, newest first, and the
// cursor of the next page (0 on the last). limit 0 is the server's default.
func (c *Client) History(ctx context.Context, ns, key string, limit int, cursor int64) ([]Version, int64, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor > 0 {
		q.Set("cursor", strconv.FormatInt(cursor, 10))
	}
	var out []Version
	var next int64
	err := c.doResp(ctx, "GET", kvPath(ns, key)+"/versions", q, nil, nil, &out, func(r *http.Response) {
		next, _ = strconv.ParseInt(r.Header.Get(NextCursorHeader), 10, 64)
	})
	return out, next, err
}

// GetVersion returns one version's value as the API answers it.
func (c *Client) GetVersion(ctx context.Context, ns, key string, version int64) (storage.Value, error) {
	v, _, err := c.GetVersionTyped(ctx, ns, key, version)
	return v, err
}

// GetVersionTyped is GetVersion, also telling whether the version is sensitive.
func (c *Client) GetVersionTyped(ctx context.Context, ns, key string, version int64) (storage.Value, bool, error) {
	return c.getTyped(ctx, ns, key, url.Values{"version": {strconv.FormatInt(version, 10)}})
}

// Restore writes a new version holding version's value; ifMatch (0: none)
// is the version the key must be at (EPRECONDITION otherwise).
func (c *Client) Restore(ctx context.Context, ns, key string, version, ifMatch int64) (*Entry, error) {
	h := http.Header{"Content-Type": {"application/json"}}
	if ifMatch > 0 {
		h.Set("If-Match", strconv.Quote(strconv.FormatInt(ifMatch, 10)))
	}
	body, _ := json.Marshal(RestoreRequest{Version: version})
	var e Entry
	if err := c.do(ctx, "POST", kvPath(ns, key)+"/restore", nil, h, strings.NewReader(string(body)), &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// Changes returns up to limit changes of ns after since (limit 0: the
// server's default). EEXPIRED when changes after since were pruned.
func (c *Client) Changes(ctx context.Context, ns string, since int64, limit int) ([]Change, error) {
	q := url.Values{"since": {strconv.FormatInt(since, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []Change
	err := c.do(ctx, "GET", "/api/v1/namespaces/"+url.PathEscape(ns)+"/kv/changes", q, nil, nil, &out)
	return out, err
}

// Watch calls fn for each change of ns (keys starting with prefix) after
// since (<0: from now on) until ctx ends, fn fails or the server ends the
// stream. The last seq fn saw is where to resume.
func (c *Client) Watch(ctx context.Context, ns, prefix string, since int64, fn func(Change) error) error {
	return c.WatchWith(ctx, ns, WatchOptions{Prefix: prefix, Since: since}, fn)
}

// WatchOptions choose what Client.WatchWith follows.
type WatchOptions struct {
	Prefix string // keys starting with it
	Since  int64  // after this seq; <0: from now on
	Values bool   // each SET carries its value (masked when sensitive, unless Reveal)
	Reveal bool
}

// WatchWith is Watch with values on request.
func (c *Client) WatchWith(ctx context.Context, ns string, o WatchOptions, fn func(Change) error) error {
	q := url.Values{}
	if o.Prefix != "" {
		q.Set("prefix", o.Prefix)
	}
	if o.Since >= 0 {
		q.Set("since", strconv.FormatInt(o.Since, 10))
	}
	if o.Values {
		q.Set("values", "true")
	}
	if o.Reveal {
		q.Set("reveal", "true")
	}
	var ferr error
	last := o.Since
	err := c.doResp(ctx, "GET", "/api/v1/namespaces/"+url.PathEscape(ns)+"/kv/watch", q, http.Header{"Accept": {"text/event-stream"}}, nil, nil, func(r *http.Response) {
		if r.StatusCode != http.StatusOK {
			return
		}
		sc := bufio.NewScanner(r.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				event = e
			} else if data, ok := strings.CutPrefix(line, "data: "); ok && event == "error" {
				var body ErrorBody
				json.Unmarshal([]byte(data), &body)
				ferr = kvflow.Errorf(kvflow.EUNAVAILABLE, "%s", body.Message)
				return
			} else if ok {
				var ch Change
				if err := json.Unmarshal([]byte(data), &ch); err != nil {
					ferr = kvflow.Errorf(kvflow.EINTERNAL, "The server sent an event that is not a change: %.80s.", data)
					return
				}
				if ferr = fn(ch); ferr != nil {
					return
				}
				last = ch.Seq
			}
		}
		// A server that died cuts the stream without its end: say so (the
		// watch can resume after the last change seen).
		if err := sc.Err(); err != nil && ctx.Err() == nil {
			ferr = kvflow.Errorf(kvflow.EUNAVAILABLE, "The watch of namespace '%s' was cut after change %d: %v.", ns, last, err)
		}
	})
	if ferr != nil {
		return ferr
	}
	if err == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Version is one version of a key in GET .../kv/{key}/versions. A tombstone
// (change DELETE or EXPIRE) has no size or hash; updateDate is when it was deleted.
type Version struct {
	Version        int64  `json:"version"`
	Change         string `json:"change"`
	Type           string `json:"type"`
	Description    string `json:"description,omitempty"`
	Size           int64  `json:"size,omitempty"`
	Hash           string `json:"hash,omitempty"`
	Writer         string `json:"writer,omitempty"`
	CreationDate   Time   `json:"creationDate"`
	UpdateDate     Time   `json:"updateDate"`
	ExpirationDate Time   `json:"expirationDate,omitzero"`
	Sensitive      bool   `json:"sensitive,omitempty"`
}

// Change is one change in GET .../kv/changes and in watch events. Only a
// watch asked for values holds one: a SET's value as JSON, exact.
type Change struct {
	Seq       int64           `json:"seq"`
	Key       string          `json:"key"`
	Change    string          `json:"change"`
	Version   int64           `json:"version"`
	Type      string          `json:"type"`
	Writer    string          `json:"writer,omitempty"`
	Date      Time            `json:"date,omitzero"`
	Value     json.RawMessage `json:"value,omitempty"`
	Sensitive bool            `json:"sensitive,omitempty"`
}

// RestoreRequest is the body of POST .../kv/{key}/restore.
type RestoreRequest struct {
	Version int64 `json:"version"`
}
