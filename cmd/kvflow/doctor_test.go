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
	objects := func() []string {
		objs, err := filepath.Glob(filepath.Join(dir, "storage", "company", "team", "_kv", "*.ion"))
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	var fine []string
	for _, key := range []string{"fine", "lost"} {
		if _, errOut, code := kvflowCmdIn(t, dir, "", "kv", "set", "company.team", key, "v"); code != 0 {
			t.Fatalf("kv set %s: exit %d: %s", key, code, errOut)
		}
		if key == "fine" {
			fine = objects()
		}
	}
	out, errOut, code := kvflowCmdIn(t, dir, "", "doctor")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("doctor on a sound store: exit %d, %q %q", code, out, errOut)
	}
	objs := objects()
	if len(fine) != 1 || len(objs) != 2 {
		t.Fatalf("objects: %v after the first write, %v after the second", fine, objs)
	}
	lost := objs[0]
	if lost == fine[0] {
		lost = objs[1]
	}
	if err := os.Remove(lost); err != nil {
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
