package client

import (
	"testing"

	"github.com/kvflow/kvflow"
)

func TestServerURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"localhost:8080/", "http://localhost:8080"},
		{"http://host:8080/api/v1", "http://host:8080"},
		{"http://host:8080/api/v1/", "http://host:8080"},
		{"https://kv.example.com/ui/", "https://kv.example.com"},
		{"https://example.com/kvflow/api/v1", "https://example.com/kvflow"},
		{" http://h:1 ", "http://h:1"},
	} {
		got, err := ServerURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ServerURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "ftp://h", "http://", "http://h:1?x=y", "://x"} {
		if got, err := ServerURL(bad); kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("ServerURL(%q) = %q, %v; want EINVALID", bad, got, err)
		}
	}
}
