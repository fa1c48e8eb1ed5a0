package template_test

import (
	"context"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
	. "github.com/kvflow/kvflow/template"
)

// kv() reads a version from the key's history, by name or as the 4th argument.
func TestKV_Version(t *testing.T) {
	s, _ := kvStore(t)
	set(t, s, "a", "k", storage.String("one"), 0)
	set(t, s, "a", "k", storage.Value{Type: storage.NUMBER, V: int64(2)}, 0)
	set(t, s, "a", "k", storage.String("three"), 0)
	e := New(Options{KV: s})
	for src, want := range map[string]any{
		"{{ kv('k', version=1) }}":                       "one",
		"{{ kv('k', version=2) + 1 }}":                   int64(3),
		"{{ kv('k', 'a', true, 1) }}":                    "one",
		"{{ kv('k', namespace='a', version=3) }}":        "three",
		"{{ kv('k') }}":                                  "three",
		"{{ kv('k', version=9, errorOnMissing=false) }}": nil,
		"{{ kv('k', version=9, default='D') }}":          "D", // default wins, as for a missing key
		"{{ kv('nokey', version=1, default=0) }}":        int64(0),
	} {
		got, err := e.Render(context.Background(), src, flowData("a.b"))
		if err != nil || got != want {
			t.Errorf("%s = %#v, %v; want %#v", src, got, err, want)
		}
	}
	_, err := e.Render(context.Background(), "{{ kv('k', version=9) }}", flowData("a.b"))
	wantError(t, err, kvflow.ENOTFOUND, "no version 9")
	_, err = e.Render(context.Background(), "{{ kv('k', version='x') }}", flowData("a"))
	wantError(t, err, kvflow.EINVALID, "version to be a whole number")
	_, err = e.Render(context.Background(), "{{ kv('k', version=0) }}", flowData("a"))
	wantError(t, err, kvflow.EINVALID, "version to be a whole number, 1 or more, not 0.")
	_, err = e.Render(context.Background(), "{{ kv('k', version=2.5) }}", flowData("a"))
	wantError(t, err, kvflow.EINVALID, "not 2.5.")
}
