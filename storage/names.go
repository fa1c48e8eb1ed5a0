package storage

import (
	"strings"
	"unicode/utf8"

	"github.com/kvflow/kvflow"
)

const (
	MaxNamespaceLen   = 150
	MaxKeyLen         = 350
	MaxDescriptionLen = 1000 // characters
)

// matchName checks ^[a-z0-9][a-z0-9._-]*$, with upper case letters too when
// upper is set: the namespace and key rules, without a regexp on the hot path.
func matchName(s string, upper bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case upper && c >= 'A' && c <= 'Z':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return s != ""
}

// ValidateNamespace returns EINVALID unless ns follows Kestra's namespace rule.
func ValidateNamespace(ns string) error {
	switch {
	case ns == "":
		return kvflow.Errorf(kvflow.EINVALID, "Namespace cannot be empty.")
	case len(ns) > MaxNamespaceLen:
		return kvflow.Errorf(kvflow.EINVALID, "Namespace %q is %d characters long; the limit is %d.", kvflow.Clip(ns), len(ns), MaxNamespaceLen)
	case !matchName(ns, false):
		return kvflow.Errorf(kvflow.EINVALID, "Namespace %q is invalid: it must start with a lowercase letter or a digit and contain only lowercase letters, digits, dots (.), underscores (_) and hyphens (-).", kvflow.Clip(ns))
	case strings.Contains(ns, "..") || strings.HasSuffix(ns, "."):
		return kvflow.Errorf(kvflow.EINVALID, "Namespace %q is invalid: its dots must separate non-empty parts (no \"..\" and no trailing dot).", kvflow.Clip(ns))
	}
	return nil
}

// ValidateKey returns EINVALID unless key follows Kestra's key rule.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return kvflow.Errorf(kvflow.EINVALID, "Key cannot be null or empty.")
	case len(key) > MaxKeyLen:
		return kvflow.Errorf(kvflow.EINVALID, "Key %q is %d characters long; the limit is %d.", kvflow.Clip(key), len(key), MaxKeyLen)
	case !matchName(key, true):
		return kvflow.Errorf(kvflow.EINVALID, "Key %q is invalid: a key must start with an alphanumeric character (uppercase or lowercase) and can contain alphanumeric characters (uppercase or lowercase), dots (.), underscores (_), and hyphens (-) only.", kvflow.Clip(key))
	}
	return nil
}

// ValidateDescription returns EINVALID unless d is UTF-8 text without NUL
// bytes of at most MaxDescriptionLen characters.
func ValidateDescription(d string) error {
	switch {
	case !utf8.ValidString(d):
		return kvflow.Errorf(kvflow.EINVALID, "Field 'description' is not valid UTF-8 text.")
	case strings.IndexByte(d, 0) >= 0:
		return kvflow.Errorf(kvflow.EINVALID, "Field 'description' contains a NUL byte.")
	}
	if n := utf8.RuneCountInString(d); n > MaxDescriptionLen {
		return kvflow.Errorf(kvflow.EINVALID, "Field 'description' is %d characters long; the limit is %d.", n, MaxDescriptionLen)
	}
	return nil
}

// validateNames checks both names, the namespace first.
func validateNames(ns, key string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	return ValidateKey(key)
}

// Ancestors returns ns and its parents, nearest first: a.b.c → [a.b.c a.b a].
func Ancestors(ns string) []string {
	out := []string{ns}
	for i := len(ns) - 1; i > 0; i-- {
		if ns[i] == '.' {
			out = append(out, ns[:i])
		}
	}
	return out
}
