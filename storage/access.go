package storage

import (
	"context"
	"sort"
	"strings"

	"github.com/kvflow/kvflow"
)

// This file is kvflow's one namespace-access policy. Every decision about
// which namespace a caller may reach is made here: the API checks its
// callers' Scope, and a flow's tasks, kv() and kv() inheritance check Access.
//
// Patterns name namespaces: "a.b" is that namespace, "a.b.*" is a.b and every
// namespace below it (by whole dotted segments: not a.bc), and "*" is any.

// ValidatePattern returns EINVALID unless p is "*", a namespace, or a
// namespace followed by ".*".
func ValidatePattern(p string) error {
	if p == "*" {
		return nil
	}
	return ValidateNamespace(strings.TrimSuffix(p, ".*"))
}

// MatchPattern reports whether ns matches pattern p.
func MatchPattern(p, ns string) bool {
	if p == "*" || p == ns {
		return true
	}
	if base, ok := strings.CutSuffix(p, ".*"); ok {
		return ns == base || strings.HasPrefix(ns, base+".")
	}
	return false
}

// isSelfOrAncestor reports whether ns is from or one of its parents, by whole
// dotted segments: "prod" is an ancestor of "prod.eu" but not of "prod2".
func isSelfOrAncestor(ns, from string) bool {
	return ns == from || strings.HasPrefix(from, ns+".")
}

// Scope is the set of namespaces a caller may reach: the API's allow-list
// (server.namespaces), and the scope of whoever deployed or started an
// execution. The zero Scope is unrestricted.
type Scope struct {
	limited  bool
	patterns []string // sorted, without duplicates; empty when limited: nothing
}

// NewScope returns the scope of the patterns; none, or "*" among them, is
// unrestricted. Patterns are not validated here (see ValidatePattern).
func NewScope(patterns ...string) Scope {
	if len(patterns) == 0 {
		return Scope{}
	}
	for _, p := range patterns {
		if p == "*" {
			return Scope{}
		}
	}
	return Scope{limited: true, patterns: normalize(patterns)}
}

func normalize(ps []string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return compactStrings(out)
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Unrestricted reports whether the scope allows every namespace.
func (s Scope) Unrestricted() bool { return !s.limited }

// Patterns returns the scope's patterns; ["*"] when unrestricted.
func (s Scope) Patterns() []string {
	if !s.limited {
		return []string{"*"}
	}
	return append([]string(nil), s.patterns...)
}

// Contains reports whether ns is in the scope.
func (s Scope) Contains(ns string) bool {
	if !s.limited {
		return true
	}
	for _, p := range s.patterns {
		if MatchPattern(p, ns) {
			return true
		}
	}
	return false
}

// ContainsTree reports whether ns and every namespace below it are in the scope.
func (s Scope) ContainsTree(ns string) bool {
	if !s.limited {
		return true
	}
	for _, p := range s.patterns {
		if base, ok := strings.CutSuffix(p, ".*"); ok && (ns == base || strings.HasPrefix(ns, base+".")) {
			return true
		}
	}
	return false
}

// Intersect returns the namespaces in both s and o.
func (s Scope) Intersect(o Scope) Scope {
	switch {
	case !s.limited:
		return o
	case !o.limited:
		return s
	}
	var out []string
	for _, p := range s.patterns {
		for _, q := range o.patterns {
			if r, ok := intersectPatterns(p, q); ok {
				out = append(out, r)
			}
		}
	}
	return Scope{limited: true, patterns: normalize(out)}
}

// intersectPatterns returns the pattern matching what both p and q match,
// if any: patterns are subtrees or single namespaces, so one always exists.
func intersectPatterns(p, q string) (string, bool) {
	pb, pTree := strings.CutSuffix(p, ".*")
	qb, qTree := strings.CutSuffix(q, ".*")
	switch {
	case pTree && qTree:
		if MatchPattern(p, qb) {
			return q, true
		}
		if MatchPattern(q, pb) {
			return p, true
		}
	case pTree:
		return q, MatchPattern(p, q)
	case qTree:
		return p, MatchPattern(q, p)
	default:
		return p, p == q
	}
	return "", false
}

// String is "*" when unrestricted, else the patterns joined by ", ", or
// "no namespace" when nothing is allowed.
func (s Scope) String() string {
	switch {
	case !s.limited:
		return "*"
	case len(s.patterns) == 0:
		return "no namespace"
	}
	return strings.Join(s.patterns, ", ")
}

// MarshalText encodes the scope for a database column: "*", or the patterns
// joined by commas ("" when nothing is allowed).
func (s Scope) MarshalText() ([]byte, error) {
	if !s.limited {
		return []byte("*"), nil
	}
	return []byte(strings.Join(s.patterns, ",")), nil
}

// UnmarshalText decodes what MarshalText encodes, validating each pattern.
func (s *Scope) UnmarshalText(b []byte) error {
	text := string(b)
	if text == "" {
		*s = Scope{limited: true}
		return nil
	}
	ps := strings.Split(text, ",")
	for _, p := range ps {
		if err := ValidatePattern(p); err != nil {
			return kvflow.Errorf(kvflow.EINVALID, "Scope %q is invalid: %s", clip(text), kvflow.ErrorMessage(err))
		}
	}
	*s = NewScope(ps...)
	return nil
}

type scopeKey struct{}

// WithScope returns a context that carries s, narrowed by any scope ctx
// already carries: a scope can only shrink down a call chain. kv() reads
// it, so every template rendered under the context obeys it.
func WithScope(ctx context.Context, s Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, ScopeFrom(ctx).Intersect(s))
}

