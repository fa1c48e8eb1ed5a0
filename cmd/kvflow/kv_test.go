package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/app"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/config"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// kvCase is one CLI call and what it must print and return.
type kvCase struct {
	args     string // split on spaces; a '|' inside an argument stands for a space
	stdin    string
	wantOut  string // exact stdout, unless empty
	outHas   string // stdout contains this
	errHas   string // stderr contains this
	wantCode int
}

// runKVCases runs the cases in order, each as a fresh process would.
func runKVCases(t *testing.T, dataDir string, extra []string, cases []kvCase) {
	t.Helper()
	for _, tc := range cases {
		args := strings.Fields(tc.args)
		for i := range args {
			args[i] = strings.ReplaceAll(args[i], "|", " ")
		}
		args = append(args, extra...)
		out, errOut, code := kvflowCmdIn(t, dataDir, tc.stdin, args...)
		if code != tc.wantCode {
			t.Errorf("kvflow %s: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.wantCode, out, errOut)
			continue
		}
		if tc.wantOut != "" && out != tc.wantOut {
			t.Errorf("kvflow %s: stdout %q, want %q", tc.args, out, tc.wantOut)
		}
		if !strings.Contains(out, tc.outHas) {
			t.Errorf("kvflow %s: stdout %q lacks %q", tc.args, out, tc.outHas)
		}
		if !strings.Contains(errOut, tc.errHas) {
			t.Errorf("kvflow %s: stderr %q lacks %q", tc.args, errOut, tc.errHas)
		}
	}
}

// kvflowCmdIn is kvflowCmd with stdin.
func kvflowCmdIn(t *testing.T, dataDir, stdin string, args ...string) (string, string, int) {
	t.Helper()
	t.Setenv("KVFLOW_DATA_DIR", dataDir)
	t.Setenv("KVFLOW_CONFIG", "")
	t.Setenv("KVFLOW_DATABASE_URL", "")
	t.Setenv("KVFLOW_STORAGE_URL", "")
	t.Setenv("KVFLOW_API_TOKEN", "")
	t.Setenv("KVFLOW_SERVER", "")
	t.Setenv("KVFLOW_ENDPOINT", "")
	t.Setenv("KVFLOW_LOG_FORMAT", "")
	t.Setenv("KVFLOW_LOG_LEVEL", "")
	t.Setenv("XDG_CONFIG_HOME", dataDir+"-xdg") // no configuration file
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// kvSession is the same session for the local store and a server: the
// commands answer alike.
func kvSession() []kvCase {
	return []kvCase{
		{args: "kv set company.team my_key Hello|World", wantOut: "Stored key 'my_key' in namespace 'company.team'.\n"},
		{args: "kv set acc.j a 1 --json", wantOut: `{"key":"a","namespace":"acc.j","stored":true,"version":1}` + "\n"},
		{args: "kv get company.team my_key", wantOut: "Hello World\n"},
		{args: "kv get company.team my_key --json", wantOut: `{"type":"STRING","value":"Hello World"}` + "\n"},
		{args: "kv set company.team count 42 --ttl P30D --description a|counter"},
		{args: "kv get company.team count --json", wantOut: `{"type":"NUMBER","value":42}` + "\n"},
		{args: "kv set company.team code 007 --type STRING"},
		{args: "kv get company.team code --json", wantOut: `{"type":"STRING","value":"007"}` + "\n"},
		{args: "kv set company.team doc - --type json", stdin: `{"name": "John Doe", "age": 32}`},
		{args: "kv get company.team doc", wantOut: `{"age":32,"name":"John Doe"}` + "\n"},
		{args: "kv set company.team when 2024-07-15"},
		{args: "kv get company.team when --json", wantOut: `{"type":"DATE","value":"2024-07-15"}` + "\n"},
		{args: "kv set company.team count 43 --no-overwrite", wantCode: 6, errHas: "Key already exists"},
		{args: "kv get company.team missing", wantCode: 3, errHas: "No value found for key 'missing' in namespace 'company.team'"},
		{args: "kv set company.team bad$key 1", wantCode: 2, errHas: `"bad$key"`},
		{args: "kv set Company k 1", wantCode: 2, errHas: `Namespace "Company" is invalid`},
		{args: "kv set company.team x abc --type NUMBER", wantCode: 2, errHas: "Value (STRING, 3 bytes, sha256:ba7816bf) is not a valid NUMBER"},
		{args: "kv set company.team x 1 --type FLOAT", wantCode: 2, errHas: `"FLOAT" is unknown`},
		{args: "kv set company.team x 1 --if-version 0", wantCode: 2, errHas: "--if-version 0 is not a version: versions start at 1 (to write only a key that does not exist, use --no-overwrite)."},
		{args: "kv patch company.team x {} --if-version 0", wantCode: 2, errHas: "--if-version 0 is not a version: versions start at 1."},
		{args: "kv restore company.team x 1 --if-version 0", wantCode: 2, errHas: "--if-version 0 is not a version"},
		{args: "kv set company.team x 1 --ttl 30|days", wantCode: 2, errHas: `TTL "30 days" is not an ISO-8601 duration such as PT5M, P30D or P1DT5S, or a whole number of seconds`},
		{args: "kv set company.team x 1 --ttl=-5", wantCode: 2, errHas: "or a whole number of seconds"},
		{args: "kv get company.team x", wantCode: 3},
		{args: "kv keys company.team", wantOut: "code\ncount\ndoc\nmy_key\nwhen\n"},
		{args: "kv keys company.team --prefix co", wantOut: "code\ncount\n"},
		{args: "kv keys company.team --prefix count --json", outHas: `[{"key":"count","type":"NUMBER","description":"a counter","version":1,"creationDate":"`},
		{args: "kv keys empty.ns --json", wantOut: "[]\n"},
		{args: "kv delete company.team my_key", wantOut: "Deleted key 'my_key' from namespace 'company.team'.\n"},
		{args: "kv delete company.team my_key", wantOut: "Key 'my_key' did not exist in namespace 'company.team'.\n"},
		{args: "kv delete company.team my_key --json", wantOut: `{"deleted":false}` + "\n"},
		{args: "kv set company.team short 1 --ttl PT0.1S"},
		{args: "kv purge --all", wantCode: 2, errHas: "--namespace"},
	}
}

func TestKVCommands_LocalStore(t *testing.T) {
	dir := t.TempDir()
	runKVCases(t, dir, nil, kvSession())
	time.Sleep(150 * time.Millisecond) // "short" expires
	runKVCases(t, dir, nil, []kvCase{
		{args: "kv get company.team short", wantCode: 3, errHas: "expired"},
		{args: "kv purge --json", wantOut: `{"purged":{"company.team":1},"total":1}` + "\n"},
		{args: "kv purge --namespace company --include-children --key co* --all", wantOut: "Purged 2 entries. (company.team: 2)\n"},
		{args: "kv keys company.team", wantOut: "doc\nwhen\n"},
	})
}

func TestKVCommands_Server(t *testing.T) {
	pair := testpair.Local(t, storageOpts)
	url := startAPIServer(t, pair, "cli-token")
	extra := []string{"--server", url, "--token", "cli-token"}
	runKVCases(t, t.TempDir(), extra, kvSession())
	time.Sleep(150 * time.Millisecond)
	runKVCases(t, t.TempDir(), extra, []kvCase{
		{args: "kv get company.team short", wantCode: 3, errHas: "expired"},
		{args: "kv purge --json", wantOut: `{"purged":{"company.team":1},"total":1}` + "\n"},
		{args: "kv purge --namespace company --include-children --key co* --all", wantOut: "Purged 2 entries. (company.team: 2)\n"},
		{args: "kv keys company.team", wantOut: "doc\nwhen\n"},
	})
	// What the server stored is what the CLI said.
	if _, v, err := pair.Store.Get(context.Background(), "company.team", "when"); err != nil || v.Type != "DATE" {
		t.Fatalf("stored when = %v, %v", v, err)
	}
	runKVCases(t, t.TempDir(), []string{"--server", url}, []kvCase{
		{args: "kv get company.team doc", wantCode: 5, errHas: "requires an API token.\nGive the server's token with --token or $KVFLOW_API_TOKEN."},
		{args: "kv get company.team doc --token wrong", wantCode: 5, errHas: "The API token is wrong for the kvflow server at " + url},
	})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + l.Addr().String()
	l.Close()
	runKVCases(t, t.TempDir(), []string{"--server", closed}, []kvCase{
		{args: "kv get company.team doc", wantCode: 4, errHas: "Cannot reach the kvflow server"},
	})
	// A wrong base path reaches another server, not a missing key.
	runKVCases(t, t.TempDir(), []string{"--server", url + "/foo", "--token", "cli-token"}, []kvCase{
		{args: "kv get company.team doc", wantCode: 4, errHas: "The address " + url + "/foo is not a kvflow API: GET /foo/api/v1/namespaces/company.team/kv/doc answered 404 Not Found."},
	})
}

// startAPIServer serves pair on a random loopback port until the test ends.
func startAPIServer(t *testing.T, pair testpair.Pair, token string) string {
	t.Helper()
	srv := api.New(api.Config{Store: pair.Store, DB: pair.DB, Token: token, SweepInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// lockedBuffer is a buffer a running command and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// `kvflow server` loads a flow folder, serves the API and the UI, and stops
// cleanly when its context ends.
func TestServerCommand_ServesFlowsAndStops(t *testing.T) {
	dataDir := t.TempDir()
	flows := t.TempDir()
	writeFlow(t, flows, "counter.yaml", counterFlow)
	t.Setenv("KVFLOW_DATA_DIR", dataDir)
	t.Setenv("KVFLOW_CONFIG", "")
	t.Setenv("KVFLOW_DATABASE_URL", "")
	t.Setenv("KVFLOW_STORAGE_URL", "")
	t.Setenv("KVFLOW_API_TOKEN", "")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()

	root := newRoot()
	var out, errOut lockedBuffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"server", "--addr", addr, "--flows", flows})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("server exited: %v\n%s", err, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 30s:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := client.NewClient(base, "")
	f, err := c.Flow(ctx, "company.team", "counter")
	if err != nil || f.Revision != 1 {
		t.Fatalf("flow loaded from --flows = %+v, %v", f, err)
	}
	ex, err := c.Execute(ctx, "company.team", "counter", nil, true)
	if err != nil || ex.State != "SUCCESS" {
		t.Fatalf("execute counter = %+v, %v", ex, err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(base + "/")
	if err != nil || resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET / = %v, %v; want a redirect to /ui/", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/ui/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /ui/ = %v, %v", resp, err)
	}
	resp.Body.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server stopped with %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("server did not stop within a minute of its context ending")
	}
	if logs := errOut.String(); !strings.Contains(logs, "flows loaded") || !strings.Contains(logs, "shutting down") {
		t.Fatalf("server logs lack the flow load or the shutdown:\n%s", logs)
	}

	// Same folder again: nothing new is stored, so the revision stays.
	n, changed, err := loadFlowDirOnce(t, dataDir, flows)
	if err != nil || n != 1 || changed != 0 {
		t.Fatalf("reloading the same folder: %d flows, %d changed, %v; want 1, 0", n, changed, err)
	}
}

func loadFlowDirOnce(t *testing.T, dataDir, flows string) (int, int, error) {
	t.Helper()
	a := openTestApp(t, dataDir)
	return loadFlowDir(context.Background(), flows, a.DB, nil)
}

// Refusals at start: an exposed address without a token, broken flow
// files, a configured address that is not one.
func TestServerCommand_RefusesToStart(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KVFLOW_ADDR", "notanaddr")
	if _, errOut, code := kvflowCmdIn(t, dir, "", "server"); code != 2 || !strings.Contains(errOut, `server.addr: "notanaddr" is not host:port`) {
		t.Fatalf("server with KVFLOW_ADDR=notanaddr: exit %d, stderr %s; want 2", code, errOut)
	}
	t.Setenv("KVFLOW_ADDR", "")
	_, errOut, code := kvflowCmdIn(t, dir, "", "server", "--addr", "0.0.0.0:0")
	if code != 5 || !strings.Contains(errOut, "--insecure") {
		t.Fatalf("server on 0.0.0.0 without a token: exit %d, stderr %s", code, errOut)
	}
	flows := t.TempDir()
	writeFlow(t, flows, "a.yaml", "id: a\nnamespace: company.team\ntasks:\n  - id: x\n    type: no.such.Task\n")
	writeFlow(t, flows, "b.yml", "id: b\nnamespace: Company\ntasks: []\n")
	_, errOut, code = kvflowCmdIn(t, dir, "", "server", "--flows", flows, "--addr", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errOut, filepath.Join(flows, "a.yaml")+":5") || !strings.Contains(errOut, filepath.Join(flows, "b.yml")) {
		t.Fatalf("server with broken flows: exit %d, stderr %s; want 2 naming both files", code, errOut)
	}
}

var storageOpts = storage.Options{}

// openTestApp opens the embedded default in dataDir.
func openTestApp(t *testing.T, dataDir string) *app.App {
	t.Helper()
	cfg := config.Config{DataDir: dataDir}
	cfg.Defaults()
	a, err := app.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}
