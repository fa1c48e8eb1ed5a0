package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
)

// historySession is the same for the local store and a server.
func historySession() []kvCase {
	return []kvCase{
		{args: "kv set company.team h one"},
		{args: "kv set company.team h 2"},
		{args: "kv delete company.team h"},
		{args: "kv history company.team h", outHas: "3        DELETE  NUMBER"},
		{args: "kv history company.team h --json", outHas: `{"version":1,"change":"SET","type":"STRING",`},
		{args: "kv get company.team h --version 1", wantOut: "one\n"},
		{args: "kv get company.team h --version 2 --json", wantOut: `{"type":"NUMBER","value":2}` + "\n"},
		{args: "kv get company.team h --version 3", wantCode: 3, errHas: "deletion"},
		{args: "kv get company.team h --version 0", wantCode: 2, errHas: "--version"},
		{args: "kv restore company.team h 1 --if-version 2", wantCode: 6, errHas: "'h'"},
		{args: "kv restore company.team h 1 --if-version 3", wantOut: "Restored version 1 of key 'h' in namespace 'company.team' as version 4.\n"},
		{args: "kv get company.team h", wantOut: "one\n"},
		{args: "kv restore company.team h x", wantCode: 2, errHas: "VERSION"},
		{args: "kv history company.team nope", wantCode: 3},
		{args: "kv history company.team h --limit 2", errHas: "The newest 2 versions; older ones follow: raise --limit (up to 1000)."},
		{args: "kv watch company.team --since 99", wantCode: 2, errHas: "Parameter 'since' is 99, past the last change of namespace 'company.team'"},
		{args: "kv watch company.team --since=-1", wantCode: 2, errHas: "--since -1 is not a change seq"},
	}
}

func TestKVHistoryCommands_LocalStore(t *testing.T) {
	dir := t.TempDir()
	runKVCases(t, dir, nil, historySession())
	runKVCases(t, dir, nil, []kvCase{{args: "kv history company.team h", outHas: "cli"}})
	out := watchFor(t, dir, "kv", "watch", "company.team", "--since", "2", "--prefix", "h")
	if out != "3\th\tDELETE\tv3\tNUMBER\n4\th\tSET\tv4\tSTRING\n" {
		t.Errorf("watch printed %q", out)
	}
	watchValues(t, dir, nil)
}

// watchValues checks kv watch --values: each SET's value, exact, and a
// sensitive one masked unless --reveal, which needs --values.
func watchValues(t *testing.T, dir string, extra []string) {
	t.Helper()
	runKVCases(t, dir, extra, []kvCase{
		{args: "kv set company.team big 12345678901234567890 --type NUMBER"},
		{args: "kv set company.team pw hunter2 --sensitive"},
	})
	since := []string{"kv", "watch", "company.team", "--since", "4", "--values"}
	out := watchFor(t, dir, append(since, extra...)...)
	if out != "5\tbig\tSET\tv1\tNUMBER\t12345678901234567890\n6\tpw\tSET\tv1\tSTRING\t\"******\"\n" {
		t.Errorf("watch --values printed %q", out)
	}
	out = watchFor(t, dir, append(append(since, "--reveal", "--json"), extra...)...)
	if !strings.Contains(out, `"value":12345678901234567890`) || !strings.Contains(out, `"value":"hunter2","sensitive":true`) {
		t.Errorf("watch --values --reveal --json printed %q", out)
	}
	runKVCases(t, dir, extra, []kvCase{{args: "kv watch company.team --reveal", wantCode: 2, errHas: "--values"}})
}

func TestKVHistoryCommands_Server(t *testing.T) {
	pair := testpair.Local(t, storage.Options{Keys: storagetest.TestKeys(t)})
	url := startAPIServer(t, pair, "cli-token")
	extra := []string{"--server", url, "--token", "cli-token"}
	runKVCases(t, t.TempDir(), extra, historySession())
	runKVCases(t, t.TempDir(), extra, []kvCase{{args: "kv history company.team h", outHas: "api"}})
	out := watchFor(t, t.TempDir(), append([]string{"kv", "watch", "company.team", "--since", "3", "--json"}, extra...)...)
	if out != `{"seq":4,"key":"h","change":"SET","version":4,"type":"STRING"}`+"\n" {
		t.Errorf("watch printed %q", out)
	}
	watchValues(t, t.TempDir(), extra)
}

// watchFor runs a watch command for a second, then interrupts it.
func watchFor(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	t.Setenv("KVFLOW_DATA_DIR", dataDir)
	t.Setenv("KVFLOW_CONFIG", "")
	t.Setenv("KVFLOW_DATABASE_URL", "")
	t.Setenv("KVFLOW_STORAGE_URL", "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("kvflow %s: %v (%s)", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// TestKVHistory_EveryLocalWriteCommand_WriterIsCLI: a version written by any
// local kv command records the writer "cli".
func TestKVHistory_EveryLocalWriteCommand_WriterIsCLI(t *testing.T) {
	dir := t.TempDir()
	runKVCases(t, dir, nil, []kvCase{
		{args: "kv set w.cli s one"},
		{args: "kv incr w.cli n --by 2"},
		{args: "kv set w.cli j {\"a\":1} --type JSON"},
		{args: "kv patch w.cli j {\"b\":2}"},
		{args: "kv set-many w.cli -", stdin: `{"m":1}`},
		{args: "kv import - --namespace-map w.old=w.cli", stdin: `{"namespace":"w.old","key":"i","type":"STRING","value":"x"}` + "\n"},
		{args: "kv restore w.cli s 1"},
		{args: "kv delete w.cli n"},
	})
	for key, versions := range map[string]int{"s": 2, "n": 2, "j": 2, "m": 1, "i": 1} {
		out, errOut, code := kvflowCmdIn(t, dir, "", "kv", "history", "w.cli", key, "--json")
		if code != 0 {
			t.Fatalf("kv history %s: exit %d: %s", key, code, errOut)
		}
		if n := strings.Count(out, `"writer":"cli"`); n != versions || strings.Count(out, `"version":`) != versions {
			t.Errorf("kv history %s: %d of its versions written by cli, want all %d: %s", key, n, versions, out)
		}
	}
}
