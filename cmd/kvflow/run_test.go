package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kvflowCmd runs the CLI in-process on a fresh embedded default and
// returns stdout, stderr and the exit code main would give.
func kvflowCmd(t *testing.T, dataDir string, args ...string) (string, string, int) {
	t.Helper()
	t.Setenv("KVFLOW_DATA_DIR", dataDir)
	t.Setenv("KVFLOW_CONFIG", "")
	t.Setenv("KVFLOW_DATABASE_URL", "")
	t.Setenv("KVFLOW_STORAGE_URL", "")
	t.Setenv("KVFLOW_ALLOWED_NAMESPACES", "")
	t.Setenv("KVFLOW_SERVER", "")
	t.Setenv("KVFLOW_ENDPOINT", "")
	t.Setenv("KVFLOW_LOG_FORMAT", "")
	t.Setenv("KVFLOW_LOG_LEVEL", "")
	t.Setenv("XDG_CONFIG_HOME", dataDir+"-xdg") // no configuration file unless a test writes one
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

func writeFlow(t *testing.T, dir, name, src string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const counterFlow = `
id: counter
namespace: company.team
inputs:
  - {id: by, type: INT, defaults: 1}
tasks:
  - id: current
    type: io.kestra.plugin.core.kv.Get
    key: hits
  - id: bump
    type: io.kestra.plugin.core.kv.Set
    key: hits
    value: "{{ (outputs.current.value | default(0)) + inputs.by }}"
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "hits = {{ kv('hits') }}"
outputs:
  - {id: hits, value: "{{ kv('hits') }}", type: INT}
`

func TestRunCommand_PrintsLogsThenStateAndOutputs(t *testing.T) {
	dir := t.TempDir()
	flow := writeFlow(t, dir, "counter.yaml", counterFlow)
	out, errOut, code := kvflowCmd(t, filepath.Join(dir, "data"), "run", flow, "--input", "by=5")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{" INFO  [say] hits = 5\n", "of company.team.counter: SUCCESS in ", "Task outputs:\n", "  bump: {\"version\":1}\n", "Flow outputs:\n  hits: 5\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "[say]") > strings.Index(out, "SUCCESS") {
		t.Errorf("logs should come before the summary:\n%s", out)
	}
	out, _, code = kvflowCmd(t, filepath.Join(dir, "data"), "run", flow, "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d", code)
	}
	var ex struct {
		ID      string         `json:"id"`
		State   string         `json:"state"`
		Outputs map[string]any `json:"outputs"`
		Logs    []struct {
			TaskID  string `json:"taskId"`
			Message string `json:"message"`
		} `json:"logs"`
	}
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatalf("--json output is not one JSON document: %v\n%s", err, out)
	}
	if ex.State != "SUCCESS" || ex.Outputs["hits"] != float64(6) || len(ex.Logs) != 1 || ex.Logs[0].Message != "hits = 6" {
		t.Errorf("--json result = %+v", ex)
	}
}

func TestRunCommand_FailedExecution_ExitsWithOne(t *testing.T) {
	dir := t.TempDir()
	flow := writeFlow(t, dir, "fail.yaml", `
id: fail
namespace: company.team
tasks:
  - {id: need, type: io.kestra.plugin.core.kv.Get, key: missing, errorOnMissing: true}
`)
	out, _, code := kvflowCmd(t, filepath.Join(dir, "data"), "run", flow)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(out, ": FAILED in ") || !strings.Contains(out, "ERROR [need] Task 'need': ") || !strings.Contains(out, "'missing'") {
		t.Errorf("output:\n%s", out)
	}
}

