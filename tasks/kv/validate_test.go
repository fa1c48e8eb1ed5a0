package kv_test

import (
	"strings"
	"testing"

	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/tasks/kv"
)

// TestValidate_Literals_LoadTimeErrorsNameTheProperty decodes task
// properties as a flow load does and checks the field errors.
func TestValidate_Literals_LoadTimeErrorsNameTheProperty(t *testing.T) {
	for _, c := range []struct {
		name, typ, src string
		field          string // "" when the error is not placed on one property
		parts          []string
	}{
		{"Set_TTLNotISO", kv.SetType, "key: k\nvalue: v\nttl: 30 days", "ttl", []string{`"30 days"`, "ISO-8601"}},
		{"Set_TTLNegative", kv.SetType, "key: k\nvalue: v\nttl: -PT5M", "ttl", []string{`"-PT5M"`, "positive"}},
		{"Set_KeyWithSlash", kv.SetType, "key: a/b\nvalue: v", "key", []string{`"a/b"`, "alphanumeric"}},
		{"Set_KeyEmpty", kv.SetType, "key: \"\"\nvalue: v", "key", []string{"Key cannot be null or empty"}},
		{"Set_KVTypeUnknown", kv.SetType, "key: k\nvalue: v\nkvType: TEXT", "kvType", []string{`"TEXT"`, "STRING, NUMBER"}},
		{"Set_KeyMissing", kv.SetType, "value: v", "key", []string{"required"}},
		{"Set_ValueMissing", kv.SetType, "key: k", "value", []string{"required"}},
		{"Set_LiteralValueNotANumber", kv.SetType, "key: k\nvalue: abc\nkvType: NUMBER", "value", []string{"STRING, 3 bytes, sha256:ba7816bf", "NUMBER"}},
		{"Set_LiteralBooleanWithKVTypeNumber", kv.SetType, "key: k\nvalue: true\nkvType: NUMBER", "value", []string{"NUMBER", "BOOLEAN, 4 bytes"}},
		{"Set_OverwriteNotBoolean", kv.SetType, "key: k\nvalue: v\noverwrite: maybe", "overwrite", []string{"STRING, 5 bytes, sha256:dcfff5eb"}},
		{"Set_NamespaceInvalid", kv.SetType, "key: k\nvalue: v\nnamespace: Company", "namespace", []string{`"Company"`}},
		{"Set_UnknownProperty", kv.SetType, "key: k\nvalue: v\nvalues: x", "values", nil},
		{"Get_KeyInvalid", kv.GetType, "key: \"bad key\"", "key", []string{`"bad key"`}},
		{"Get_ErrorOnMissingNotBoolean", kv.GetType, "key: k\nerrorOnMissing: 3", "errorOnMissing", nil},
		{"Delete_KeyMissing", kv.DeleteType, "namespace: company", "key", []string{"required"}},
		{"GetKeys_NamespaceInvalid", kv.GetKeysType, "namespace: a b", "namespace", []string{`"a b"`}},
		{"PurgeKV_NamespacesAndPattern", kv.PurgeKVType, "namespaces: [a]\nnamespacePattern: \"a*\"", "namespaces", []string{"`namespaces` and `namespacePattern` can't be used at the same time"}},
		{"PurgeKV_NamespaceInvalid", kv.PurgeKVType, "namespaces: [ok, Not OK]", "", []string{"namespaces[1]", `"Not OK"`}},
		{"PurgeKV_BeforeAndKeepAmount", kv.PurgeKVType, "behavior:\n  type: version\n  before: \"2024-01-01T00:00:00Z\"\n  keepAmount: 2", "behavior", []string{"Cannot set both 'before' and 'keepAmount' properties"}},
		{"PurgeKV_BehaviorTypeUnknown", kv.PurgeKVType, "behavior:\n  type: value", "", []string{"behavior.type", "STRING, 5 bytes, sha256:cd42404d", "key or version"}},
		{"PurgeKV_BehaviorUnknownField", kv.PurgeKVType, "behavior:\n  type: key\n  keepAmount: 2", "", []string{"behavior.keepAmount", "unknown"}},
		{"PurgeKV_BeforeNotInstant", kv.PurgeKVType, "behavior:\n  type: version\n  before: yesterday", "", []string{"behavior.before", "STRING, 9 bytes, sha256:9523d9fb"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errs := decode(t, c.typ, c.src)
			if len(errs) == 0 {
				t.Fatalf("decoding %q succeeded, want an error", c.src)
			}
			for _, fe := range errs {
				if c.field != "" && fe.Field != c.field {
					continue
				}
				msg := fe.Error()
				ok := true
				for _, p := range c.parts {
					ok = ok && strings.Contains(msg, p)
				}
				if ok {
					return
				}
			}
			t.Fatalf("errors %v: none on field %q containing %q", errs, c.field, c.parts)
		})
	}
}

// TestValidate_Templates_Pass checks templated properties are left to run time.
func TestValidate_Templates_Pass(t *testing.T) {
	for _, c := range []struct{ typ, src string }{
		{kv.SetType, "key: \"{{ inputs.k }}\"\nvalue: \"{{ inputs.v }}\"\nttl: \"{{ inputs.ttl }}\"\nkvType: \"{{ inputs.t }}\"\nnamespace: \"{{ inputs.ns }}\""},
		{kv.SetType, "key: k\nvalue: abc\nkvType: \"{{ inputs.t }}\""},
		{kv.GetType, "key: k\nerrorOnMissing: \"{{ inputs.b }}\""},
		{kv.PurgeKVType, "namespaces: [a]\nnamespacePattern: \"{{ inputs.p }}\""},
		{kv.PurgeKVType, "behavior:\n  type: version\n  keepAmount: \"{{ inputs.n }}\""},
	} {
		if _, errs := decode(t, c.typ, c.src); len(errs) > 0 {
			t.Errorf("%s %q: %v", c.typ, c.src, errs)
		}
	}
}

// TestRegistry_KVTypes_Registered checks the five types are in the default registry.
func TestRegistry_KVTypes_Registered(t *testing.T) {
	for _, typ := range []string{kv.SetType, kv.GetType, kv.GetKeysType, kv.DeleteType, kv.PurgeKVType} {
		d, ok := plugin.Default.Lookup(typ)
		if !ok {
			t.Fatalf("%s is not registered", typ)
		}
		if d.Description == "" || d.New() == nil {
			t.Fatalf("%s: incomplete definition %+v", typ, d)
		}
	}
}
