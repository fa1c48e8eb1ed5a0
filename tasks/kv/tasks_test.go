package kv_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/tasks/kv"
)

// kvCase is one task run on a fresh store.
type kvCase struct {
	name  string
	ns    string // the flow's namespace; "" means company.team
	allow bool   // configuration allows every namespace
	setup func(e *env)
	typ   string
	src   string // the task's properties, in YAML
	check func(t *testing.T, e *env, out plugin.Outputs, err error)
}

const flowNS = "company.team"

func TestKVTasks_SQLiteDir(t *testing.T)     { runKVCases(t, testpair.Local) }
func TestKVTasks_PostgresMinIO(t *testing.T) { runKVCases(t, testpair.Service) }

func runKVCases(t *testing.T, pair pairFunc) {
	e := newEnv(t, pair)
	for _, c := range kvCases() {
		t.Run(c.name, func(t *testing.T) {
			e.reset(t)
			if c.allow {
				e.access.Policy = storage.NewPolicy(map[string][]string{"*": {"*"}})
			}
			if c.setup != nil {
				c.setup(e)
			}
			ns := c.ns
			if ns == "" {
				ns = flowNS
			}
			out, err := e.run(ns, c.typ, c.src)
			c.check(t, e, out, err)
		})
	}
}

// stored checks the value under ns/key.
func stored(ns, key string, want storage.Value) func(t *testing.T, e *env, out plugin.Outputs, err error) {
	return func(t *testing.T, e *env, out plugin.Outputs, err error) {
		t.Helper()
		mustOK(t, err)
		_, got := e.mustGet(ns, key)
		if got.Type != want.Type || !reflect.DeepEqual(got.V, want.V) {
			t.Fatalf("%s/%s = %s %#v, want %s %#v", ns, key, got.Type, got.V, want.Type, want.V)
		}
	}
}

// output checks one output.
func output(name string, want any) func(t *testing.T, e *env, out plugin.Outputs, err error) {
	return func(t *testing.T, e *env, out plugin.Outputs, err error) {
		t.Helper()
		mustOK(t, err)
		got, ok := out[name]
		if !ok {
			t.Fatalf("outputs %v have no %q", out, name)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("output %s = %#v (%T), want %#v (%T)", name, got, got, want, want)
		}
	}
}

func failsWith(code string, parts ...string) func(t *testing.T, e *env, out plugin.Outputs, err error) {
	return func(t *testing.T, e *env, out plugin.Outputs, err error) {
		t.Helper()
		wantErr(t, err, code, parts...)
	}
}

func str(s string) storage.Value { return storage.String(s) }

// seedFour puts two expired and two live keys in company.team.
func seedFour(e *env) {
	e.put(flowNS, "expired-1", str("a"), time.Minute)
	e.put(flowNS, "expired-2", str("b"), time.Minute)
	e.put(flowNS, "live-1", str("c"), 0)
	e.put(flowNS, "live-2", str("d"), time.Hour)
	e.clock.Add(2 * time.Minute)
}

// seedVersions writes v1 five times, v2 twice then deletes it, other three
// times, one second apart for each round.
func seedVersions(e *env) {
	for i := 0; i < 5; i++ {
		e.put(flowNS, "v1", str(fmt.Sprint(i)), 0)
		if i < 2 {
			e.put(flowNS, "v2", str(fmt.Sprint(i)), 0)
		}
		if i < 3 {
			e.put(flowNS, "other", str(fmt.Sprint(i)), 0)
		}
		e.clock.Add(time.Second)
	}
	if _, err := e.store.Delete(context.Background(), flowNS, "v2"); err != nil {
		e.t.Fatal(err)
	}
}

