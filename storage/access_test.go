package storage_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

func TestScope_Contains(t *testing.T) {
	s := storage.NewScope("team.a.*", "prod")
	for ns, want := range map[string]bool{
		"team.a": true, "team.a.b": true, "team.a.b.c": true, "team": false, "team.ab": false,
		"prod": true, "prod.eu": false, "other": false,
	} {
		if got := s.Contains(ns); got != want {
			t.Errorf("%s.Contains(%q) = %v, want %v", s, ns, got, want)
		}
	}
	if !storage.NewScope().Contains("anything") || !storage.NewScope("x", "*").Contains("y") {
		t.Error("no patterns, or *, must be unrestricted")
	}
	if s.ContainsTree("prod") || !s.ContainsTree("team.a") || !s.ContainsTree("team.a.b") || s.ContainsTree("team") {
		t.Error("ContainsTree: only a.* patterns cover a namespace and everything below it")
	}
}

func TestScope_Intersect(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"*", "team.a.*", "team.a.*"},
		{"team.*", "team.a.*", "team.a.*"},
		{"team.a.*", "team.*", "team.a.*"},
		{"team.a.*", "team.a", "team.a"},
		{"team.a.*", "team", "no namespace"},
		{"team.a.*", "prod.*", "no namespace"},
		{"team.a.*,prod", "prod,team.a.x.*", "prod, team.a.x.*"},
	} {
		a, b := storage.NewScope(strings.Split(tc.a, ",")...), storage.NewScope(strings.Split(tc.b, ",")...)
		if got := a.Intersect(b).String(); got != tc.want {
			t.Errorf("%s ∩ %s = %s, want %s", tc.a, tc.b, got, tc.want)
		}
		if got := b.Intersect(a).String(); got != tc.want {
			t.Errorf("%s ∩ %s = %s, want %s", tc.b, tc.a, got, tc.want)
		}
	}
	none := storage.NewScope("a").Intersect(storage.NewScope("b"))
	if none.Contains("a") || none.Contains("b") || none.Unrestricted() {
		t.Error("an empty intersection must allow nothing")
	}
}

func TestScope_TextRoundTrip(t *testing.T) {
	none := storage.NewScope("a").Intersect(storage.NewScope("b"))
	for _, s := range []storage.Scope{{}, storage.NewScope("team.a.*", "prod"), none} {
		b, _ := s.MarshalText()
		var got storage.Scope
		if err := got.UnmarshalText(b); err != nil {
			t.Fatalf("UnmarshalText(%q): %v", b, err)
		}
		if got.String() != s.String() || got.Unrestricted() != s.Unrestricted() {
			t.Errorf("round trip of %s gave %s", s, got)
		}
	}
	if _, err := storage.ParseScope("ok,Bad NS"); kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Errorf("ParseScope of a bad pattern = %v, want EINVALID", err)
	}
}

func TestWithScope_OnlyNarrows(t *testing.T) {
	ctx := storage.WithScope(context.Background(), storage.NewScope("team.*"))
	ctx = storage.WithScope(ctx, storage.Scope{}) // unrestricted cannot widen it
	if got := storage.ScopeFrom(ctx).String(); got != "team.*" {
		t.Errorf("scope = %s, want team.*", got)
	}
	ctx = storage.WithScope(ctx, storage.NewScope("team.a.*", "prod"))
	if got := storage.ScopeFrom(ctx).String(); got != "team.a.*" {
		t.Errorf("scope = %s, want team.a.*", got)
	}
	if !storage.ScopeFrom(context.Background()).Unrestricted() {
		t.Error("a context without a scope must be unrestricted")
	}
}

func TestAccess_RuleGrantsAndScope(t *testing.T) {
	grants := storage.NewPolicy(map[string][]string{"team.a": {"team.a.*", "shared"}})
	for _, tc := range []struct {
		name     string
		access   storage.Access
		from, ns string
		want     bool
	}{
		{"own namespace", storage.Access{}, "team.a", "team.a", true},
		{"ancestor", storage.Access{}, "team.a", "team", true},
		{"child needs a grant", storage.Access{}, "team.a", "team.a.b", false},
		{"sibling needs a grant", storage.Access{}, "team.a", "team.b", false},
		{"granted child", storage.Access{Policy: grants}, "team.a", "team.a.b", true},
		{"granted other", storage.Access{Policy: grants}, "team.a", "shared", true},
		{"grant is per source", storage.Access{Policy: grants}, "team.b", "shared", false},
		{"ancestor outside the scope", storage.Access{Scope: storage.NewScope("team.a.*")}, "team.a", "team", false},
		{"own inside the scope", storage.Access{Scope: storage.NewScope("team.a.*")}, "team.a", "team.a", true},
		{"grant outside the scope", storage.Access{Policy: grants, Scope: storage.NewScope("team.a.*")}, "team.a", "shared", false},
		{"grant inside the scope", storage.Access{Policy: grants, Scope: storage.NewScope("team.a.*")}, "team.a", "team.a.b", true},
	} {
		if got := tc.access.Allows(tc.from, tc.ns); got != tc.want {
			t.Errorf("%s: Allows(%q, %q) = %v, want %v", tc.name, tc.from, tc.ns, got, tc.want)
		}
		if err := tc.access.Check(tc.from, tc.ns); (err == nil) != tc.want || (err != nil && (kvflow.ErrorCode(err) != kvflow.EFORBIDDEN || !strings.Contains(err.Error(), "'"+tc.ns+"'"))) {
			t.Errorf("%s: Check(%q, %q) = %v", tc.name, tc.from, tc.ns, err)
		}
	}
	scoped := storage.Access{Scope: storage.NewScope("team.a.*")}
	if err := scoped.Check("team.a", "team"); !strings.Contains(err.Error(), "outside the scope of whoever deployed or started this execution (team.a.*)") {
		t.Errorf("a scope refusal must say so: %v", err)
	}
	if got := strings.Join(scoped.Inherited("team.a.b"), " "); got != "team.a.b team.a" {
		t.Errorf("Inherited = %q: inheritance stops at the scope", got)
	}
	if got := strings.Join((storage.Access{}).Inherited("team.a.b"), " "); got != "team.a.b team.a team" {
		t.Errorf("unscoped Inherited = %q", got)
	}
}
