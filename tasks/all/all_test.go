package all_test

import (
	"testing"

	"github.com/kvflow/kvflow/plugin"
	_ "github.com/kvflow/kvflow/tasks/all"
)

func TestAll_RegistersEveryBuiltinLeafTask(t *testing.T) {
	for _, typ := range []string{
		"io.kestra.plugin.core.kv.Set",
		"io.kestra.plugin.core.kv.Get",
		"io.kestra.plugin.core.kv.GetKeys",
		"io.kestra.plugin.core.kv.Delete",
		"io.kestra.plugin.core.kv.PurgeKV",
		"io.kestra.plugin.core.log.Log",
		"io.kestra.plugin.core.debug.Return",
		"io.kestra.plugin.core.http.Download",
	} {
		d, ok := plugin.Default.Lookup(typ)
		if !ok {
			t.Errorf("%s is not registered", typ)
			continue
		}
		if task := d.New(); task == nil {
			t.Errorf("%s: New returned nil", typ)
		} else if _, ok := task.(plugin.Validator); !ok {
			t.Errorf("%s: task does not check its properties at load time (no Validate)", typ)
		}
	}
}