// checkVersions checks which versions of flowNS/key history keeps.
func checkVersions(t *testing.T, e *env, key string, want ...int64) {
	t.Helper()
	p, err := e.store.History(context.Background(), flowNS, key, storage.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for i := len(p.Versions) - 1; i >= 0; i-- {
		got = append(got, p.Versions[i].Version)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("versions of %s = %v, want %v", key, got, want)
	}
}

// purgeNamespaces are the namespaces seedTree fills.
var purgeNamespaces = []string{"company", "company.team", "company.team.sub", "companyx", "other"}

// seedTree puts an expired key "old" and a live key "new" in each of purgeNamespaces.
func seedTree(e *env) {
	for _, ns := range purgeNamespaces {
		e.put(ns, "old", str("x"), time.Minute)
		e.put(ns, "new", str("y"), 0)
	}
	e.clock.Add(2 * time.Minute)
}

// total counts the entries of ns, expired ones included.
func (e *env) total(ns string) int {
	e.t.Helper()
	stats, err := e.store.NamespacesWithEntries(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range stats {
		if s.Namespace == ns {
			return s.Keys
		}
	}
	return 0
}

// purged checks the size output and which namespaces lost their "old" key.
func purged(size int64, gone ...string) func(t *testing.T, e *env, out plugin.Outputs, err error) {
	return func(t *testing.T, e *env, out plugin.Outputs, err error) {
		t.Helper()
		output("size", size)(t, e, out, err)
		for _, ns := range purgeNamespaces {
			want := 2
			for _, g := range gone {
				if g == ns {
					want = 1
				}
			}
			if got := e.total(ns); got != want {
				t.Errorf("namespace %s holds %d entries after the purge, want %d", ns, got, want)
			}
		}
	}
}

func kvCases() []kvCase {
	dt := time.Date(2023, 5, 2, 1, 2, 3, 0, time.UTC)
	return []kvCase{
		// Set.
		{name: "Set_DefaultNamespace_StoresStringInFlowNamespace", typ: kv.SetType,
			src: "key: my_key\nvalue: hello",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				stored(flowNS, "my_key", str("hello"))(t, e, out, err)
				output("version", int64(1))(t, e, out, err)
			}},
		{name: "Set_SameNamespaceExplicit_Stores", typ: kv.SetType,
			src:   "key: k\nvalue: v\nnamespace: company.team",
			check: stored(flowNS, "k", str("v"))},
		{name: "Set_AncestorNamespace_Stores", typ: kv.SetType,
			src:   "key: k\nvalue: v\nnamespace: company",
			check: stored("company", "k", str("v"))},
		{name: "Set_ChildNamespaceWithoutConfiguration_Forbidden", typ: kv.SetType,
			src:   "key: k\nvalue: v\nnamespace: company.team.child",
			check: failsWith(kvflow.EFORBIDDEN, "key 'k'", "Access to 'company.team.child' namespace is not allowed from 'company.team'.")},
		{name: "Set_ChildNamespaceAllowedByConfiguration_Stores", typ: kv.SetType, allow: true,
			src:   "key: k\nvalue: v\nnamespace: company.team.child",
			check: stored("company.team.child", "k", str("v"))},
		{name: "Set_SiblingWithSharedPrefix_Forbidden", typ: kv.SetType, ns: "prod",
			src:   "key: k\nvalue: v\nnamespace: prod2",
			check: failsWith(kvflow.EFORBIDDEN, "key 'k'", "Access to 'prod2' namespace is not allowed from 'prod'.")},
		{name: "Set_TTL5m_ExpiresIn5mWithin1m", typ: kv.SetType,
			src: "key: k\nvalue: v\nttl: PT5M",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				mustOK(t, err)
				en, _ := e.mustGet(flowNS, "k")
				if en.Expires == nil {
					t.Fatal("entry has no expiry")
				}
				want := e.clock.Now().Add(5 * time.Minute)
				if d := en.Expires.Sub(want); d < -time.Minute || d > time.Minute {
					t.Fatalf("expiry %v is %v away from now+5m", en.Expires, d)
				}
				e.clock.Add(6 * time.Minute)
				if _, _, err := e.get(flowNS, "k"); kvflow.ErrorCode(err) != kvflow.EEXPIRED {
					t.Fatalf("Get 6 minutes later: %v, want expired", err)
				}
			}},
		{name: "Set_OverwriteFalseOnExistingKey_Conflict", typ: kv.SetType,
			setup: func(e *env) { e.put(flowNS, "k", str("first"), 0) },
			src:   "key: k\nvalue: second\noverwrite: false",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				wantErr(t, err, kvflow.ECONFLICT, "Cannot set value for key 'k' in namespace 'company.team'. Key already exists and `overwrite` is set to `false`.")
				if _, v := e.mustGet(flowNS, "k"); v.V != "first" {
					t.Fatalf("value after refused write = %v, want first", v.V)
				}
			}},
		{name: "Set_OverwriteFalseOnExpiredKey_Writes", typ: kv.SetType,
			setup: func(e *env) { e.put(flowNS, "k", str("first"), time.Minute); e.clock.Add(2 * time.Minute) },
			src:   "key: k\nvalue: second\noverwrite: false",
			check: stored(flowNS, "k", str("second"))},
		{name: "Set_OverwriteDefault_ReplacesAndBumpsVersion", typ: kv.SetType,
			setup: func(e *env) { e.put(flowNS, "k", str("first"), 0) },
			src:   "key: k\nvalue: second",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				stored(flowNS, "k", str("second"))(t, e, out, err)
				en, _ := e.mustGet(flowNS, "k")
				output("version", int64(2))(t, e, out, err)
				if _, prev, err := e.store.GetVersion(context.Background(), flowNS, "k", en.Version-1); err != nil || prev.V != "first" {
					t.Fatalf("version %d = %v, %v; want first", en.Version-1, prev.V, err)
				}
				if p, _ := e.store.History(context.Background(), flowNS, "k", storage.HistoryOptions{Limit: 1}); p.Versions[0].Writer != "execution:e1 flow:company.team.f task:t" {
					t.Fatalf("writer = %q", p.Versions[0].Writer)
				}
			}},
		{name: "Set_KVTypeNumber_ParsesDecimalText", typ: kv.SetType,
			src:   "key: k\nvalue: \"123.45\"\nkvType: NUMBER",
			check: stored(flowNS, "k", storage.Value{Type: storage.NUMBER, V: 123.45})},
		{name: "Set_KVTypeBoolean_ParsesText", typ: kv.SetType,
			src:   "key: k\nvalue: \"true\"\nkvType: BOOLEAN",
			check: stored(flowNS, "k", storage.Value{Type: storage.BOOLEAN, V: true})},
		{name: "Set_KVTypeDatetime_ParsesISOInstant", typ: kv.SetType,
			src:   "key: k\nvalue: \"2023-05-02T01:02:03Z\"\nkvType: DATETIME",
			check: stored(flowNS, "k", storage.Value{Type: storage.DATETIME, V: dt})},
		{name: "Set_KVTypeDate_ParsesISODate", typ: kv.SetType,
			src:   "key: k\nvalue: \"2023-05-02\"\nkvType: DATE",
			check: stored(flowNS, "k", storage.Value{Type: storage.DATE, V: storage.Date{Time: time.Date(2023, 5, 2, 0, 0, 0, 0, time.UTC)}})},
		{name: "Set_KVTypeDuration_ParsesISODuration", typ: kv.SetType,
			src:   "key: k\nvalue: P1DT5S\nkvType: DURATION",
			check: stored(flowNS, "k", storage.Value{Type: storage.DURATION, V: storage.Duration{Text: "P1DT5S", D: 24*time.Hour + 5*time.Second}})},
		{name: "Set_KVTypeJSON_ParsesArrayToList", typ: kv.SetType,
			src:   "key: k\nvalue: '[{\"name\": \"John Doe\", \"age\": 32}, 2]'\nkvType: JSON",
			check: stored(flowNS, "k", storage.Value{Type: storage.JSON, V: []any{map[string]any{"name": "John Doe", "age": int64(32)}, int64(2)}})},
		{name: "Set_NoKVType_NumericTextStaysString", typ: kv.SetType,
			src:   "key: k\nvalue: \"123\"",
			check: stored(flowNS, "k", str("123"))},
		{name: "Set_SeedJSONExampleWithoutKVType_StoresText", typ: kv.SetType,
			src:   "key: my_json_key\nvalue: |\n  {\n    \"name\": \"John Doe\"\n  }\noverwrite: true",
			check: stored(flowNS, "my_json_key", str("{\n  \"name\": \"John Doe\"\n}\n"))},
		{name: "Set_YAMLNumberLiteral_StoresNumber", typ: kv.SetType,
			src:   "key: k\nvalue: 42",
			check: stored(flowNS, "k", storage.Value{Type: storage.NUMBER, V: int64(42)})},
		{name: "Set_YAMLMapLiteral_StoresJSON", typ: kv.SetType,
			src:   "key: k\nvalue:\n  a: 1\n  b: [x, \"{{ inputs.count }}\"]",
			check: stored(flowNS, "k", storage.Value{Type: storage.JSON, V: map[string]any{"a": int64(1), "b": []any{"x", int64(42)}}})},
		{name: "Set_SingleExpressionNumber_KeepsNumber", typ: kv.SetType,
			src:   "key: k\nvalue: \"{{ inputs.count }}\"",
			check: stored(flowNS, "k", storage.Value{Type: storage.NUMBER, V: int64(42)})},
		{name: "Set_SingleExpressionMap_KeepsJSON", typ: kv.SetType,
			src:   "key: k\nvalue: \"{{ inputs.obj }}\"",
			check: stored(flowNS, "k", storage.Value{Type: storage.JSON, V: map[string]any{"name": "John", "address": map[string]any{"city": "Paris"}}})},
		{name: "Set_MixedTemplate_StoresText", typ: kv.SetType,
			src:   "key: k\nvalue: \"n={{ inputs.count }}\"",
			check: stored(flowNS, "k", str("n=42"))},
		{name: "Set_KVTypeStringOnNumber_StoresText", typ: kv.SetType,
			src:   "key: k\nvalue: \"{{ inputs.count }}\"\nkvType: STRING",
			check: stored(flowNS, "k", str("42"))},
		{name: "Set_KVTypeNumberOnNumber_KeepsNumber", typ: kv.SetType,
			src:   "key: k\nvalue: \"{{ inputs.price }}\"\nkvType: NUMBER",
			check: stored(flowNS, "k", storage.Value{Type: storage.NUMBER, V: 123.45})},
		{name: "Set_KVTypeNumberOnBadText_ErrorNamesKeyTypeAndValue", typ: kv.SetType,
			src:   "key: k\nvalue: \"{{ 'abc' }}\"\nkvType: NUMBER",
			check: failsWith(kvflow.EINVALID, "key 'k'", "namespace 'company.team'", "NUMBER", "STRING, 3 bytes, sha256:ba7816bf")},
		{name: "Set_KVTypeMismatchOnTypedValue_ErrorNamesKeyTypeAndValue", typ: kv.SetType,
			src:   "key: k\nvalue: \"{{ inputs.flag }}\"\nkvType: NUMBER",
			check: failsWith(kvflow.EINVALID, "key 'k'", "namespace 'company.team'", "NUMBER", "BOOLEAN, 4 bytes, sha256:b5bea41b")},
		{name: "Set_KVTypeFromTemplate_Converts", typ: kv.SetType,
			src:   "key: k\nvalue: \"7\"\nkvType: \"{{ 'number' }}\"",
			check: stored(flowNS, "k", storage.Value{Type: storage.NUMBER, V: int64(7)})},
		{name: "Set_Description_Stored", typ: kv.SetType,
			src: "key: k\nvalue: v\nkvDescription: the answer",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				mustOK(t, err)
				if en, _ := e.mustGet(flowNS, "k"); en.Description != "the answer" {
					t.Fatalf("description = %q", en.Description)
				}
			}},
		{name: "Set_KeyFromTemplate_Rendered", typ: kv.SetType,
			src:   "key: \"{{ inputs.key }}\"\nvalue: v",
			check: stored(flowNS, "from_input", str("v"))},
		{name: "Set_InvalidKeyFromTemplate_Invalid", typ: kv.SetType,
			src:   "key: \"{{ inputs.badkey }}\"\nvalue: v",
			check: failsWith(kvflow.EINVALID, "property 'key'", `"a/b"`)},
		{name: "Set_NullValueFromTemplate_ErrorNamesKey", typ: kv.SetType,
			src:   "key: k\nvalue: \"{{ kv('nope', 'company.team', false) }}\"",
			check: failsWith(kvflow.EINVALID, "key 'k'", "namespace 'company.team'", "null")},
		{name: "Set_ValueFromKVFunction_KeepsType", typ: kv.SetType,
			setup: func(e *env) { e.put("company", "src", storage.Value{Type: storage.NUMBER, V: int64(5)}, 0) },
			src:   "key: k\nvalue: \"{{ kv('src') }}\"",
			check: stored(flowNS, "k", storage.Value{Type: storage.NUMBER, V: int64(5)})},

		// Get.
		{name: "Get_JSONValue_ReturnsMap", typ: kv.GetType,
			setup: func(e *env) {
				e.put(flowNS, "k", storage.Value{Type: storage.JSON, V: map[string]any{"field": "value", "n": int64(1)}}, 0)
			},
			src:   "key: k",
			check: output("value", map[string]any{"field": "value", "n": int64(1)})},
		{name: "Get_String_ReturnsString", typ: kv.GetType,
			setup: func(e *env) { e.put(flowNS, "k", str("hello"), 0) },
			src:   "key: k",
			check: output("value", "hello")},
		{name: "Get_Number_ReturnsInt64", typ: kv.GetType,
			setup: func(e *env) { e.put(flowNS, "k", storage.Value{Type: storage.NUMBER, V: int64(42)}, 0) },
			src:   "key: k",
			check: output("value", int64(42))},
		{name: "Get_Boolean_ReturnsBool", typ: kv.GetType,
			setup: func(e *env) { e.put(flowNS, "k", storage.Value{Type: storage.BOOLEAN, V: true}, 0) },
			src:   "key: k",
			check: output("value", true)},
		{name: "Get_Datetime_ReturnsISOText", typ: kv.GetType,
			setup: func(e *env) { e.put(flowNS, "k", storage.Value{Type: storage.DATETIME, V: dt}, 0) },
			src:   "key: k",
			check: output("value", "2023-05-02T01:02:03Z")},
		{name: "Get_Duration_ReturnsISOText", typ: kv.GetType,
			setup: func(e *env) {
				e.put(flowNS, "k", storage.Value{Type: storage.DURATION, V: storage.Duration{Text: "PT5S", D: 5 * time.Second}}, 0)
			},
			src:   "key: k",
			check: output("value", "PT5S")},
		{name: "Get_Missing_ValueNull", typ: kv.GetType,
			src:   "key: nope",
			check: output("value", nil)},
		{name: "Get_MissingWithErrorOnMissing_KestraMessage", typ: kv.GetType,
			src:   "key: nope\nerrorOnMissing: true",
			check: failsWith(kvflow.ENOTFOUND, "No value found for key 'nope' in namespace 'company.team' and `errorOnMissing` is set to true")},
		{name: "Get_Expired_ValueNull", typ: kv.GetType,
			setup: func(e *env) { e.put(flowNS, "k", str("v"), time.Minute); e.clock.Add(time.Hour) },
			src:   "key: k",
			check: output("value", nil)},
		{name: "Get_ExpiredWithErrorOnMissing_Expired", typ: kv.GetType,
			setup: func(e *env) { e.put(flowNS, "k", str("v"), time.Minute); e.clock.Add(time.Hour) },
			src:   "key: k\nerrorOnMissing: true",
			check: failsWith(kvflow.EEXPIRED, "No value found for key 'k' in namespace 'company.team'", "expired")},
		{name: "Get_AncestorNamespace_Reads", typ: kv.GetType,
			setup: func(e *env) { e.put("company", "k", str("parent"), 0) },
			src:   "key: k\nnamespace: company",
			check: output("value", "parent")},
		{name: "Get_NoNamespace_DoesNotInherit", typ: kv.GetType,
			setup: func(e *env) { e.put("company", "k", str("parent"), 0) },
			src:   "key: k",
			check: output("value", nil)},
		{name: "Get_SiblingWithSharedPrefix_Forbidden", typ: kv.GetType, ns: "prod",
			setup: func(e *env) { e.put("prod2", "k", str("secret"), 0) },
			src:   "key: k\nnamespace: prod2",
			check: failsWith(kvflow.EFORBIDDEN, "key 'k'", "Access to 'prod2' namespace is not allowed from 'prod'.")},
		{name: "Get_ChildNamespace_Forbidden", typ: kv.GetType, ns: "prod",
			src:   "key: k\nnamespace: prod.eu",
			check: failsWith(kvflow.EFORBIDDEN, "Access to 'prod.eu' namespace is not allowed from 'prod'.")},
		{name: "Get_OtherNamespaceAllowedByConfiguration_Reads", typ: kv.GetType, ns: "prod", allow: true,
			setup: func(e *env) { e.put("prod2", "k", str("shared"), 0) },
			src:   "key: k\nnamespace: prod2",
			check: output("value", "shared")},
		{name: "Get_InvalidNamespace_Invalid", typ: kv.GetType,
			src:   "key: k\nnamespace: \"{{ 'Bad NS' }}\"",
			check: failsWith(kvflow.EINVALID, "property 'namespace'", "Bad NS")},

		// GetKeys.
		{name: "GetKeys_NoPrefix_AllKeysSorted", typ: kv.GetKeysType,
			setup: func(e *env) {
				for _, k := range []string{"my-second-key", "another-key", "my-key"} {
					e.put(flowNS, k, str("v"), 0)
				}
			},
			src:   "{}",
			check: output("keys", []any{"another-key", "my-key", "my-second-key"})},
		{name: "GetKeys_Prefix_TwoOfThree", typ: kv.GetKeysType,
			setup: func(e *env) {
				for _, k := range []string{"my-second-key", "another-key", "my-key"} {
					e.put(flowNS, k, str("v"), 0)
				}
			},
			src:   "prefix: my",
			check: output("keys", []any{"my-key", "my-second-key"})},
		{name: "GetKeys_EmptyStore_EmptyList", typ: kv.GetKeysType,
			src:   "prefix: test_",
			check: output("keys", []any{})},
		{name: "GetKeys_ExpiredKey_Hidden", typ: kv.GetKeysType,
			setup: seedFour,
			src:   "{}",
			check: output("keys", []any{"live-1", "live-2"})},
		{name: "GetKeys_AncestorNamespace_Lists", typ: kv.GetKeysType,
			setup: func(e *env) { e.put("company", "p", str("v"), 0); e.put(flowNS, "c", str("v"), 0) },
			src:   "namespace: company",
			check: output("keys", []any{"p"})},
		{name: "GetKeys_SiblingWithSharedPrefix_Forbidden", typ: kv.GetKeysType, ns: "prod",
			src:   "namespace: prod2",
			check: failsWith(kvflow.EFORBIDDEN, "Access to 'prod2' namespace is not allowed from 'prod'.")},

		// Delete.
		{name: "Delete_Existing_TrueAndGone", typ: kv.DeleteType,
			setup: func(e *env) { e.put(flowNS, "k", str("v"), 0) },
			src:   "key: k",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				output("deleted", true)(t, e, out, err)
				if _, _, err := e.get(flowNS, "k"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
					t.Fatalf("Get after Delete: %v, want not found", err)
				}
			}},
		{name: "Delete_Missing_False", typ: kv.DeleteType,
			src:   "key: nope",
			check: output("deleted", false)},
		{name: "Delete_Expired_False", typ: kv.DeleteType,
			setup: func(e *env) { e.put(flowNS, "k", str("v"), time.Minute); e.clock.Add(time.Hour) },
			src:   "key: k",
			check: output("deleted", false)},
		{name: "Delete_MissingWithErrorOnMissing_KestraMessage", typ: kv.DeleteType,
			src:   "key: nope\nerrorOnMissing: true",
			check: failsWith(kvflow.ENOTFOUND, "No value found for key 'nope' in namespace 'company.team' and `errorOnMissing` is set to true")},
		{name: "Delete_AncestorNamespace_Deletes", typ: kv.DeleteType,
			setup: func(e *env) { e.put("company", "k", str("v"), 0) },
			src:   "key: k\nnamespace: company",
			check: output("deleted", true)},
		{name: "Delete_SiblingWithSharedPrefix_ForbiddenAndKept", typ: kv.DeleteType, ns: "prod",
			setup: func(e *env) { e.put("prod2", "k", str("v"), 0) },
			src:   "key: k\nnamespace: prod2",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				wantErr(t, err, kvflow.EFORBIDDEN, "key 'k'", "'prod2'", "'prod'")
				e.mustGet("prod2", "k")
			}},

		// PurgeKV: which entries.
		{name: "PurgeKV_ExpiredOnlyDefault_DeletesTwoOfFour", typ: kv.PurgeKVType,
			setup: seedFour,
			src:   "namespaces: [company.team]",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				output("size", int64(2))(t, e, out, err)
				if got := e.total(flowNS); got != 2 {
					t.Fatalf("%d entries left, want 2", got)
				}
			}},
		{name: "PurgeKV_ExpiredOnlyFalse_DeletesFour", typ: kv.PurgeKVType,
			setup: seedFour,
			src:   "namespaces: [company.team]\nexpiredOnly: false",
			check: output("size", int64(4))},
		{name: "PurgeKV_BehaviorKeyExpiredOnlyFalse_DeletesFour", typ: kv.PurgeKVType,
			setup: seedFour,
			src:   "namespaces: [company.team]\nbehavior:\n  type: key\n  expiredOnly: false",
			check: output("size", int64(4))},
		{name: "PurgeKV_DeprecatedExpiredOnlyOverridesBehavior_DeletesTwo", typ: kv.PurgeKVType,
			setup: seedFour,
			src:   "namespaces: [company.team]\nexpiredOnly: true\nbehavior:\n  type: key\n  expiredOnly: false",
			check: output("size", int64(2))},
		{name: "PurgeKV_KeyPattern_OnlyMatchingKeys", typ: kv.PurgeKVType,
			setup: seedFour,
			src:   "namespaces: [company.team]\nkeyPattern: \"*-1\"\nexpiredOnly: false",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				output("size", int64(2))(t, e, out, err)
				if got := e.keys(flowNS); !reflect.DeepEqual(got, []string{"live-2"}) {
					t.Fatalf("live keys left = %v, want [live-2]", got)
				}
			}},
		{name: "PurgeKV_VersionKeepAmount1_OneVersionEach_DeletesNothing", typ: kv.PurgeKVType,
			setup: seedFour,
			src:   "namespaces: [company.team]\nbehavior:\n  type: version\n  keepAmount: 1",
			check: output("size", int64(0))},
		{name: "PurgeKV_VersionKeepAmount2_KeepsNewestTwo", typ: kv.PurgeKVType,
			setup: seedVersions,
			src:   "namespaces: [company.team]\nkeyPattern: \"v*\"\nbehavior:\n  type: version\n  keepAmount: 2",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				output("size", int64(3+1))(t, e, out, err) // v1: 1, 2, 3 of 5; v2: 1 of 3 (its tombstone is the newest)
				checkVersions(t, e, "v1", 4, 5)
				checkVersions(t, e, "v2", 2, 3)
				checkVersions(t, e, "other", 1, 2, 3)
			}},
		{name: "PurgeKV_VersionKeepAmount0_KeepsTheNewest", typ: kv.PurgeKVType,
			setup: seedVersions,
			src:   "namespaces: [company.team]\nbehavior:\n  type: version\n  keepAmount: 0",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				output("size", int64(4+2+2))(t, e, out, err)
				checkVersions(t, e, "v1", 5)
				checkVersions(t, e, "v2", 3)
				if _, v := e.mustGet(flowNS, "v1"); v.V != "4" {
					t.Fatalf("live value = %v", v.V)
				}
			}},
		{name: "PurgeKV_VersionBefore_WrittenBeforeTheInstant", typ: kv.PurgeKVType,
			setup: seedVersions,
			src:   "namespaces: [company.team]\nbehavior:\n  type: version\n  before: \"2024-07-15T06:10:35Z\"",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				output("size", int64(2+2+2))(t, e, out, err) // written at :33 and :34
				checkVersions(t, e, "v1", 3, 4, 5)
				checkVersions(t, e, "v2", 3)
				checkVersions(t, e, "other", 3)
			}},

		// PurgeKV: which namespaces.
		{name: "PurgeKV_NoNamespaces_AllNamespaces", typ: kv.PurgeKVType, allow: true,
			setup: seedTree,
			src:   "{}",
			check: purged(5, purgeNamespaces...)},
		{name: "PurgeKV_NamespacePattern_GlobMatches", typ: kv.PurgeKVType, allow: true,
			setup: seedTree,
			src:   "namespacePattern: \"company*\"",
			check: purged(4, "company", "company.team", "company.team.sub", "companyx")},
		{name: "PurgeKV_NamespacePatternQuestionMark_OneCharacter", typ: kv.PurgeKVType, allow: true,
			setup: seedTree,
			src:   "namespacePattern: \"compan?\"",
			check: purged(1, "company")},
		{name: "PurgeKV_NamespacesWithChildren_ByDottedSegments", typ: kv.PurgeKVType, allow: true,
			setup: seedTree,
			src:   "namespaces: [company]",
			check: purged(3, "company", "company.team", "company.team.sub")},
		{name: "PurgeKV_NamespacesWithoutChildren_OnlyListed", typ: kv.PurgeKVType, allow: true,
			setup: seedTree,
			src:   "namespaces: [company, other]\nincludeChildNamespaces: false",
			check: purged(2, "company", "other")},
		{name: "PurgeKV_NamespacesAndPatternFromTemplates_Invalid", typ: kv.PurgeKVType, allow: true,
			setup: seedTree,
			src:   "namespaces: [company]\nnamespacePattern: \"{{ 'comp*' }}\"",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				wantErr(t, err, kvflow.EINVALID, "`namespaces` and `namespacePattern` can't be used at the same time")
				if got := e.total("company"); got != 2 {
					t.Fatalf("company holds %d entries, want 2 (nothing purged)", got)
				}
			}},
		{name: "PurgeKV_OwnNamespaceWithoutChildren_AllowedWithoutConfiguration", typ: kv.PurgeKVType,
			setup: seedTree,
			src:   "namespaces: [company.team]\nincludeChildNamespaces: false",
			check: purged(1, "company.team")},
		{name: "PurgeKV_AncestorNamespace_AllowedWithoutConfiguration", typ: kv.PurgeKVType,
			setup: seedTree,
			src:   "namespaces: [company]\nincludeChildNamespaces: false",
			check: purged(1, "company")},
		{name: "PurgeKV_ChildNamespaceWithoutConfiguration_ForbiddenAndNothingPurged", typ: kv.PurgeKVType,
			setup: seedTree,
			src:   "namespaces: [company.team]",
			check: func(t *testing.T, e *env, out plugin.Outputs, err error) {
				wantErr(t, err, kvflow.EFORBIDDEN, "Access to 'company.team.sub' namespace is not allowed from 'company.team'.")
				purged(0)(t, e, plugin.Outputs{"size": int64(0)}, nil)
			}},
		{name: "PurgeKV_AllNamespacesWithoutConfiguration_Forbidden", typ: kv.PurgeKVType, ns: "prod",
			setup: seedTree,
			src:   "{}",
			check: failsWith(kvflow.EFORBIDDEN, "is not allowed from 'prod'.")},
	}
}