func TestRunCommand_BadInputsAndBadFlows_ExitWithTwo(t *testing.T) {
	dir := t.TempDir()
	flow := writeFlow(t, dir, "counter.yaml", counterFlow)
	_, errOut, code := kvflowCmd(t, filepath.Join(dir, "data"), "run", flow, "--input", "by=abc", "--input", "nope=1")
	if code != 2 || !strings.Contains(errOut, "inputs.by: value (STRING, 3 bytes, sha256:ba7816bf) is not an INT") || !strings.Contains(errOut, "inputs.nope: unknown input") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	bad := writeFlow(t, dir, "bad.yaml", "id: bad\nnamespace: company.team\ntasks:\n  - id: x\n    type: io.kestra.plugin.core.kv.Set\n    key: k\n")
	_, errOut, code = kvflowCmd(t, filepath.Join(dir, "data"), "run", bad)
	if code != 2 || errOut != bad+`:4: tasks[0].value: missing required property "value"`+"\n" {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}

func TestValidateCommand_PrintsEveryErrorOfEveryFile(t *testing.T) {
	dir := t.TempDir()
	good := writeFlow(t, dir, "good.yaml", counterFlow)
	bad := writeFlow(t, dir, "bad.yaml", `id: bad
namespace: company.team
tasks:
  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: k
    value: 1
    ttl: 30 days
  - id: set
    type: io.kestra.plugin.core.kv.Sett
  - id: inc
    type: io.kvflow.kv.Increment
    key: n
    by: abc
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: 5s
`)
	out, errOut, code := kvflowCmd(t, filepath.Join(dir, "data"), "validate", good, bad)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if out != "ok  "+good+" (company.team.counter, 3 tasks)\n" {
		t.Errorf("stdout:\n%s", out)
	}
	want := bad + `:8: tasks[0].ttl: "30 days" is not an ISO-8601 duration such as PT5M, P30D or P1DT5S, or a whole number of seconds
` + bad + `:9: tasks[1].id: duplicate task id "set", already used at tasks[0]
` + bad + `:10: tasks[1].type: unknown task type "io.kestra.plugin.core.kv.Sett"; did you mean io.kestra.plugin.core.kv.Set?
` + bad + `:14: tasks[2].by: Value (STRING, 3 bytes, sha256:ba7816bf) is not a valid NUMBER: expected a number such as 42 or 123.45.
` + bad + `:17: tasks[3].duration: "5s" is not an ISO-8601 duration such as PT5M, P30D or P1DT5S, or a whole number of seconds
`
	if errOut != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
	out, _, code = kvflowCmd(t, filepath.Join(dir, "data"), "validate", "--json", good, bad)
	var results []struct {
		File   string `json:"file"`
		Valid  bool   `json:"valid"`
		Errors []struct {
			Line  int    `json:"line"`
			Field string `json:"field"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &results); err != nil || code != 2 {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	if len(results) != 2 || !results[0].Valid || results[1].Valid || len(results[1].Errors) != 5 || results[1].Errors[0].Field != "tasks[0].ttl" || results[1].Errors[3].Field != "tasks[2].by" {
		t.Errorf("--json results = %+v", results)
	}
	if _, _, code := kvflowCmd(t, filepath.Join(dir, "data"), "validate", good); code != 0 {
		t.Errorf("valid file: exit %d", code)
	}
}

func TestTaskRunCommand_RunsOneTaskAndPrintsOutputsAsJSON(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	out, errOut, code := kvflowCmd(t, data, "task", "run", "io.kestra.plugin.core.kv.Set", "--namespace", "company.team", "--prop", "key=answer", "--prop", "value:=42")
	if code != 0 || out != `{"version":1}`+"\n" {
		t.Fatalf("set: exit %d, %q %s", code, out, errOut)
	}
	out, _, code = kvflowCmd(t, data, "task", "run", "io.kestra.plugin.core.kv.Get", "-n", "company.team", "--props-json", `{"key": "answer"}`)
	if code != 0 || out != `{"value":42}`+"\n" {
		t.Errorf("get: exit %d, %q", code, out)
	}
	_, _, code = kvflowCmd(t, data, "task", "run", "io.kestra.plugin.core.kv.Set", "-n", "company.team", "--props-json", `{"key": "greeting", "value": "x"}`, "--prop", "value=hello {{ flow.namespace }}")
	if code != 0 {
		t.Fatalf("set with template: exit %d", code)
	}
	out, _, _ = kvflowCmd(t, data, "task", "run", "io.kestra.plugin.core.kv.Get", "-n", "company.team", "-p", "key=greeting")
	if out != `{"value":"hello company.team"}`+"\n" {
		t.Errorf("get greeting: %q", out)
	}
	_, errOut, code = kvflowCmd(t, data, "task", "run", "io.kestra.plugin.core.kv.Get", "-n", "company.team", "-p", "key=nope", "-p", "errorOnMissing=true")
	if code != 3 || !strings.Contains(errOut, "'nope'") {
		t.Errorf("missing key: exit %d, %s", code, errOut)
	}
	_, errOut, code = kvflowCmd(t, data, "task", "run", "io.kestra.plugin.core.kv.Get", "-n", "company.team", "-p", "kee=x")
	if code != 2 || !strings.Contains(errOut, `kee: unknown property "kee"`) || !strings.Contains(errOut, `key: missing required property "key"`) {
		t.Errorf("bad props: exit %d, %s", code, errOut)
	}
	_, errOut, code = kvflowCmd(t, data, "task", "run", "io.kestra.plugin.core.flow.Sequential", "-n", "company.team")
	if code != 2 || !strings.Contains(errOut, "Flowable tasks run only inside a flow.") {
		t.Errorf("flowable: exit %d, %s", code, errOut)
	}
	_, errOut, code = kvflowCmd(t, data, "task", "run", "no.such.Task", "-n", "company.team")
	if code != 2 || !strings.Contains(errOut, `Task type "no.such.Task" is unknown`) {
		t.Errorf("unknown type: exit %d, %s", code, errOut)
	}
}

// The seed's JSON flow runs as a process, against `kvflow --version` as the
// process-start floor. Run with -bench RunProcess.
func BenchmarkRunProcess(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "kvflow")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	flow, err := filepath.Abs("../../examples/kv_json_flow.yaml")
	if err != nil {
		b.Fatal(err)
	}
	data := b.TempDir()
	env := append(os.Environ(), "KVFLOW_DATA_DIR="+data, "KVFLOW_CONFIG=", "KVFLOW_DATABASE_URL=", "KVFLOW_STORAGE_URL=")
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"version", []string{"--version"}},
		{"kv_json_flow", []string{"run", flow}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var worst time.Duration
			for b.Loop() {
				start := time.Now()
				cmd := exec.Command(bin, bc.args...)
				cmd.Env = env
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %v\n%s", bc.args, err, out)
				}
				worst = max(worst, time.Since(start))
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
		})
	}
}
