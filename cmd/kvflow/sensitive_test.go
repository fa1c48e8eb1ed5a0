package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
)

const cliMarker = "mArKeR-cli-s3cret"

// sensitiveSession: a sensitive value is masked unless --reveal, on the
// local store and through a server alike.
func sensitiveSession() []kvCase {
	return []kvCase{
		{args: "kv set company.team pw " + cliMarker + " --sensitive", wantOut: "Stored key 'pw' in namespace 'company.team'.\n"},
		{args: "kv get company.team pw", wantOut: "******\n"},
		{args: "kv get company.team pw --json", wantOut: `{"type":"STRING","value":"******","sensitive":true}` + "\n"},
		{args: "kv get company.team pw --reveal", wantOut: cliMarker + "\n"},
		{args: "kv get company.team pw --reveal --json", wantOut: `{"type":"STRING","value":"` + cliMarker + `","sensitive":true}` + "\n"},
		{args: "kv get company.team pw --version 1", wantOut: "******\n"},
		{args: "kv get company.team pw --version 1 --reveal", wantOut: cliMarker + "\n"},
		{args: "kv keys company.team --json", outHas: `"key":"pw","type":"STRING","version":1,`},
		{args: "kv keys company.team --json", outHas: `"sensitive":true}`},
		{args: "kv set-many company.team -", stdin: `[{"key":"batch","value":"` + cliMarker + `-b","sensitive":true}]`},
		{args: "kv get company.team batch", wantOut: "******\n"},
		// A sensitive counter or JSON entry written by incr or patch prints masked too.
		{args: "kv set company.team pin 5 --type NUMBER --sensitive"},
		{args: "kv incr company.team pin", wantOut: "******\n"},
		{args: "kv incr company.team pin --json", wantOut: `{"value":"******","version":3,"sensitive":true}` + "\n"},
		{args: "kv incr company.team pin --reveal", wantOut: "8\n"},
		{args: "kv set company.team doc {\"pw\":\"" + cliMarker + "\"} --type JSON --sensitive"},
		{args: "kv patch company.team doc {\"x\":1}", wantOut: "******\n"},
		{args: "kv patch company.team doc {\"y\":2} --json", wantOut: `{"type":"JSON","value":"******","version":3,"sensitive":true}` + "\n"},
	}
}

// On the embedded default a sensitive write needs no configuration: a key
// is made in the data directory, mode 0600, and the value file is sealed.
func TestSensitive_CLI_LocalStore_ZeroConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KVFLOW_SECRET_KEY", "")
	t.Setenv("KVFLOW_SECRET_KEY_FILE", "")
	t.Setenv("KVFLOW_SECRET_OLD_KEYS", "")
	runKVCases(t, dir, nil, sensitiveSession())
	st, err := os.Stat(filepath.Join(dir, "secret.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret.key: %v, %v; want mode 0600", st, err)
	}
	files := 0
	filepath.WalkDir(filepath.Join(dir, "storage"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
			if b, _ := os.ReadFile(path); strings.Contains(string(b), cliMarker) {
				t.Errorf("%s holds the value", path)
			}
		}
		return nil
	})
	if files < 2 {
		t.Fatalf("%d value files: the check proves nothing", files)
	}
	db, _ := os.ReadFile(filepath.Join(dir, "kvflow.db"))
	if len(db) == 0 || strings.Contains(string(db), cliMarker) {
		t.Errorf("the database file is empty or holds the value")
	}
	// A flow that logs it, upper-cased, prints it masked.
	flow := writeFlow(t, t.TempDir(), "leak.yaml", `id: leak
namespace: company.team
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "pw={{ kv('pw') | upper }}"
outputs:
  - id: pw
    value: "{{ kv('pw') }}"
`)
	out, errOut, code := kvflowCmd(t, dir, "run", flow)
	if code != 0 || !strings.Contains(out, "[say] pw=******") || !strings.Contains(out, "pw: ******") ||
		strings.Contains(out+errOut, cliMarker) || strings.Contains(out+errOut, strings.ToUpper(cliMarker)) {
		t.Errorf("kvflow run: exit %d\n%s%s", code, out, errOut)
	}
	// One task outside a flow: outputs and logs masked unless --reveal.
	runKVCases(t, dir, nil, []kvCase{
		{args: "task run io.kestra.plugin.core.kv.Get -n company.team --prop key=pw", wantOut: `{"value":"******"}` + "\n"},
		{args: "task run io.kestra.plugin.core.kv.Get -n company.team --prop key=pw --reveal", wantOut: `{"value":"` + cliMarker + `"}` + "\n"},
	})
	_, errOut, code = kvflowCmdIn(t, dir, "", "task", "run", "io.kestra.plugin.core.log.Log", "-n", "company.team", "--prop", "message={{ kv('pw') | upper }}!")
	if code != 0 || !strings.Contains(errOut, "******!") || strings.Contains(errOut, strings.ToUpper(cliMarker)) {
		t.Errorf("task run Log: exit %d, stderr %q", code, errOut)
	}
	// A wrong key: a clear error naming the key and what to configure.
	t.Setenv("KVFLOW_SECRET_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	runKVCases(t, dir, nil, []kvCase{
		{args: "kv get company.team pw --reveal", wantCode: 1, errHas: "Cannot read sensitive key 'pw' in namespace 'company.team'"},
	})
}

func TestSensitive_CLI_Server(t *testing.T) {
	pair := testpair.Service(t, storage.Options{Keys: storagetest.TestKeys(t)})
	url := startAPIServer(t, pair, "cli-token")
	runKVCases(t, t.TempDir(), []string{"--server", url, "--token", "cli-token"}, sensitiveSession())
}

// Rotation as the README describes it: the new key current, the old one in
// KVFLOW_SECRET_OLD_KEYS for reads; an export and an import with overwrite
// seal every entry again, after which the old key can go.
func TestSensitive_CLI_KeyRotation(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	t.Setenv("KVFLOW_SECRET_KEY_FILE", "")
	t.Setenv("KVFLOW_SECRET_KEY", oldKey)
	t.Setenv("KVFLOW_SECRET_OLD_KEYS", "")
	runKVCases(t, dir, nil, []kvCase{{args: "kv set company.team pw " + cliMarker + " --sensitive"}})
	t.Setenv("KVFLOW_SECRET_KEY", newKey)
	runKVCases(t, dir, nil, []kvCase{
		{args: "kv get company.team pw --reveal", wantCode: 1, errHas: "which is not configured"},
	})
	t.Setenv("KVFLOW_SECRET_OLD_KEYS", oldKey)
	file := filepath.Join(t.TempDir(), "kv.jsonl")
	runKVCases(t, dir, nil, []kvCase{
		{args: "kv get company.team pw --reveal", wantOut: cliMarker + "\n"},
		{args: "kv export company.team -o " + file},
		{args: "kv import " + file + " --on-conflict overwrite", outHas: "Imported 1 entries"},
	})
	t.Setenv("KVFLOW_SECRET_OLD_KEYS", "")
	runKVCases(t, dir, nil, []kvCase{
		{args: "kv get company.team pw --reveal", wantOut: cliMarker + "\n"},
		{args: "kv get company.team pw", wantOut: "******\n"},
		{args: "kv get company.team pw --version 1 --reveal", wantCode: 1, errHas: "which is not configured"},
	})
}
