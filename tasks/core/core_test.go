package core_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/internal/logtest"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/netguard"
	"github.com/kvflow/kvflow/internal/taskrun"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/tasks/core"
	"github.com/kvflow/kvflow/template"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }

const flowNS = "company.team"

// env is a store, a bucket and the logs of the tasks run on them.
type env struct {
	t      testing.TB
	store  *storage.Store
	bucket storage.Bucket
	logs   *logSink
}

func newEnv(t testing.TB, pair func(testing.TB, storage.Options) testpair.Pair) *env {
	p := pair(t, storage.Options{})
	return &env{t: t, store: p.Store, bucket: p.Bucket, logs: &logSink{}}
}

func (e *env) rc() *plugin.RunContext {
	return &plugin.RunContext{
		Namespace: flowNS, FlowID: "f", ExecutionID: "e1", TaskID: "t", TaskRunID: "tr1",
		Store: e.store, Bucket: e.bucket,
		Templates: template.New(template.Options{KV: e.store}),
		Data: template.Context{
			"flow":    map[string]any{"id": "f", "namespace": flowNS},
			"inputs":  map[string]any{"name": "world", "n": int64(3), "list": []any{"a", "b"}, "obj": map[string]any{"k": "v"}},
			"outputs": map[string]any{},
		},
		Logger: slog.New(e.logs),
		// The Download tests' server listens on 127.0.0.1.
		HTTPClient: netguard.Client(netguard.MustParse("127.0.0.1")),
	}
}

func decode(t testing.TB, typ, src string) (plugin.Task, []kvflow.FieldError) {
	t.Helper()
	def, ok := plugin.Default.Lookup(typ)
	if !ok {
		t.Fatalf("task type %s is not registered", typ)
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatalf("bad test YAML %q: %v", src, err)
	}
	return taskrun.DecodeTask(def, n.Content[0], "")
}

func (e *env) run(typ, src string) (plugin.Outputs, error) {
	e.t.Helper()
	task, errs := decode(e.t, typ, src)
	if len(errs) > 0 {
		e.t.Fatalf("decoding %s %q: %v", typ, src, errs)
	}
	return taskrun.Call(context.Background(), task, e.rc())
}

type (
	logSink = logtest.Sink
	logLine = logtest.Line
)

