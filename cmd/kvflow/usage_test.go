package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every usage mistake exits 2 with cobra's message on the first line of
// stderr; typos of a subcommand fail at every level, with suggestions.
func TestUsage_ExitCodeAndFirstLine(t *testing.T) {
	data := t.TempDir()
	flow := writeFlow(t, t.TempDir(), "ok.yaml", counterFlow)
	for _, tc := range []struct {
		args      []string
		code      int
		firstLine string
		has       string // elsewhere in stderr
	}{
		{[]string{"foo"}, 2, `Error: unknown command "foo" for "kvflow"`, ""},
		{[]string{"vaildate", "x.yaml"}, 2, `Error: unknown command "vaildate" for "kvflow"`, "Did you mean this?\n\tvalidate\n"},
		{[]string{"--bogus"}, 2, "Error: unknown flag: --bogus", "Run 'kvflow --help' for usage."},
		{[]string{"kv", "get"}, 2, "Error: accepts 2 arg(s), received 0", "Usage: kvflow kv get NAMESPACE KEY [flags]"},
		{[]string{"run"}, 2, "Error: accepts 1 arg(s), received 0", "Usage: kvflow run FLOW.yaml [flags]"},
		{[]string{"kv", "set", "ns", "neg", "-5"}, 2, "Error: unknown shorthand flag: '5' in -5", "kvflow kv set ns neg -- -5"},
		{[]string{"kv", "gett", "a", "b"}, 2, `Error: unknown command "gett" for "kvflow kv"`, "\tget\n"},
		{[]string{"task", "runn"}, 2, `Error: unknown command "runn" for "kvflow task"`, "\trun\n"},
		{[]string{"flow", "deplyo"}, 2, `Error: unknown command "deplyo" for "kvflow flow"`, "\tdeploy\n"},
		{[]string{"execution", "lgos", "x"}, 2, `Error: unknown command "lgos" for "kvflow execution"`, "\tlogs\n"},
		{[]string{"config", "shwo"}, 2, `Error: unknown command "shwo" for "kvflow config"`, "\tshow\n"},
		{[]string{"kv", "keys", "a", "b"}, 2, "Error: accepts 1 arg(s), received 2", ""},
		{[]string{"server", "extra"}, 2, `Error: unknown command "extra" for "kvflow server"`, ""},
		{[]string{"run", flow, "--log-format", "xml"}, 2, `Error: --log-format "xml" is unknown: expected text or json.`, ""},
		{[]string{"run", flow, "--log-level", "loud"}, 2, `Error: --log-level "loud" is unknown: expected debug, info, warn or error.`, ""},
		{[]string{"kv", "get", "company.team", "k", "--log-format", "xml"}, 2, `Error: --log-format "xml" is unknown: expected text or json.`, ""},
		{[]string{"config", "show", "--log-level", "loud"}, 2, `Error: --log-level "loud" is unknown: expected debug, info, warn or error.`, ""},
		{[]string{"flow", "list", "--log-format", "xml"}, 2, `Error: --log-format "xml" is unknown: expected text or json.`, ""},
		{[]string{"server", "--addr", "notanaddr"}, 2, `Error: --addr "notanaddr" is not host:port such as 127.0.0.1:8080: missing port in address.`, ""},
		{[]string{"server", "--token", "t", "--token-file", "/run/token"}, 2, "Error: Set --token or --token-file, not both.", ""},
		{[]string{"task", "run", "io.kestra.plugin.core.kv.Sett", "-n", "company.team"}, 2, `Error: Task type "io.kestra.plugin.core.kv.Sett" is unknown; did you mean io.kestra.plugin.core.kv.Set?`, ""},
		{[]string{"kv", "import", "-", "--on-conflict", "bogus"}, 2, `Error: On-conflict "bogus" is unknown: expected skip, overwrite or fail.`, ""},
		{[]string{"kv", "get", "company.team", "nope"}, 3, "Error: No value found for key 'nope' in namespace 'company.team'.", ""},
		{[]string{"kv", "get", "company.team", "k", "--server", "127.0.0.1:1"}, 4, "Error: Cannot reach the kvflow server at http://127.0.0.1:1", ""},
		{[]string{"kv", "get", "company.team", "k", "--server", "ftp://x"}, 2, `Error: Server URL "ftp://x" is invalid`, ""},
		{[]string{"kv", "set", "company.team", "neg", "--", "-5"}, 0, "", ""},
		{[]string{"kv", "keys", "company.team", "--prefx", "a"}, 2, "Error: unknown flag: --prefx", "Did you mean this?\n\t--prefix\n"},
		{[]string{"help", "nosuch"}, 2, `Error: unknown command "nosuch" for "kvflow"`, ""},
		{[]string{"help", "kv", "gett"}, 2, `Error: unknown command "gett" for "kvflow kv"`, "\tget\n"},
		{[]string{"completion", "bashh"}, 2, `Error: unknown command "bashh" for "kvflow completion"`, "\tbash\n"},
		{[]string{"help", "kv", "get"}, 0, "", ""},
		{[]string{"kv"}, 0, "", ""},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			out, errOut, code := kvflowCmd(t, data, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			first, _, _ := strings.Cut(errOut, "\n")
			if !strings.HasPrefix(first, tc.firstLine) || (tc.firstLine == "" && first != "") {
				t.Errorf("first line of stderr %q, want %q", first, tc.firstLine)
			}
			if !strings.Contains(errOut, tc.has) {
				t.Errorf("stderr lacks %q:\n%s", tc.has, errOut)
			}
		})
	}
	if out, _, _ := kvflowCmd(t, data, "kv", "get", "company.team", "neg"); out != "-5\n" {
		t.Errorf("kv get after -- -5 = %q", out)
	}
}

