package template_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
	. "github.com/kvflow/kvflow/template"
)

// kv() reads only inside the scope the render's context carries: named
// namespaces outside it are refused, and inheritance stops at it.
func TestKV_ScopeFromContext(t *testing.T) {
	s, _ := kvStore(t)
	set(t, s, "team", "secret", storage.String("s3cr3t"), 0)
	set(t, s, "team", "shared", storage.String("from team"), 0)
	set(t, s, "team.a", "own", storage.String("mine"), 0)
	e := New(Options{KV: s, Policy: storage.NewPolicy(map[string][]string{"team.a": {"team"}})})
	scoped := storage.WithScope(context.Background(), storage.NewScope("team.a.*"))
	data := flowData("team.a")

	_, err := e.Render(scoped, "{{ kv('secret', 'team') }}", data)
	if kvflow.ErrorCode(err) != kvflow.EFORBIDDEN || !strings.Contains(err.Error(), "Access to 'team' namespace is not allowed from 'team.a': it is outside the scope") {
		t.Errorf("named namespace outside the scope: %v", err)
	}
	_, err = e.Render(scoped, "{{ kv('shared') }}", data)
	if kvflow.ErrorCode(err) != kvflow.ENOTFOUND || strings.Contains(err.Error(), "from team") {
		t.Errorf("inheritance past the scope: %v, want not found in team.a", err)
	}
	if got, err := e.Render(scoped, "{{ kv('own') }}", data); err != nil || got != "mine" {
		t.Errorf("own namespace: %v, %v", got, err)
	}
	// Without a scope the same reads work (an ancestor, even granted).
	if got, err := e.Render(context.Background(), "{{ kv('shared') }} {{ kv('secret', 'team') }}", data); err != nil || got != "from team s3cr3t" {
		t.Errorf("unscoped: %v, %v", got, err)
	}
}