func wantErr(t testing.TB, err error, code string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s containing %q", code, parts)
	}
	if got := kvflow.ErrorCode(err); got != code {
		t.Errorf("error code = %s, want %s (message: %s)", got, code, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestLog(t *testing.T) {
	e := newEnv(t, testpair.Local)
	ctx := context.Background()
	if _, err := e.store.Set(ctx, flowNS, "my_json_key", storage.String(`{"name": "John Doe", "age": 32, "address": {"city": "Paris"}}`), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, src string
		want      []logLine
		code      string // expected error code, "" for success
		errParts  []string
	}{
		{"String_OneLineAtInfo", `message: "hello {{ inputs.name }}"`,
			[]logLine{{Level: slog.LevelInfo, Msg: "hello world"}}, "", nil},
		{"List_EachItemLogged", "message:\n  - first\n  - \"n={{ inputs.n }}\"\n  - 7",
			[]logLine{{Level: slog.LevelInfo, Msg: "first"}, {Level: slog.LevelInfo, Msg: "n=3"}, {Level: slog.LevelInfo, Msg: "7"}}, "", nil},
		{"LevelWarn_LoggedAtWarn", "message: careful\nlevel: WARN",
			[]logLine{{Level: slog.LevelWarn, Msg: "careful"}}, "", nil},
		{"LevelTrace_BelowDebug", "message: detail\nlevel: trace",
			[]logLine{{Level: core.LevelTrace, Msg: "detail"}}, "", nil},
		{"LevelError_LoggedAtError", "message: bad\nlevel: ERROR",
			[]logLine{{Level: slog.LevelError, Msg: "bad"}}, "", nil},
		{"SingleExpressionList_PrintedAsJSON", `message: "{{ inputs.list }}"`,
			[]logLine{{Level: slog.LevelInfo, Msg: `["a","b"]`}}, "", nil},
		{"SeedJSONFlow_FieldsOfKVJSON",
			"message:\n  - \"Name: {{ json(kv('my_json_key')).name }}\"\n  - \"Age: {{ json(kv('my_json_key')).age }}\"\n  - \"City: {{ json(kv('my_json_key')).address.city }}\"",
			[]logLine{{Level: slog.LevelInfo, Msg: "Name: John Doe"}, {Level: slog.LevelInfo, Msg: "Age: 32"}, {Level: slog.LevelInfo, Msg: "City: Paris"}}, "", nil},
		{"TemplateErrorInList_NothingLoggedAndItemNamed", "message:\n  - fine\n  - \"{{ inputs.missing }}\"",
			nil, kvflow.EINVALID, []string{"message[1]", "missing"}},
		{"MissingKV_NotFound", `message: "{{ kv('nope') }}"`,
			nil, kvflow.ENOTFOUND, []string{"property 'message'", "nope"}},
		{"LevelFromTemplateUnknown_Invalid", "message: x\nlevel: \"{{ 'LOUD' }}\"",
			nil, kvflow.EINVALID, []string{"property 'level'", `"LOUD"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.logs = &logSink{}
			e.t = t
			out, err := e.run(core.LogType, c.src)
			if c.code != "" {
				wantErr(t, err, c.code, c.errParts...)
			} else {
				mustOK(t, err)
				if len(out) != 0 {
					t.Errorf("outputs = %v, want none", out)
				}
			}
			if !reflect.DeepEqual(e.logs.Lines(), c.want) {
				t.Fatalf("logged %v, want %v", e.logs.Lines(), c.want)
			}
		})
	}
}

func TestReturn(t *testing.T) {
	e := newEnv(t, testpair.Local)
	for _, c := range []struct {
		name, src string
		want      any
	}{
		{"Format_RenderedText", `format: "{{ inputs.n }} items for {{ flow.id }}"`, "3 items for f"},
		{"SingleExpressionNumber_Text", `format: "{{ inputs.n }}"`, "3"},
		{"SingleExpressionMap_JSONText", `format: "{{ inputs.obj }}"`, `{"k":"v"}`},
		{"Literal_AsIs", `format: plain`, "plain"},
		{"Unset_Null", `{}`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			out, err := e.run(core.ReturnType, c.src)
			mustOK(t, err)
			if v, ok := out["value"]; !ok || !reflect.DeepEqual(v, c.want) {
				t.Fatalf("outputs = %#v, want value %#v", out, c.want)
			}
		})
	}
}

func TestValidate_Literals_LoadTimeErrorsNameTheProperty(t *testing.T) {
	for _, c := range []struct {
		name, typ, src, field string
		parts                 []string
	}{
		{"Log_LevelUnknown", core.LogType, "message: x\nlevel: LOUD", "level", []string{`"LOUD"`, "TRACE, DEBUG, INFO, WARN or ERROR"}},
		{"Log_MessageMissing", core.LogType, "level: INFO", "message", []string{"required"}},
		{"Log_MessageMap", core.LogType, "message:\n  a: b", "message", []string{"a map"}},
		{"Log_MessageListWithMap", core.LogType, "message:\n  - ok\n  - {a: b}", "message", []string{"item 1", "a map"}},
		{"Return_FormatList", core.ReturnType, "format: [a]", "format", []string{"a list"}},
		{"Download_URIMissing", core.DownloadType, "method: GET", "uri", []string{"required"}},
		{"Download_URINotHTTP", core.DownloadType, "uri: ftp://example.com/x", "uri", []string{`"ftp://example.com/x"`, "http or https"}},
		{"Download_URIRelative", core.DownloadType, "uri: /data.csv", "uri", []string{`"/data.csv"`}},
		{"Download_MethodUnknown", core.DownloadType, "uri: http://example.com\nmethod: FETCH", "method", []string{`"FETCH"`}},
		{"Download_HeaderMap", core.DownloadType, "uri: http://example.com\nheaders:\n  X-A: {b: c}", "headers", []string{`"X-A"`}},
		{"Download_FailOnEmptyNotBoolean", core.DownloadType, "uri: http://example.com\nfailOnEmptyResponse: often", "failOnEmptyResponse", []string{"STRING, 5 bytes, sha256:93c68148"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errs := decode(t, c.typ, c.src)
			for _, fe := range errs {
				if fe.Field != c.field {
					continue
				}
				ok := true
				for _, p := range c.parts {
					ok = ok && strings.Contains(fe.Message, p)
				}
				if ok {
					return
				}
			}
			t.Fatalf("errors %v: none on field %q containing %q", errs, c.field, c.parts)
		})
	}
}

func TestRegistry_CoreTypes_Registered(t *testing.T) {
	for _, typ := range []string{core.LogType, core.ReturnType, core.DownloadType} {
		if _, ok := plugin.Default.Lookup(typ); !ok {
			t.Fatalf("%s is not registered", typ)
		}
	}
}

// server serves the Download test routes.
func server(t testing.TB, big []byte) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/csv/orders.csv", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		io.WriteString(w, "order_id,total\n1,9.99\n2,20.00\n")
	})
	mux.HandleFunc("/attachment", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `attachment; filename="../../report 2024.json"`)
		io.WriteString(w, `{"ok":true}`)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.Header.Get("X-Token"), body)
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write(big) // no Content-Length is set for a body this size: chunked
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/csv/orders.csv", http.StatusFound)
	})
	mux.HandleFunc("/boom", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database is on fire", http.StatusInternalServerError)
	})
	mux.HandleFunc("/forbidden", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestDownload_SQLiteDir(t *testing.T)     { testDownload(t, testpair.Local) }
func TestDownload_PostgresMinIO(t *testing.T) { testDownload(t, testpair.Service) }

func testDownload(t *testing.T, pair func(testing.TB, storage.Options) testpair.Pair) {
	e := newEnv(t, pair)
	big := make([]byte, 6<<20+123)
	rand.NewChaCha8([32]byte{1}).Read(big)
	srv := server(t, big)
	ctx := context.Background()

	// read returns the bytes behind a kestra:/// URI.
	read := func(t *testing.T, uri string) []byte {
		t.Helper()
		rc, err := e.rc().OpenFile(ctx, uri)
		if err != nil {
			t.Fatalf("OpenFile(%s): %v", uri, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	stored := func(t *testing.T, out plugin.Outputs, suffix string, want []byte) {
		t.Helper()
		uri, _ := out["uri"].(string)
		if !strings.HasPrefix(uri, "kestra:///_executions/company/team/f/e1/") || !strings.HasSuffix(uri, suffix) {
			t.Fatalf("uri = %q, want kestra:///_executions/company/team/f/e1/...%s", uri, suffix)
		}
		if got := read(t, uri); !bytes.Equal(got, want) {
			t.Fatalf("stored %d bytes (sha %x), want %d (sha %x)", len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
		}
		if out["length"] != int64(len(want)) {
			t.Fatalf("length = %#v, want %d", out["length"], len(want))
		}
		if out["code"] != int64(200) {
			t.Fatalf("code = %#v, want 200", out["code"])
		}
	}

	t.Run("OK_StoresBodyAndOutputsURICodeLength", func(t *testing.T) {
		e.t = t
		out, err := e.run(core.DownloadType, "uri: "+srv.URL+"/csv/orders.csv")
		mustOK(t, err)
		stored(t, out, "/orders.csv", []byte("order_id,total\n1,9.99\n2,20.00\n"))
		h, _ := out["headers"].(map[string]any)
		if !reflect.DeepEqual(h["Content-Type"], []any{"text/csv"}) {
			t.Fatalf("headers = %#v, want Content-Type [text/csv]", out["headers"])
		}
	})
	t.Run("ContentDisposition_NamesFileSafely", func(t *testing.T) {
		e.t = t
		out, err := e.run(core.DownloadType, "uri: "+srv.URL+"/attachment")
		mustOK(t, err)
		stored(t, out, "/report_2024.json", []byte(`{"ok":true}`))
	})
	t.Run("Redirect_Followed", func(t *testing.T) {
		e.t = t
		out, err := e.run(core.DownloadType, "uri: "+srv.URL+"/redirect")
		mustOK(t, err)
		stored(t, out, "/orders.csv", []byte("order_id,total\n1,9.99\n2,20.00\n"))
	})
	t.Run("MethodHeadersBody_Sent", func(t *testing.T) {
		e.t = t
		out, err := e.run(core.DownloadType, "uri: "+srv.URL+"/echo\nmethod: post\nheaders:\n  X-Token: \"{{ inputs.name }}\"\nbody: hi")
		mustOK(t, err)
		stored(t, out, "/echo", []byte("POST world hi"))
	})
	t.Run("LargeBody_StreamedIntact", func(t *testing.T) {
		e.t = t
		out, err := e.run(core.DownloadType, "uri: "+srv.URL+"/big")
		mustOK(t, err)
		stored(t, out, "/big", big)
	})
	t.Run("NotFound_ClearErrorNamingURI", func(t *testing.T) {
		e.t = t
		_, err := e.run(core.DownloadType, "uri: "+srv.URL+"/missing.csv")
		wantErr(t, err, kvflow.ENOTFOUND, srv.URL+"/missing.csv", "HTTP 404 Not Found")
	})
	t.Run("ServerError_UnavailableWithBodyStart", func(t *testing.T) {
		e.t = t
		_, err := e.run(core.DownloadType, "uri: "+srv.URL+"/boom")
		wantErr(t, err, kvflow.EUNAVAILABLE, srv.URL+"/boom", "HTTP 500", "database is on fire")
	})
	t.Run("Forbidden_Invalid", func(t *testing.T) {
		e.t = t
		_, err := e.run(core.DownloadType, "uri: "+srv.URL+"/forbidden")
		wantErr(t, err, kvflow.EINVALID, "HTTP 403")
	})
	t.Run("CredentialsInURI_RedactedInErrors", func(t *testing.T) {
		e.t = t
		u := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/missing"
		_, err := e.run(core.DownloadType, "uri: "+u)
		wantErr(t, err, kvflow.ENOTFOUND, "user:xxxxx@")
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error %q shows the password", err)
		}
	})
	t.Run("ConnectionRefused_UnavailableNamingURI", func(t *testing.T) {
		e.t = t
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL + "/x.csv"
		dead.Close()
		_, err := e.run(core.DownloadType, "uri: "+url)
		wantErr(t, err, kvflow.EUNAVAILABLE, "Cannot download "+url, "refused")
	})
	t.Run("EmptyBody_FailsByDefault", func(t *testing.T) {
		e.t = t
		_, err := e.run(core.DownloadType, "uri: "+srv.URL+"/empty")
		wantErr(t, err, kvflow.EINVALID, srv.URL+"/empty", "empty", "failOnEmptyResponse")
	})
	t.Run("EmptyBodyAllowed_StoresEmptyFile", func(t *testing.T) {
		e.t = t
		out, err := e.run(core.DownloadType, "uri: "+srv.URL+"/empty\nfailOnEmptyResponse: false")
		mustOK(t, err)
		stored(t, out, "/empty", []byte{})
	})
	t.Run("URIFromTemplateNotHTTP_Invalid", func(t *testing.T) {
		e.t = t
		_, err := e.run(core.DownloadType, `uri: "{{ 'file:///etc/passwd' }}"`)
		wantErr(t, err, kvflow.EINVALID, "property 'uri'", "http or https")
	})
}

// BenchmarkDownload_6MiB shows memory per download stays far below the body
// size (see B/op): the body streams to the bucket.
func BenchmarkDownload_6MiB(b *testing.B) {
	e := newEnv(b, testpair.Local)
	big := make([]byte, 6<<20)
	srv := server(b, big)
	task, errs := decode(b, core.DownloadType, "uri: "+srv.URL+"/big")
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	rc := e.rc()
	b.ReportAllocs()
	b.SetBytes(int64(len(big)))
	for b.Loop() {
		if _, err := task.Run(context.Background(), rc); err != nil {
			b.Fatal(err)
		}
	}
}
