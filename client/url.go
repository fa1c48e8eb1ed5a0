package client

import (
	"net/url"
	"strings"

	"github.com/kvflow/kvflow"
)

// ServerURL reads a server address as a user types it: a full URL
// (http://host:8080), a bare host:port (http is assumed), with or without a
// trailing /, /api/v1 or /ui/. It returns the base URL the client wants.
func ServerURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", kvflow.Errorf(kvflow.EINVALID, "The server URL is empty: expected http://host:port or host:port.")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", kvflow.Errorf(kvflow.EINVALID, "Server URL %q is invalid: expected http://host:port, https://host or host:port.", kvflow.Clip(raw))
	}
	p := strings.TrimRight(u.Path, "/")
	for _, suffix := range []string{"/api/v1", "/ui"} {
		p = strings.TrimSuffix(p, suffix)
	}
	u.Path, u.RawPath = strings.TrimRight(p, "/"), ""
	return u.String(), nil
}
