package core_test

import (
	"context"
	"github.com/kvflow/kvflow/internal/testpair"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/netguard"
	"github.com/kvflow/kvflow/internal/taskrun"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/tasks/core"
)

// hitServer serves "ok" on addr ("127.0.0.1:0", "[::1]:0") and counts requests.
func hitServer(t *testing.T, addr string, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	hits := &atomic.Int64{}
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	}
	s := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h.ServeHTTP(w, r)
	})}}
	s.Start()
	t.Cleanup(s.Close)
	return s, hits
}

// download runs a Download of uri with the given client (nil: the default).
func (e *env) download(uri string, client *http.Client) (plugin.Outputs, error) {
	task, errs := decode(e.t, core.DownloadType, "uri: "+uri)
	if len(errs) > 0 {
		e.t.Fatalf("decoding: %v", errs)
	}
	rc := e.rc()
	rc.HTTPClient = client
	return taskrun.Call(context.Background(), task, rc)
}

// By default Download refuses internal addresses, checked on the address
// dialed: literal addresses, names resolving to loopback, and redirects.
func TestDownload_RefusesInternalAddresses(t *testing.T) {
	e := newEnv(t, testpair.Local)
	v4, v4hits := hitServer(t, "127.0.0.1:0", nil)
	v6, v6hits := hitServer(t, "[::1]:0", nil)
	_, port, _ := net.SplitHostPort(v4.Listener.Addr().String())

	for _, tc := range []struct {
		name, uri string
		parts     []string
	}{
		{"Loopback", v4.URL + "/x.csv", []string{"address 127.0.0.1 is a loopback address", v4.URL}},
		{"LoopbackIPv6", v6.URL + "/x.csv", []string{"address ::1 is a loopback address"}},
		{"CloudMetadata", "http://169.254.169.254/latest/meta-data/", []string{"address 169.254.169.254 is a link-local address"}},
		{"NameResolvingToLoopback", "http://localhost:" + port + "/x.csv", []string{"host 'localhost' resolves to 127.0.0.1, a loopback address"}},
		{"Private", "http://10.255.255.1/", []string{"address 10.255.255.1 is a private address"}},
		{"Unspecified", "http://0.0.0.0:" + port + "/", []string{"address 0.0.0.0 is an unspecified address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			_, err := e.download(tc.uri, nil)
			wantErr(t, err, kvflow.EFORBIDDEN, append(tc.parts, "Cannot download", "KVFLOW_DOWNLOAD_ALLOW")...)
		})
	}
	if n := v4hits.Load() + v6hits.Load(); n != 0 {
		t.Errorf("the loopback servers got %d requests, want 0", n)
	}

	t.Run("RedirectToLoopback", func(t *testing.T) {
		e.t = t
		// The first hop is allowed by name; the redirect to 127.0.0.1 is not.
		target, hits := hitServer(t, "127.0.0.1:0", nil)
		hop, _ := hitServer(t, "127.0.0.1:0", http.RedirectHandler(target.URL+"/secret", http.StatusFound))
		_, hopPort, _ := net.SplitHostPort(hop.Listener.Addr().String())
		_, err := e.download("http://localhost:"+hopPort+"/go", netguard.Client(netguard.MustParse("localhost")))
		wantErr(t, err, kvflow.EFORBIDDEN, "address 127.0.0.1 is a loopback address")
		if hits.Load() != 0 {
			t.Errorf("the redirect target got %d requests, want 0", hits.Load())
		}
	})

	t.Run("AllowListOptsIn", func(t *testing.T) {
		e.t = t
		for _, allow := range []string{"127.0.0.0/8", "127.0.0.1", "localhost", "*"} {
			out, err := e.download("http://localhost:"+port+"/x.csv", netguard.Client(netguard.MustParse(allow)))
			if err != nil || out["code"] != int64(200) {
				t.Errorf("allowed by %q: %v, %v", allow, out, err)
			}
		}
		if _, err := e.download(v6.URL+"/x.csv", netguard.Client(netguard.MustParse("127.0.0.0/8"))); kvflow.ErrorCode(err) != kvflow.EFORBIDDEN {
			t.Errorf("::1 allowed by 127.0.0.0/8: %v", err)
		}
	})
}
