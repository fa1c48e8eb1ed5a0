package storage

import (
	"context"
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
func MatchPattern(p, ns string) bool { return kvflow.MatchPattern(p, ns) }

// isSelfOrAncestor reports whether ns is from or one of its parents, by whole
// dotted segments: "prod" is an ancestor of "prod.eu" but not of "prod2".
func isSelfOrAncestor(ns, from string) bool {
	return ns == from || strings.HasPrefix(from, ns+".")
}

// Scope is the set of namespaces a caller may reach (see kvflow.Scope).
type Scope = kvflow.Scope

// NewScope returns the scope of the patterns; none, or "*" among them, is
// unrestricted. Patterns are not validated here (see ValidatePattern).
func NewScope(patterns ...string) Scope { return kvflow.NewScope(patterns...) }

// ParseScope decodes a scope's text form (Scope.MarshalText), validating
// each pattern.
func ParseScope(text string) (Scope, error) {
	if text != "" {
		for _, p := range strings.Split(text, ",") {
			if err := ValidatePattern(p); err != nil {
				return Scope{}, kvflow.Errorf(kvflow.EINVALID, "Scope %q is invalid: %s", kvflow.Clip(text), kvflow.ErrorMessage(err))
			}
		}
	}
	var sc Scope
	err := sc.UnmarshalText([]byte(text))
	return sc, err
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