// KVFLOW_LOG_LEVEL and KVFLOW_LOG_FORMAT are checked by every command, as
// the flags are, naming the variable.
func TestUsage_LogEnvironment(t *testing.T) {
	data := t.TempDir()
	kvflowCmd(t, data, "kv", "set", "company.team", "k", "1") // sets the rest of the environment
	for _, tc := range []struct{ env, value, want string }{
		{"KVFLOW_LOG_LEVEL", "loud", `Error: KVFLOW_LOG_LEVEL "loud" is unknown: expected debug, info, warn or error.`},
		{"KVFLOW_LOG_FORMAT", "xml", `Error: KVFLOW_LOG_FORMAT "xml" is unknown: expected text or json.`},
	} {
		t.Setenv(tc.env, tc.value)
		var out, errOut bytes.Buffer
		if code := Main(context.Background(), []string{"kv", "get", "company.team", "k"}, strings.NewReader(""), &out, &errOut); code != 2 || !strings.HasPrefix(errOut.String(), tc.want) {
			t.Errorf("%s=%s kvflow kv get: exit %d, stdout %q, stderr %q", tc.env, tc.value, code, out.String(), errOut.String())
		}
		// Help and shell completion work whatever the log settings.
		for _, args := range [][]string{{"help"}, {"completion", "bash"}, {"__complete", "kv", ""}} {
			out.Reset()
			if code := Main(context.Background(), args, strings.NewReader(""), &out, &errOut); code != 0 || out.Len() == 0 && args[0] != "completion" {
				t.Errorf("%s=%s kvflow %v: exit %d, stdout %q", tc.env, tc.value, args, code, out.String())
			}
		}
		t.Setenv(tc.env, "")
	}
}

