package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow/storage"
)

func TestLoad_HistoryRetention(t *testing.T) {
	t.Setenv("KVFLOW_CONFIG", "")
	path := filepath.Join(t.TempDir(), "kvflow.yaml")
	os.WriteFile(path, []byte("history:\n  versions: 5\n  maxAge: 720h\n  changes: 48h\n  namespaces:\n    audit.logs: {versions: -1}\n"), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := c.History.Policy()
	if p.Default != (storage.Retention{Versions: 5, MaxAge: 720 * time.Hour}) || p.Changes != 48*time.Hour || p.Namespaces["audit.logs"].Versions != -1 {
		t.Errorf("policy = %+v", p)
	}
	os.WriteFile(path, []byte("history:\n  versions: -2\n  namespaces:\n    Bad: {maxAge: -1h}\n"), 0o600)
	_, err = Load(path)
	for _, want := range []string{"history.versions", "history.namespaces[Bad]", "history.namespaces[Bad].maxAge"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load of a bad history = %v, want it to name %s", err, want)
		}
	}
}
