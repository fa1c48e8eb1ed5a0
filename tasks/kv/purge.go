package kv

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// PurgeKV deletes entries across namespaces: io.kestra.plugin.core.kv.PurgeKV.
//
// Namespaces: the ones listed in namespaces (plus, by default, the ones
// below them), or those matching the namespacePattern glob, or, with
// neither, every namespace holding entries. Each must be reachable from the
// flow (its own namespace, an ancestor, or allowed by configuration), else
// the task fails before deleting anything. keyPattern (a glob with * and ?)
// narrows the keys. By default only expired entries go; expiredOnly: false or
// behavior: {type: key, expiredOnly: false} removes live ones too.
//
// behavior: {type: version, before: INSTANT} or {type: version, keepAmount:
// N} purges old versions from the keys' history, as Kestra does: versions
// written before the instant, or all but the newest N; the newest version of
// a key (the live value, or the deletion) always stays.
//
// Output: size, the number of entries (or, for type version, versions) deleted.
type PurgeKV struct {
	Namespaces             plugin.Property[[]string]       `yaml:"namespaces"`
	NamespacePattern       plugin.Property[string]         `yaml:"namespacePattern"`
	IncludeChildNamespaces plugin.Property[bool]           `yaml:"includeChildNamespaces"` // default true
	KeyPattern             plugin.Property[string]         `yaml:"keyPattern"`
	ExpiredOnly            plugin.Property[bool]           `yaml:"expiredOnly"` // deprecated in Kestra; overrides behavior
	Behavior               plugin.Property[map[string]any] `yaml:"behavior"`    // default {type: key, expiredOnly: true}
}

const bothNamespaceProps = "Properties `namespaces` and `namespacePattern` can't be used at the same time — use one or the other."

// Validate checks the literal properties when the flow loads.
func (t *PurgeKV) Validate() error {
	errs := []error{
		t.Namespaces.Check(),
		t.NamespacePattern.Check(),
		t.IncludeChildNamespaces.Check(),
		t.KeyPattern.Check(),
		t.ExpiredOnly.Check(),
		t.Behavior.Check(),
	}
	nss, nsOK, _ := literal(t.Namespaces)
	pattern, patOK, _ := literal(t.NamespacePattern)
	if nsOK && patOK && len(nss) > 0 && strings.TrimSpace(pattern) != "" {
		errs = append(errs, invalid("namespaces", "%s", bothNamespaceProps))
	}
	for i, ns := range nss {
		if err := storage.ValidateNamespace(ns); err != nil {
			errs = append(errs, invalid(fmt.Sprintf("namespaces[%d]", i), "%s", kvflow.ErrorMessage(err)))
		}
	}
	if b, ok, _ := literal(t.Behavior); ok {
		if _, err := parseBehavior(b); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErrors(errs...)
}

// purgeBehavior is a parsed behavior property.
type purgeBehavior struct {
	typ         string // key or version
	expiredOnly bool   // key
	before      *time.Time
	keepAmount  *int
}

func parseBehavior(m map[string]any) (purgeBehavior, error) {
	b := purgeBehavior{typ: "key", expiredOnly: true}
	if m == nil {
		return b, nil
	}
	if v, ok := m["type"]; ok {
		s, _ := v.(string)
		switch s = strings.ToLower(strings.TrimSpace(s)); s {
		case "key", "version":
			b.typ = s
		default:
			return b, invalid("behavior.type", "%s is unknown; expected key or version.", plugin.Describe(v))
		}
	}
	for k, v := range m {
		switch {
		case k == "type":
		case k == "expiredOnly" && b.typ == "key":
			x, err := plugin.Convert[bool]("behavior.expiredOnly", v)
			if err != nil {
				return b, invalid("behavior.expiredOnly", "expected true or false, got %s.", plugin.Describe(v))
			}
			b.expiredOnly = x
		case k == "before" && b.typ == "version":
			var tm time.Time
			var err error
			switch x := v.(type) {
			case time.Time:
				tm = x
			case string:
				tm, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(x))
			default:
				err = fmt.Errorf("not text")
			}
			if err != nil {
				return b, invalid("behavior.before", "expected an ISO-8601 instant such as 2024-07-15T06:10:33Z, got %s.", plugin.Describe(v))
			}
			b.before = &tm
		case k == "keepAmount" && b.typ == "version":
			n, err := plugin.Convert[int]("behavior.keepAmount", v)
			if err != nil || n < 0 {
				return b, invalid("behavior.keepAmount", "expected a whole number of 0 or more, got %s.", plugin.Describe(v))
			}
			b.keepAmount = &n
		default:
			return b, invalid("behavior."+k, "unknown property for behavior type %s.", b.typ)
		}
	}
	if b.before != nil && b.keepAmount != nil {
		return b, invalid("behavior", "Cannot set both 'before' and 'keepAmount' properties.")
	}
	if b.typ == "version" && b.before == nil && b.keepAmount == nil {
		return b, invalid("behavior", "type version needs 'before' or 'keepAmount'.")
	}
	return b, nil
}

