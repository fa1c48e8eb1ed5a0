package template_test

import (
	"context"
	"testing"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
	. "github.com/kvflow/kvflow/template"
)

// What a template renders from a sensitive value is masked too: after
// filters (upper), through a JSON leaf, through tags; texts rendered from
// plain values are not, nor short derived ones.
func TestTaint_RenderedFromSensitive_IsMasked(t *testing.T) {
	ctx := context.Background()
	s := testpair.Local(t, storage.Options{Keys: storagetest.TestKeys(t)}).Store
	if _, err := s.Set(ctx, "company.team", "pw", storage.String("hunter2-xyz"), storage.SetOptions{Sensitive: true}); err != nil {
		t.Fatal(err)
	}
	doc := storage.Value{Type: storage.JSON, V: map[string]any{"user": "ada", "password": "Leaf-Secret"}}
	if _, err := s.Set(ctx, "company.team", "creds", doc, storage.SetOptions{Sensitive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set(ctx, "company.team", "plain", storage.String("visible-text"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	e := New(Options{KV: s})
	data := Context{"flow": map[string]any{"namespace": "company.team"}}
	sec := &storage.Secrets{}
	sctx := storage.WithSecrets(ctx, sec)
	for _, src := range []string{
		"{{ kv('pw') | upper }}",
		"pw={{ kv('pw') | replace({'hunter': 'HUNT'}) }}",
		"{{ json(kv('creds')).password | lower }}",
		"{% set x = kv('pw') | capitalize %}{% for i in [1] %}[{{ x | title }}]{% endfor %}",
		"{{ kv('plain') | upper }}",
		"{{ kv('pw') | length }}",
	} {
		if _, err := e.RenderString(sctx, src, data); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
	}
	for in, want := range map[string]string{
		"log: HUNTER2-XYZ":           "log: ******",
		"log: HUNT2-xyz":             "log: ******",
		"log: leaf-secret":           "log: ******",
		"log: Leaf-Secret / bob":     "log: ****** / bob",
		"log: [Hunter2-xyz]":         "log: ******",
		"log: VISIBLE-TEXT and 11":   "log: VISIBLE-TEXT and 11",
		"log: hunter2-xyz, raw text": "log: ******, raw text",
	} {
		if got := sec.MaskText(in); got != want {
			t.Errorf("MaskText(%q) = %q, want %q", in, got, want)
		}
	}
}
