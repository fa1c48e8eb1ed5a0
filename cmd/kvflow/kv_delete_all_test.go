package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/internal/testpair"
)

func deleteAllSession() []kvCase {
	return []kvCase{
		{args: "kv set-many ns.all -", stdin: `{"a":1,"b":2,"c":3}`},
		{args: "kv set ns.all.child keep 1"},
		{args: "kv delete ns.all --all", wantCode: 2, errHas: "stdin is not a terminal. Pass --yes"},
		{args: "kv get ns.all a", wantOut: "1\n"},
		{args: "kv delete ns.all a --all", wantCode: 2},
		{args: "kv delete ns.all", wantCode: 2},
		{args: "kv delete ns.all --all --yes", wantOut: "Deleted 3 keys from namespace 'ns.all'.\n"},
		{args: "kv keys ns.all --json", wantOut: "[]\n"},
		{args: "kv get ns.all.child keep", wantOut: "1\n"},
		{args: "kv history ns.all b", outHas: "2        DELETE"},
		{args: "kv delete ns.all --all --yes --json", wantOut: `{"keys":[]}` + "\n"},
		{args: "kv delete ns.all.child keep", outHas: "Deleted key 'keep'"},
	}
}

func TestKVDeleteAll_LocalStore(t *testing.T) {
	runKVCases(t, t.TempDir(), nil, deleteAllSession())
}

func TestKVDeleteAll_Server(t *testing.T) {
	pair := testpair.Local(t, storageOpts)
	url := startAPIServer(t, pair, "cli-token")
	runKVCases(t, t.TempDir(), []string{"--server", url, "--token", "cli-token"}, deleteAllSession())
}

func TestKVDeleteAll_TerminalAsksFirst(t *testing.T) {
	orig := isTerminal
	isTerminal = func(io.Reader) bool { return true }
	t.Cleanup(func() { isTerminal = orig })
	runKVCases(t, t.TempDir(), nil, []kvCase{
		{args: "kv set ns.ask a 1"},
		{args: "kv delete ns.ask --all", stdin: "n\n", errHas: "Nothing deleted."},
		{args: "kv delete ns.ask --all", stdin: "\n", errHas: "[y/N]"},
		{args: "kv get ns.ask a", wantOut: "1\n"},
		{args: "kv delete ns.ask --all", stdin: "y\n", wantOut: "Deleted 1 keys from namespace 'ns.ask'.\n", errHas: "Delete every key of namespace 'ns.ask'"},
		{args: "kv get ns.ask a", wantCode: 3},
	})
}

// /dev/null is a character device but no terminal: kv delete --all
// refuses without --yes, as with a pipe.
func TestKVDeleteAll_DevNullIsNotATerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(null) {
		t.Fatalf("isTerminal(%s) = true", os.DevNull)
	}
	data := t.TempDir()
	runKVCases(t, data, nil, []kvCase{{args: "kv set ns.null a 1"}})
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"kv", "delete", "ns.null", "--all"}, null, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "stdin is not a terminal. Pass --yes") {
		t.Errorf("kv delete --all < %s: exit %d, stderr %s", os.DevNull, code, errOut.String())
	}
	runKVCases(t, data, nil, []kvCase{{args: "kv get ns.null a", wantOut: "1\n"}})
}