// The exit statuses of --help and of the README are exitCodes.
func TestExitCodes_HelpAndREADME(t *testing.T) {
	out, _, code := kvflowCmd(t, t.TempDir(), "--help")
	if code != 0 || !strings.Contains(out, exitCodesHelp()) {
		t.Fatalf("kvflow --help (exit %d) lacks the exit statuses:\n%s", code, out)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(\\d)` \\| (.+) \\|$")
	var got []string
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		got = append(got, m[1]+" "+m[2])
	}
	var want []string
	for _, e := range exitCodes {
		want = append(want, strconv.Itoa(e.Code)+" "+e.Meaning)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("README's exit status table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// One log format for every command: run's task logs and task run's logs
// come out as JSON objects with --log-format json, and --log-level drops
// what is below it.
func TestLogFormat_JSONAndLevel(t *testing.T) {
	data := t.TempDir()
	flow := writeFlow(t, t.TempDir(), "counter.yaml", counterFlow)
	out, errOut, code := kvflowCmd(t, data, "--log-format", "json", "run", flow)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sawTask bool
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["task"] == "say" && rec["msg"] == "hits = 1" && rec["level"] == "INFO" && rec["time"] != nil {
			sawTask = true
		}
	}
	if !sawTask {
		t.Errorf("no JSON log line of task say:\n%s", out)
	}
	out, _, code = kvflowCmd(t, data, "run", flow, "--log-level", "error")
	if code != 0 || strings.Contains(out, " INFO ") || !strings.Contains(out, ": SUCCESS in ") {
		t.Errorf("--log-level error still prints INFO lines (exit %d):\n%s", code, out)
	}
	t.Setenv("KVFLOW_LOG_FORMAT", "json") // kvflowCmd clears it: call Main
	var stdout, stderr bytes.Buffer
	code = Main(context.Background(), []string{"task", "run", "io.kestra.plugin.core.log.Log", "-n", "company.team", "-p", "message=hi"}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 || !strings.Contains(stderr.String(), `"msg":"hi","task":"task"`) {
		t.Errorf("task run with KVFLOW_LOG_FORMAT=json: exit %d, stderr %s", code, stderr.String())
	}
}

// task run's log lines name the task as run's do: [task] in text.
func TestLogFormat_TaskRunNamesTheTask(t *testing.T) {
	_, errOut, code := kvflowCmd(t, t.TempDir(), "task", "run", "io.kestra.plugin.core.log.Log", "-n", "company.team", "-p", "message=hi")
	if code != 0 || !strings.HasSuffix(errOut, " INFO  [task] hi\n") {
		t.Errorf("task run: exit %d, stderr %q", code, errOut)
	}
}

// kvflow worker logs like every other command: --log-format json gives
// JSON lines, from its start to its stop; it starts by saying where its
// data is, as the server does.
func TestLogFormat_Worker(t *testing.T) {
	data := t.TempDir()
	t.Setenv("KVFLOW_DATA_DIR", data)
	t.Setenv("KVFLOW_CONFIG", "")
	t.Setenv("KVFLOW_DATABASE_URL", "")
	t.Setenv("KVFLOW_STORAGE_URL", "")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := Main(ctx, []string{"--log-format", "json", "worker", "--workers", "1"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("worker: exit %d: %s", code, stderr.String())
	}
	var where, started, stopped bool
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("worker log line is not JSON: %q", line)
		}
		where = where || strings.HasSuffix(fmt.Sprint(rec["msg"]), " starting") && rec["data_dir"] == data &&
			strings.HasPrefix(fmt.Sprint(rec["database"]), "sqlite://"+data) && strings.HasPrefix(fmt.Sprint(rec["storage"]), "file://"+data) && rec["secret_key"] != nil
		started = started || rec["msg"] == "worker started"
		stopped = stopped || rec["msg"] == "worker stopped"
	}
	if !where || !started || !stopped {
		t.Errorf("worker logs lack where its data is, its start or its stop:\n%s", stderr.String())
	}
}

// Completion offers namespaces and keys from the local store, and task types.
func TestCompletion_NamespacesKeysTaskTypes(t *testing.T) {
	data := t.TempDir()
	for _, args := range [][]string{{"kv", "set", "company.team", "alpha", "1"}, {"kv", "set", "company.team", "beta", "2"}, {"kv", "set", "other", "x", "3"}} {
		if _, errOut, code := kvflowCmd(t, data, args...); code != 0 {
			t.Fatalf("%v: %s", args, errOut)
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "kv", "get", "comp"}, []string{"company.team"}},
		{[]string{"__complete", "kv", "get", ""}, []string{"company.team", "other"}},
		{[]string{"__complete", "kv", "get", "company.team", "al"}, []string{"alpha"}},
		{[]string{"__complete", "kv", "delete", "company.team", ""}, []string{"alpha", "beta"}},
		{[]string{"__complete", "task", "run", "io.kestra.plugin.core.kv.G"}, []string{"io.kestra.plugin.core.kv.Get", "io.kestra.plugin.core.kv.GetKeys"}},
		{[]string{"__complete", "task", "run", "x", "--namespace", "oth"}, []string{"other"}},
	} {
		out, errOut, code := kvflowCmd(t, data, tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d %s", tc.args, code, errOut)
		}
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if line != "" && !strings.HasPrefix(line, ":") {
				got = append(got, line)
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%v completes %q, want %q", tc.args[1:], got, tc.want)
		}
	}
}

// --version prints what the build stamped, else what Go recorded.
func TestVersion_StampedOrBuildInfo(t *testing.T) {
	oldV, oldC := version, commit
	defer func() { version, commit = oldV, oldC }()
	version, commit = "v1.2.3", "0123456789abcdef"
	if out, _, code := kvflowCmd(t, t.TempDir(), "--version"); code != 0 || out != "kvflow v1.2.3 (commit 0123456789ab)\n" {
		t.Errorf("stamped --version = %q (exit %d)", out, code)
	}
	version, commit = "", ""
	if got := versionString(); got == "" || strings.Contains(got, "v1.2.3") {
		t.Errorf("unstamped version = %q", got)
	}
}

// Every kv command shows examples in its --help, and each example runs a kv
// command with only flags that command has.
func TestUsage_KVCommandsHaveExamplesThatParse(t *testing.T) {
	root := newRoot()
	kv, _, err := root.Find([]string{"kv"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range kv.Commands() {
		if c.Name() == "help" {
			continue
		}
		if c.Example == "" {
			t.Errorf("kvflow kv %s --help has no examples", c.Name())
			continue
		}
		for _, line := range strings.Split(c.Example, "\n") {
			_, cmdline, _ := strings.Cut(line, "kvflow ")
			cmdline, _, _ = strings.Cut(cmdline, " > ")
			args := strings.Fields(strings.ReplaceAll(cmdline, "'", ""))
			found, rest, err := root.Find(args)
			if err != nil || found.Parent() != kv {
				t.Errorf("example %q of kv %s runs %v (%v)", line, c.Name(), found.CommandPath(), err)
				continue
			}
			if err := found.ParseFlags(rest); err != nil {
				t.Errorf("example %q: %v", line, err)
			}
		}
	}
}