// Run resolves the namespaces, checks access to all of them, then purges.
func (t *PurgeKV) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	listed, err := t.Namespaces.Get(ctx, rc, nil)
	if err != nil {
		return nil, err
	}
	pattern, err := t.NamespacePattern.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	pattern = strings.TrimSpace(pattern)
	if len(listed) > 0 && pattern != "" {
		return nil, propErr(rc, "namespaces", kvflow.Errorf(kvflow.EINVALID, "%s", bothNamespaceProps))
	}
	children, err := t.IncludeChildNamespaces.Get(ctx, rc, true)
	if err != nil {
		return nil, err
	}
	keyPattern, err := t.KeyPattern.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	bm, err := t.Behavior.Get(ctx, rc, nil)
	if err != nil {
		return nil, err
	}
	b, err := parseBehavior(bm)
	if err != nil {
		return nil, propErr(rc, "behavior", err)
	}
	if t.ExpiredOnly.IsSet() {
		eo, err := t.ExpiredOnly.Get(ctx, rc, true)
		if err != nil {
			return nil, err
		}
		b = purgeBehavior{typ: "key", expiredOnly: eo}
	}

	nss, err := t.namespaces(ctx, rc, listed, pattern, children)
	if err != nil {
		return nil, err
	}
	rc.Log(ctx, slog.LevelInfo, fmt.Sprintf("purging %d namespaces: %s", len(nss), strings.Join(nss, ", ")))
	var size int64
	if b.typ == "version" && len(nss) > 0 {
		o := storage.PurgeVersionsOptions{Namespaces: nss, KeyGlob: strings.TrimSpace(keyPattern)}
		if b.before != nil {
			o.Before = *b.before
		} else {
			o.KeepAmount = *b.keepAmount
		}
		purged, err := rc.Store.PurgeVersions(ctx, o)
		for _, n := range purged {
			size += int64(n)
		}
		if err != nil {
			return nil, err
		}
		rc.Log(ctx, slog.LevelInfo, fmt.Sprintf("purged %d old versions", size))
		return plugin.Outputs{"size": size}, nil
	}
	if len(nss) > 0 {
		purged, err := rc.Store.Purge(ctx, storage.PurgeOptions{
			Namespaces: nss,
			KeyGlob:    strings.TrimSpace(keyPattern),
			All:        !b.expiredOnly,
		})
		for _, n := range purged {
			size += int64(n)
		}
		if err != nil {
			return nil, err
		}
	}
	rc.Log(ctx, slog.LevelInfo, fmt.Sprintf("purged %d keys", size))
	return plugin.Outputs{"size": size}, nil
}

// namespaces returns the namespaces to purge, sorted, after checking that the
// flow may reach each one.
func (t *PurgeKV) namespaces(ctx context.Context, rc *plugin.RunContext, listed []string, pattern string, children bool) ([]string, error) {
	listed = append([]string(nil), listed...)
	for i, ns := range listed {
		listed[i] = strings.TrimSpace(ns)
		if err := storage.ValidateNamespace(listed[i]); err != nil {
			return nil, propErr(rc, fmt.Sprintf("namespaces[%d]", i), err)
		}
	}
	stats, err := rc.Store.NamespacesWithEntries(ctx)
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot list namespaces to purge: the database is unreachable: %w", err)
	}
	set := map[string]bool{}
	for _, st := range stats {
		ns := st.Namespace
		switch {
		case pattern != "":
			set[ns] = globMatch(pattern, ns)
		case len(listed) > 0:
			for _, l := range listed {
				if ns == l || (children && strings.HasPrefix(ns, l+".")) {
					set[ns] = true
				}
			}
		default:
			set[ns] = true
		}
	}
	for _, l := range listed {
		set[l] = true // listed namespaces count even when they hold nothing
	}
	out := []string{}
	for ns, ok := range set {
		if ok {
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	for _, ns := range out {
		if _, err := rc.TargetNamespace(ns); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// globMatch reports whether s matches pattern, where * matches any run of
// characters and ? one character; everything else matches itself.
func globMatch(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
