package main

import (
	"testing"

	"github.com/kvflow/kvflow/internal/testpair"
)

// moreSession exercises kv_more.go's commands; local and server answer alike
// (a stale --if-version fails with exit 6, a conflict, either way).
func moreSession() []kvCase {
	return []kvCase{
		{args: "kv set ns.more big 12345678901234567890"},
		{args: "kv get ns.more big", wantOut: "12345678901234567890\n"},
		{args: "kv get ns.more big --json", wantOut: `{"type":"NUMBER","value":12345678901234567890}` + "\n"},
		{args: "kv set ns.more pi 3.14159265358979323846264338327950288"},
		{args: "kv get ns.more pi", wantOut: "3.14159265358979323846264338327950288\n"},
		{args: "kv set ns.more tenth 0.1 --ttl 3600"},
		{args: "kv get ns.more tenth --json", wantOut: `{"type":"NUMBER","value":0.1}` + "\n"},
		{args: "kv set ns.more tenth 0.2 --if-version 1", wantOut: "Stored key 'tenth' in namespace 'ns.more' at version 2.\n"},
		{args: "kv set ns.more tenth 0.3 --if-version 1", wantCode: 6, errHas: "version"},
		{args: "kv get ns.more tenth", wantOut: "0.2\n"},
		{args: "kv incr ns.more hits", wantOut: "1\n"},
		{args: "kv incr ns.more hits --by 41", wantOut: "42\n"},
		{args: "kv incr ns.more hits --by -0.5 --json", wantOut: `{"value":41.5,"version":3}` + "\n"},
		{args: "kv incr ns.more big", wantCode: 2, errHas: "overflow"},
		{args: "kv incr ns.more hits --by lots", wantCode: 2, errHas: "--by"},
		{args: "kv get ns.more nope --default fallback", wantOut: "fallback\n"},
		{args: "kv get ns.more nope --default 42 --json", wantOut: `{"type":"NUMBER","value":42}` + "\n"},
		{args: "kv get ns.more nope", wantCode: 3},
		{args: "kv set-many ns.more -", stdin: `[{"key":"a","value":1,"ttl":3600},{"key":"b","value":"x","description":"bee"},{"key":"c","value":"2024-07-15","type":"DATE"}]`, wantOut: "Stored 3 keys in namespace 'ns.more'.\n"},
		{args: "kv get ns.more c --json", wantOut: `{"type":"DATE","value":"2024-07-15"}` + "\n"},
		{args: "kv set-many ns.more -", stdin: `[{"key":"d","value":1},{"key":"e/x","value":2}]`, wantCode: 2, errHas: "Entry 1 (key 'e/x')"},
		{args: "kv get ns.more d", wantCode: 3},
		{args: "kv set-many ns.more - --json", stdin: `{"m1": 1, "m2": {"deep": 12345678901234567890}}`, wantOut: `[{"key":"m1","version":1},{"key":"m2","version":1}]` + "\n"},
		{args: "kv get ns.more m2", wantOut: `{"deep":12345678901234567890}` + "\n"},
		{args: "kv patch ns.more m2 {\"add\":0.1}", wantOut: `{"add":0.1,"deep":12345678901234567890}` + "\n"},
		{args: "kv patch ns.more m2 {\"deep\":null} --if-version 2 --json", wantOut: `{"type":"JSON","value":{"add":0.1},"version":3}` + "\n"},
		{args: "kv patch ns.more m2 {\"x\":1} --if-version 2", wantCode: 6, errHas: "version"},
		{args: "kv patch ns.more fresh -", stdin: `{"a":{"b":1}}`, wantOut: `{"a":{"b":1}}` + "\n"},
		{args: "kv patch ns.more fresh {oops", wantCode: 2, errHas: "not valid JSON"},
	}
}

func TestKVMore_LocalStore(t *testing.T) {
	runKVCases(t, t.TempDir(), nil, moreSession())
}

func TestKVMore_Server(t *testing.T) {
	pair := testpair.Local(t, storageOpts)
	url := startAPIServer(t, pair, "cli-token")
	runKVCases(t, t.TempDir(), []string{"--server", url, "--token", "cli-token"}, moreSession())
}

func exportImportSession(file string) []kvCase {
	return []kvCase{
		{args: "kv set ex.a big 12345678901234567890 --ttl 3600 --description big|one"},
		{args: "kv set ex.a.b day 2024-07-15"},
		{args: "kv set ex.other s x"},
		{args: "kv export ex.a --include-children -o " + file, errHas: "Exported 2 entries."},
		{args: "kv import " + file + " --namespace-map ex.a=ex.copy --namespace-map ex.a.b=ex.copy.b", wantOut: "Imported 2 entries (0 existing skipped, 0 expired).\n"},
		{args: "kv get ex.copy big --json", wantOut: `{"type":"NUMBER","value":12345678901234567890}` + "\n"},
		{args: "kv keys ex.copy --json", outHas: `"description":"big one"`},
		{args: "kv get ex.copy.b day --json", wantOut: `{"type":"DATE","value":"2024-07-15"}` + "\n"},
		{args: "kv import " + file + " --namespace-map ex.a=ex.copy --namespace-map ex.a.b=ex.copy.b --json", wantOut: `{"written":0,"skipped":2,"expired":0}` + "\n"},
		{args: "kv import " + file + " --namespace-map ex.a=ex.copy --namespace-map ex.a.b=ex.copy.b --on-conflict fail", wantCode: 6, errHas: "Line 1"},
		// One map moves the children too, also through a server.
		{args: "kv import " + file + " --namespace-map ex.a=ex.moved", wantOut: "Imported 2 entries (0 existing skipped, 0 expired).\n"},
		{args: "kv get ex.moved.b day --json", wantOut: `{"type":"DATE","value":"2024-07-15"}` + "\n"},
		{args: "kv import -", stdin: "{not json\n", wantCode: 2, errHas: "Line 1 of the import"},
		// A stop in a later namespace names the file's line and counts what was
		// written (before, a server's stop said line 1 and 0 written).
		{args: "kv import -", stdin: `{"namespace":"ex.n1","key":"k1","type":"STRING","value":"a"}` + "\n\n" +
			`{"namespace":"ex.n1","key":"k2","type":"STRING","value":"b"}` + "\n" +
			`{"namespace":"ex.n2","key":"k3","type":"NUMBER","value":"zz"}` + "\n",
			wantCode: 2, errHas: "Before stopping: 2 written, 0 skipped, 0 expired.\nError: Line 4 of the import: "},
		{args: "kv import -", stdin: `{"namespace":"ex.n3","key":"k1","type":"STRING","value":"a"}` + "\n{oops\n", wantCode: 2, errHas: "1 written, 0 skipped, 0 expired.\nError: Line 2 of the import"},
	}
}

func TestKVExportImport_LocalStore(t *testing.T) {
	runKVCases(t, t.TempDir(), nil, exportImportSession(t.TempDir()+"/ex.jsonl"))
}

func TestKVExportImport_Server(t *testing.T) {
	pair := testpair.Local(t, storageOpts)
	url := startAPIServer(t, pair, "cli-token")
	runKVCases(t, t.TempDir(), []string{"--server", url, "--token", "cli-token"}, exportImportSession(t.TempDir()+"/ex.jsonl"))
}
