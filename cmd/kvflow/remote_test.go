package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startCLIServer runs `kvflow server` in-process on a free port and returns
// its host:port; the server stops with the test.
func startCLIServer(t *testing.T, dataDir string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("KVFLOW_DATA_DIR", dataDir)
	t.Setenv("KVFLOW_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	var errOut lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"server", "--addr", addr}, strings.NewReader(""), &bytes.Buffer{}, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("server did not stop")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errOut.String(), "web UI at") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	logs := errOut.String()
	for _, want := range []string{" INFO  kvflow ", "data_dir=" + dataDir, "database=sqlite://", "storage=file://",
		" INFO  web UI at http://" + addr + "/ui/", "api=http://" + addr + "/api/v1", `auth="off (loopback only)"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up lines lack %q:\n%s", want, logs)
		}
	}
	return addr
}

// Flows and executions through the CLI against a real server; --server
// given as host:port with the API's path.
func TestFlowAndExecutionCommands_Server(t *testing.T) {
	addr := startCLIServer(t, t.TempDir())
	t.Setenv("KVFLOW_SERVER", "")
	srv := []string{"--server", addr + "/api/v1"}
	dir := t.TempDir()
	hello := writeFlow(t, dir, "hello.yaml", `id: hello
namespace: company.team
inputs:
  - {id: name, type: STRING, defaults: World}
tasks:
  - {id: say, type: io.kestra.plugin.core.log.Log, message: "Hello {{ inputs.name }}"}
outputs:
  - {id: said, type: STRING, value: "Hello {{ inputs.name }}"}
`)
	fail := writeFlow(t, dir, "fail.yaml", "id: fail\nnamespace: company.team\ntasks:\n  - {id: need, type: io.kestra.plugin.core.kv.Get, key: missing, errorOnMissing: true}\n")
	bad := writeFlow(t, dir, "bad.yaml", "id: bad\nnamespace: company.team\ntasks:\n  - id: x\n    type: io.kestra.plugin.core.kv.Set\n    key: k\n")
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := Main(context.Background(), append(args, srv...), strings.NewReader(""), &out, &errOut)
		return out.String(), errOut.String(), code
	}

	if out, errOut, code := cli("flow", "deploy", hello, fail); code != 0 || !strings.Contains(out, "Deployed company.team.hello revision 1 from "+hello) {
		t.Fatalf("flow deploy: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, code := cli("flow", "deploy", hello); code != 0 || !strings.Contains(out, "revision 2") {
		t.Fatalf("flow deploy again: exit %d, %s; want revision 2", code, out)
	}
	if _, errOut, code := cli("flow", "deploy", bad); code != 2 || !strings.Contains(errOut, `:4: tasks[0].value: missing required property "value"`) {
		t.Fatalf("flow deploy invalid: exit %d, %s", code, errOut)
	}
	if out, _, code := cli("flow", "list", "-n", "company.team"); code != 0 || !strings.Contains(out, "company.team  fail ") || !strings.Contains(out, "company.team  hello  2 ") {
		t.Fatalf("flow list: exit %d\n%s", code, out)
	}
	if out, _, code := cli("flow", "get", "company.team", "hello"); code != 0 || !strings.HasPrefix(out, "id: hello\n") {
		t.Fatalf("flow get: exit %d\n%s", code, out)
	}

	out, errOut, code := cli("execution", "run", "company.team", "hello", "--input", "name=Ada", "--wait")
	if code != 0 || !strings.Contains(out, " INFO  [say] Hello Ada\n") || !strings.Contains(out, ": SUCCESS in ") || !strings.Contains(out, "Flow outputs:\n  said: Hello Ada\n") {
		t.Fatalf("execution run --wait: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, code := cli("execution", "run", "company.team", "fail", "--wait"); code != 1 || !strings.Contains(out, ": FAILED in ") || !strings.Contains(out, "ERROR [need]") {
		t.Fatalf("execution run --wait of a failing flow: exit %d\n%s", code, out)
	}
	if _, errOut, code := cli("execution", "run", "company.team", "nope"); code != 3 {
		t.Fatalf("execution run of a missing flow: exit %d, %s", code, errOut)
	}

	out, _, code = cli("execution", "run", "company.team", "hello", "--json")
	var started struct{ ID string }
	if code != 0 || json.Unmarshal([]byte(out), &started) != nil || started.ID == "" {
		t.Fatalf("execution run --json: exit %d, %s", code, out)
	}
	if out, _, code := cli("execution", "logs", started.ID, "--follow"); code != 0 || !strings.Contains(out, "[say] Hello World") {
		t.Fatalf("execution logs --follow: exit %d\n%s", code, out)
	}
	if out, _, code := cli("execution", "get", started.ID); code != 0 || !strings.Contains(out, ": SUCCESS") || !strings.Contains(out, "  say: SUCCESS") {
		t.Fatalf("execution get: exit %d\n%s", code, out)
	}
	if out, _, code := cli("execution", "list", "-n", "company.team", "--flow", "hello"); code != 0 || strings.Count(out, " hello ") != 2 || !strings.Contains(out, started.ID) {
		t.Fatalf("execution list: exit %d\n%s", code, out)
	}
	if out, _, code := cli("execution", "get", started.ID); code != 0 || !strings.Contains(out, "Started by: -\n") {
		t.Fatalf("execution get of an API run: exit %d, want Started by: -\n%s", code, out)
	}
	// Which trigger started an execution, in get and list.
	hooked := writeFlow(t, dir, "hooked.yaml", "id: hooked\nnamespace: company.team\ntasks:\n  - {id: say, type: io.kestra.plugin.core.log.Log, message: hi}\ntriggers:\n  - {id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: hook-key-1234}\n")
	if out, errOut, code := cli("flow", "deploy", hooked); code != 0 {
		t.Fatalf("flow deploy hooked: exit %d\n%s%s", code, out, errOut)
	}
	res, err := http.Post("http://"+addr+"/api/v1/executions/webhook/company.team/hooked/hook-key-1234", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var hookedEx struct{ ID string }
	json.NewDecoder(res.Body).Decode(&hookedEx)
	res.Body.Close()
	if res.StatusCode != 200 || hookedEx.ID == "" {
		t.Fatalf("webhook: %d", res.StatusCode)
	}
	if out, _, code := cli("execution", "get", hookedEx.ID); code != 0 || !strings.Contains(out, "Started by: hook (Webhook)\n") {
		t.Fatalf("execution get of a webhook run: exit %d\n%s", code, out)
	}
	if out, _, code := cli("execution", "list", "-n", "company.team", "--flow", "hooked"); code != 0 || !strings.Contains(out, "TRIGGER") || !strings.Contains(out, hookedEx.ID) || !strings.Contains(out, "hook (Webhook)") {
		t.Fatalf("execution list of a webhook run: exit %d\n%s", code, out)
	}
	// DELETE /api/v1/executions/{id}/kill comes with the durable executions
	// work (branch river): with it a missing execution is a 404 (exit 3);
	// before it the server answers 405 on that very path (exit 2).
	_, errOut, code = cli("execution", "kill", "nosuchexecution")
	if code != 3 && !(code == 2 && strings.Contains(errOut, "DELETE is not allowed on /api/v1/executions/nosuchexecution/kill")) {
		t.Fatalf("execution kill of a missing execution: exit %d, %s", code, errOut)
	}
	// Completion of flow ids comes from the server.
	var compOut bytes.Buffer
	code = Main(context.Background(), []string{"__complete", "flow", "get", "--server", srv[1], "company.team", ""}, strings.NewReader(""), &compOut, &bytes.Buffer{})
	if code != 0 || !strings.HasPrefix(compOut.String(), "fail\nhello\nhooked\n:") {
		t.Fatalf("completion of flow ids: exit %d, %q", code, compOut.String())
	}
	if _, _, code := cli("flow", "delete", "company.team", "fail"); code != 0 {
		t.Fatalf("flow delete: exit %d", code)
	}
	if _, _, code := cli("flow", "get", "company.team", "fail"); code != 3 {
		t.Fatalf("flow get after delete: exit %d, want 3", code)
	}
}

// config show prints each setting's value, redacted, and its source.
func TestConfigShow_SourcesAndRedaction(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	file := filepath.Join(xdg, "kvflow", "config.yaml")
	os.MkdirAll(filepath.Dir(file), 0o755)
	os.WriteFile(file, []byte("storageURL: s3://b/p?endpoint=127.0.0.1:9000&accessKey=AK&secretKey=SECRETKEY\nserver:\n  token: T0KEN\n"), 0o600)
	data := t.TempDir()
	t.Setenv("KVFLOW_ADDR", "127.0.0.1:9999")
	t.Setenv("KVFLOW_DATA_DIR", data)
	t.Setenv("KVFLOW_CONFIG", "")
	t.Setenv("KVFLOW_DATABASE_URL", "")
	t.Setenv("KVFLOW_STORAGE_URL", "")
	t.Setenv("KVFLOW_API_TOKEN", "")
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"config", "show"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("config show: exit %d, %s", code, errOut.String())
	}
	text := out.String()
	for _, want := range []string{"Configuration file: " + file, "server.addr", "127.0.0.1:9999", "env KVFLOW_ADDR",
		"file " + file, "secretKey=REDACTED", "server.token", "REDACTED", "sqlite://" + data + "/kvflow.db", "default"} {
		if !strings.Contains(text, want) {
			t.Errorf("config show lacks %q:\n%s", want, text)
		}
	}
	for _, secret := range []string{"SECRETKEY", "T0KEN", "=AK"} {
		if strings.Contains(text, secret) {
			t.Errorf("config show prints %q:\n%s", secret, text)
		}
	}
}