// ScopeFrom returns the scope ctx carries; unrestricted when none.
func ScopeFrom(ctx context.Context) Scope {
	s, _ := ctx.Value(scopeKey{}).(Scope)
	return s
}

// Policy is the engine's rule for what a flow may reach besides its own
// namespace and its ancestors: grants from configuration (allowedNamespaces),
// source pattern → target patterns. The zero Policy grants nothing.
type Policy struct {
	grants map[string][]string
}

// NewPolicy returns the policy of grants, source pattern → target patterns.
// Patterns are not validated here (see ValidatePattern).
func NewPolicy(grants map[string][]string) Policy {
	return Policy{grants: grants}
}

// Grants reports whether configuration lets a flow of namespace from reach ns.
func (p Policy) Grants(from, ns string) bool {
	for src, tos := range p.grants {
		if !MatchPattern(src, from) {
			continue
		}
		for _, to := range tos {
			if MatchPattern(to, ns) {
				return true
			}
		}
	}
	return false
}

// Access is what one execution may reach: a flow of namespace from may
// read and write its own namespace and its ancestors, and the namespaces
// Policy grants it, all inside Scope, the scope of whoever deployed or
// started it. So a flow never reaches what its deployer could not reach
// through the API. The zero Access is the engine's rule alone.
type Access struct {
	Policy Policy
	Scope  Scope
}

// Allows reports whether a flow of namespace from may reach ns.
func (a Access) Allows(from, ns string) bool {
	return a.Scope.Contains(ns) && (isSelfOrAncestor(ns, from) || a.Policy.Grants(from, ns))
}

// Check returns nil when a flow of namespace from may reach ns, else
// EFORBIDDEN naming both namespaces (and the scope, when it is the reason).
func (a Access) Check(from, ns string) error {
	switch {
	case a.Allows(from, ns):
		return nil
	case !a.Scope.Contains(ns):
		return kvflow.Errorf(kvflow.EFORBIDDEN, "Cannot access the KV store. Access to '%s' namespace is not allowed from '%s': it is outside the scope of whoever deployed or started this execution (%s).", ns, from, a.Scope)
	}
	return kvflow.Errorf(kvflow.EFORBIDDEN, "Cannot access the KV store. Access to '%s' namespace is not allowed from '%s'.", ns, from)
}

// Inherited returns the namespaces kv() looks in for a key of a flow of
// namespace from: from and its ancestors, nearest first, leaving out those
// the flow may not reach. Nil when it may reach none of them.
func (a Access) Inherited(from string) []string {
	var out []string
	for _, ns := range Ancestors(from) {
		if a.Allows(from, ns) {
			out = append(out, ns)
		}
	}
	return out
}