// TestPurgeKV_Logs_NamespacesAndCount checks the two log lines Kestra writes.
func TestPurgeKV_Logs_NamespacesAndCount(t *testing.T) {
	e := newEnv(t, testpair.Local)
	seedFour(e)
	_, err := e.run(flowNS, kv.PurgeKVType, "namespaces: [company.team]")
	mustOK(t, err)
	var msgs []string
	for _, l := range e.logs.Lines() {
		msgs = append(msgs, l.Msg)
	}
	if got, want := strings.Join(msgs, "\n"), "purging 1 namespaces: company.team\npurged 2 keys"; got != want {
		t.Fatalf("logs = %q, want %q", got, want)
	}
}

// TestSetThenGet_TypedRoundTrip runs Set then Get through outputs, as a flow does.
func TestSetThenGet_TypedRoundTrip(t *testing.T) {
	e := newEnv(t, testpair.Local)
	for _, c := range []struct {
		value, kvType string
		want          any
	}{
		{`"123.45"`, "NUMBER", 123.45},
		{`"true"`, "BOOLEAN", true},
		{`"2023-05-02T01:02:03Z"`, "DATETIME", "2023-05-02T01:02:03Z"},
		{`"P1DT5S"`, "DURATION", "P1DT5S"},
		{`'[1, "a"]'`, "JSON", []any{int64(1), "a"}},
		{`"plain"`, "STRING", "plain"},
	} {
		_, err := e.run(flowNS, kv.SetType, "key: rt\nvalue: "+c.value+"\nkvType: "+c.kvType)
		mustOK(t, err)
		out, err := e.run(flowNS, kv.GetType, "key: rt")
		mustOK(t, err)
		if !reflect.DeepEqual(out["value"], c.want) {
			t.Errorf("%s %s: Get value = %#v, want %#v", c.kvType, c.value, out["value"], c.want)
		}
	}
}
