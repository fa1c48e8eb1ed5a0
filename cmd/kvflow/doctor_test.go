package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kvflow doctor lists the keys whose value object is missing, and exits 1.
func TestDoctorCommand_ListsKeysWhoseObjectIsMissing(t *testing.T) {
	dir := t.TempDir()
	for _, key := range []string{"fine", "lost"} {
		if _, errOut, code := kvflowCmdIn(t, dir, "", "kv", "set", "company.team", key, "v"); code != 0 {
			t.Fatalf("kv set %s: exit %d: %s", key, code, errOut)
		}
	}
	out, errOut, code := kvflowCmdIn(t, dir, "", "doctor")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("doctor on a sound store: exit %d, %q %q", code, out, errOut)
	}
	objs, err := filepath.Glob(filepath.Join(dir, "storage", "company", "team", "_kv", "lost.ion.*"))
	if err != nil || len(objs) != 1 {
		t.Fatalf("objects of lost: %v, %v", objs, err)
	}
	if err := os.Remove(objs[0]); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = kvflowCmdIn(t, dir, "", "doctor")
	if code != 1 || !strings.Contains(out, "key 'lost' in namespace 'company.team'") || strings.Contains(out, "'fine'") {
		t.Errorf("doctor: exit %d, stdout %q, stderr %q; want exit 1 naming lost only", code, out, errOut)
	}
	out, _, _ = kvflowCmdIn(t, dir, "", "doctor", "--json")
	if strings.TrimSpace(out) != `{"missingObjects":[{"namespace":"company.team","key":"lost"}]}` {
		t.Errorf("doctor --json = %s", out)
	}
	_, errOut, code = kvflowCmdIn(t, dir, "", "kv", "get", "company.team", "lost")
	if code != 1 || !strings.Contains(errOut, "missing from the object store") || strings.Contains(errOut, dir) {
		t.Errorf("kv get of the damaged key: exit %d, %q", code, errOut)
	}
}
