package kvflow

import (
	"sort"
	"strings"
)

// Patterns name namespaces: "a.b" is that namespace, "a.b.*" is a.b and every
// namespace below it (by whole dotted segments: not a.bc), and "*" is any.

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

// UnmarshalText decodes what MarshalText encodes; storage.ParseScope also
// validates the patterns.
func (s *Scope) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = Scope{limited: true}
		return nil
	}
	*s = NewScope(strings.Split(string(b), ",")...)
	return nil
}
