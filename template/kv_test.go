package template_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
	. "github.com/kvflow/kvflow/template"
)

// The kv() tests live in package template_test: storagetest imports packages
// that import template.

// wantError checks err's code and message and returns its Location.
func wantError(t *testing.T, err error, code, want string) *Location {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %q", code, want)
	}
	if got := kvflow.ErrorCode(err); got != code {
		t.Errorf("code = %q, want %q (%v)", got, code, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	var loc *Location
	errors.As(err, &loc)
	return loc
}

// kvStore is a real store (SQLite + a temp directory) with its clock.
func kvStore(t *testing.T) (*storage.Store, *storagetest.Clock) {
	t.Helper()
	c := storagetest.NewClock()
	c.Set(time.Now())
	return testpair.Local(t, storage.Options{Now: c.Now}).Store, c
}

func set(t *testing.T, s *storage.Store, ns, key string, v storage.Value, ttl time.Duration) {
	t.Helper()
	if _, err := s.Set(context.Background(), ns, key, v, storage.SetOptions{TTL: ttl}); err != nil {
		t.Fatalf("Set %s/%s: %v", ns, key, err)
	}
}

func parse(t *testing.T, typ storage.Type, text string) storage.Value {
	t.Helper()
	v, err := storage.ParseAs(typ, text)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// flowData is the context of a flow in namespace ns.
func flowData(ns string) Context {
	return Context{"flow": map[string]any{"id": "f", "namespace": ns}}
}

const personJSON = `{
  "name": "John Doe",
  "age": 32,
  "address": {
    "city": "Paris",
    "country": "France"
  }
}
`

func TestKV_TypedValues(t *testing.T) {
	s, _ := kvStore(t)
	ns := "company.team"
	set(t, s, ns, "str", storage.String("hello"), 0)
	set(t, s, ns, "int", parse(t, storage.NUMBER, "42"), 0)
	set(t, s, ns, "float", parse(t, storage.NUMBER, "3.5"), 0)
	set(t, s, ns, "bool", parse(t, storage.BOOLEAN, "true"), 0)
	set(t, s, ns, "json", parse(t, storage.JSON, personJSON), 0)
	set(t, s, ns, "list", parse(t, storage.JSON, `[1, "two", 3.5]`), 0)
	set(t, s, ns, "when", parse(t, storage.DATETIME, "2024-07-15T06:10:33Z"), 0)
	set(t, s, ns, "day", parse(t, storage.DATE, "2024-07-15"), 0)
	set(t, s, ns, "dur", parse(t, storage.DURATION, "PT5M"), 0)
	// The seed's kv_json_flow stores the JSON as text (a STRING).
	set(t, s, ns, "my_json_key", storage.String(personJSON), 0)

	e := New(Options{KV: s})
	tests := []struct {
		src  string
		want any
	}{
		{"{{ kv('str') }}", "hello"},
		{"{{ kv('int') }}", int64(42)},
		{"{{ kv('float') }}", 3.5},
		{"{{ kv('bool') }}", true},
		{"{{ kv('json').address.city }}", "Paris"},
		{"{{ kv('json').age + 1 }}", int64(33)},
		{"{{ json(kv('json')).address.city }}", "Paris"},
		{"{{ kv('list') }}", []any{int64(1), "two", 3.5}},
		{"{{ kv('when') }}", "2024-07-15T06:10:33Z"},
		{"{{ kv('day') }}", "2024-07-15"},
		{"{{ kv('dur') }}", "PT5M"},
		{"n={{ kv('int') }} f={{ kv('float') }} b={{ kv('bool') }} j={{ kv('json').address }}", `n=42 f=3.5 b=true j={"city":"Paris","country":"France"}`},
		// The seed's kv_json_flow log messages.
		{"Name: {{ json(kv('my_json_key')).name }}", "Name: John Doe"},
		{"Age: {{ json(kv('my_json_key')).age }}", "Age: 32"},
		{"City: {{ json(kv('my_json_key')).address.city }}", "City: Paris"},
		{"{{ fromJson(kv('my_json_key')).address.country }}", "France"},
		{"{{ kv('str', 'company.team') }}", "hello"},
		{"{{ kv('str', flow.namespace, true) }}", "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			got, err := e.Render(context.Background(), tt.src, flowData(ns))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v (%T), want %#v", got, got, tt.want)
			}
		})
	}
}

func TestKV_MissingExpiredInheritedDenied(t *testing.T) {
	s, clk := kvStore(t)
	set(t, s, "company", "root_only", storage.String("from company"), 0)
	set(t, s, "company", "both", storage.String("from company"), 0)
	set(t, s, "company.team", "both", storage.String("from company.team"), 0)
	set(t, s, "company.team", "short", storage.String("soon gone"), time.Minute)
	set(t, s, "company", "shadowed", storage.String("parent live"), 0)
	set(t, s, "company.team", "shadowed", storage.String("child expiring"), time.Minute)
	set(t, s, "other", "secret", storage.String("other's"), 0)
	set(t, s, "prod", "p", storage.String("prod's"), 0)
	clk.Add(2 * time.Minute) // "short" and the child "shadowed" expire

	grants := storage.NewPolicy(map[string][]string{"company.team": {"other"}})
	allowOther := &grants
	tests := []struct {
		name   string
		ns     string          // the flow's namespace
		access *storage.Policy // nil: no grants
		src    string
		want   any
		code   string // error code, "" for success
		msg    string
	}{
		{"missing key errors by default", "company.team", nil, "{{ kv('nope') }}", nil, kvflow.ENOTFOUND,
			"The key 'nope' does not exist in the namespace 'company.team'."},
		{"missing key with errorOnMissing false is null", "company.team", nil, "{{ kv('nope', null, false) }}", nil, "", ""},
		{"missing key with errorOnMissing false prints nothing", "company.team", nil, "[{{ kv('nope', flow.namespace, false) }}]", "[]", "", ""},
		{"missing key with errorOnMissing true", "company.team", nil, "{{ kv('nope', 'company.team', true) }}", nil, kvflow.ENOTFOUND,
			"The key 'nope' does not exist in the namespace 'company.team'."},
		{"expired key errors", "company.team", nil, "{{ kv('short') }}", nil, kvflow.EEXPIRED,
			"The key 'short' in the namespace 'company.team' has expired."},
		{"expired key with errorOnMissing false is null", "company.team", nil, "{{ kv('short', null, false) }}", nil, "", ""},
		{"expired key can be defaulted", "company.team", nil, "{{ kv('short', null, false) | default('gone') }}", "gone", "", ""},
		{"expired child falls back to a live parent", "company.team", nil, "{{ kv('shadowed') }}", "parent live", "", ""},
		{"inherits from a parent", "company.team.sub", nil, "{{ kv('root_only') }}", "from company", "", ""},
		{"nearest namespace wins", "company.team.sub", nil, "{{ kv('both') }}", "from company.team", "", ""},
		{"missing everywhere names the flow namespace", "company.team.sub", nil, "{{ kv('nope') }}", nil, kvflow.ENOTFOUND,
			"The key 'nope' does not exist in the namespace 'company.team.sub'."},
		{"explicit namespace does not inherit", "company.team", nil, "{{ kv('root_only', 'company.team') }}", nil, kvflow.ENOTFOUND,
			"The key 'root_only' does not exist in the namespace 'company.team'."},
		{"explicit own namespace", "company.team", nil, "{{ kv('both', 'company.team') }}", "from company.team", "", ""},
		{"explicit ancestor namespace", "company.team", nil, "{{ kv('both', 'company') }}", "from company", "", ""},
		{"other namespace denied", "company.team", nil, "{{ kv('secret', 'other') }}", nil, kvflow.EFORBIDDEN,
			"Cannot access the KV store. Access to 'other' namespace is not allowed from 'company.team'."},
		{"child namespace denied", "company", nil, "{{ kv('both', 'company.team') }}", nil, kvflow.EFORBIDDEN,
			"Access to 'company.team' namespace is not allowed from 'company'."},
		{"prefix is not an ancestor", "prod2", nil, "{{ kv('p', 'prod') }}", nil, kvflow.EFORBIDDEN,
			"Access to 'prod' namespace is not allowed from 'prod2'."},
		{"dotted child of prod may read prod", "prod.eu", nil, "{{ kv('p', 'prod') }}", "prod's", "", ""},
		{"denied even with errorOnMissing false", "company.team", nil, "{{ kv('secret', 'other', false) }}", nil, kvflow.EFORBIDDEN,
			"not allowed from 'company.team'"},
		{"access allows another namespace", "company.team", allowOther, "{{ kv('secret', 'other') }}", "other's", "", ""},
		{"access is asked with from and ns", "company", allowOther, "{{ kv('secret', 'other') }}", nil, kvflow.EFORBIDDEN,
			"Access to 'other' namespace is not allowed from 'company'."},
		{"no key", "company.team", nil, "{{ kv() }}", nil, kvflow.EINVALID, "The 'kv' function expects an argument 'key'."},
		{"key not a string", "company.team", nil, "{{ kv(5) }}", nil, kvflow.EINVALID, "expects the key to be a string, not a number."},
		{"invalid key", "company.team", nil, "{{ kv('bad key') }}", nil, kvflow.EINVALID, "Key \"bad key\" is invalid"},
		{"namespace not a string", "company.team", nil, "{{ kv('k', 5) }}", nil, kvflow.EINVALID, "expects the namespace to be a string"},
		{"invalid namespace", "company.team", nil, "{{ kv('k', 'Bad NS') }}", nil, kvflow.EINVALID, "Namespace \"Bad NS\" is invalid"},
		{"errorOnMissing not a boolean", "company.team", nil, "{{ kv('k', null, 'no') }}", nil, kvflow.EINVALID, "expects errorOnMissing to be true or false, not a string."},
		{"too many arguments", "company.team", nil, "{{ kv('k', null, true, 1, 2, 3) }}", nil, kvflow.EINVALID, "at most 5 arguments"},
		{"no flow namespace", "", nil, "{{ kv('k') }}", nil, kvflow.EINVALID, "The 'kv' function needs a namespace"},
		// Pebble's named arguments.
		{"named errorOnMissing", "company.team", nil, "{{ kv('nope', errorOnMissing=false) }}", nil, "", ""},
		{"named namespace", "company.team", nil, "{{ kv('both', namespace='company') }}", "from company", "", ""},
		{"named both, spaced", "company.team", nil, "{{ kv( 'nope' , namespace = 'company' , errorOnMissing = false ) | default('d') }}", "d", "", ""},
		{"named in any order", "company.team", nil, "{{ kv('both', errorOnMissing=true, namespace='company') }}", "from company", "", ""},
		{"named namespace is access-checked", "company.team", nil, "{{ kv('secret', namespace='other') }}", nil, kvflow.EFORBIDDEN,
			"Access to 'other' namespace is not allowed from 'company.team'."},
		{"named errorOnMissing true", "company.team", nil, "{{ kv('nope', errorOnMissing=true) }}", nil, kvflow.ENOTFOUND,
			"The key 'nope' does not exist in the namespace 'company.team'."},
		{"positional after named", "company.team", nil, "{{ kv('k', errorOnMissing=false, 'company') }}", nil, kvflow.EINVALID,
			"The 'kv' function takes its positional arguments before the named ones."},
		{"argument given twice", "company.team", nil, "{{ kv('k', 'company', namespace='company') }}", nil, kvflow.EINVALID,
			"got the argument 'namespace' twice"},
		{"null literal", "company.team", nil, "{{ kv('nope', null, false) }}", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var policy storage.Policy
			if tt.access != nil {
				policy = *tt.access
			}
			e := New(Options{KV: s, Policy: policy})
			data := flowData(tt.ns)
			got, err := e.Render(context.Background(), tt.src, data)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %#v, want %#v", got, tt.want)
				}
				return
			}
			loc := wantError(t, err, tt.code, tt.msg)
			if loc == nil || loc.Line != 1 || loc.Col != 4 {
				t.Errorf("location = %+v, want line 1 col 4", loc)
			}
		})
	}
}

// ctxKV records the context each Get receives.
type ctxKV struct {
	KV
	mu   sync.Mutex
	seen []any
}

type ctxKey struct{}

func (c *ctxKV) Get(ctx context.Context, ns, key string) (*storage.Entry, storage.Value, error) {
	c.mu.Lock()
	c.seen = append(c.seen, ctx.Value(ctxKey{}))
	c.mu.Unlock()
	return c.KV.Get(ctx, ns, key)
}

func TestKV_ReadsWithTheRenderContext(t *testing.T) {
	s, _ := kvStore(t)
	set(t, s, "a", "k", storage.String("v"), 0)
	kv := &ctxKV{KV: s}
	e := New(Options{KV: kv})
	ctx := context.WithValue(context.Background(), ctxKey{}, "render-1")
	got, err := e.Render(ctx, "{{ kv('k') }}", flowData("a.b"))
	if err != nil || got != "v" {
		t.Fatalf("got %#v, %v", got, err)
	}
	// a.b misses, then a hits: two reads, both with the caller's context.
	if want := []any{"render-1", "render-1"}; !reflect.DeepEqual(kv.seen, want) {
		t.Errorf("contexts seen = %v, want %v", kv.seen, want)
	}
}

func TestKV_StoreFailureKeepsItsCode(t *testing.T) {
	s, _ := kvStore(t)
	e := New(Options{KV: failingKV{s}})
	_, err := e.Render(context.Background(), "x {{ kv('k') }}", flowData("a"))
	wantError(t, err, kvflow.EUNAVAILABLE, "database is down")
}

type failingKV struct{ KV }

func (failingKV) Get(context.Context, string, string) (*storage.Entry, storage.Value, error) {
	return nil, storage.Value{}, kvflow.Errorf(kvflow.EUNAVAILABLE, "The database is down.")
}

func TestKV_NoStoreConfigured(t *testing.T) {
	_, err := New(Options{}).Render(context.Background(), "{{ kv('k') }}", flowData("a"))
	wantError(t, err, kvflow.EUNAVAILABLE, "no KV store is configured")
}

func TestKV_ExactNumbers_PrintedWholeArithmeticRefused(t *testing.T) {
	s, _ := kvStore(t)
	ns := "company.team"
	set(t, s, ns, "big", parse(t, storage.NUMBER, "12345678901234567890"), 0)
	set(t, s, ns, "pi", parse(t, storage.NUMBER, "3.14159265358979323846264338327950288"), 0)
	set(t, s, ns, "tenth", parse(t, storage.NUMBER, "0.1"), 0)
	e := New(Options{KV: s})
	for src, want := range map[string]string{
		"{{ kv('big') }}":              "12345678901234567890",
		"big={{ kv('big') }}":          "big=12345678901234567890",
		"{{ kv('pi') }}":               "3.14159265358979323846264338327950288",
		"{{ kv('tenth') }}":            "0.1",
		"{{ toJson(kv('big')) }}":      "12345678901234567890",
		"{{ kv('big') == kv('big') }}": "true",
		// A literal too keeps every digit (it was rounded to a float).
		"{{ 12345678901234567890 }}":              "12345678901234567890",
		"n={{ 12345678901234567890 }}":            "n=12345678901234567890",
		"{{ kv('big') == 12345678901234567890 }}": "true",
		"{{ -12345678901234567890 }}":             "-12345678901234567890",
		"{{ -kv('big') }}":                        "-12345678901234567890",
		"{{ -(-kv('big')) }}":                     "12345678901234567890",
		"{{ -kv('pi') }}":                         "-3.14159265358979323846264338327950288",
		// and compares exactly.
		"{{ kv('pi') > 3 }}":                      "true",
		"{{ kv('big') > 5 }}":                     "true",
		"{{ kv('big') <= 12345678901234567889 }}": "false",
	} {
		got, err := e.RenderString(context.Background(), src, flowData(ns))
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", src, got, err, want)
		}
	}
	// A whole expression keeps the exact value, typed, for a Set task.
	got, err := e.Render(context.Background(), "{{ kv('big') }}", flowData(ns))
	if v, verr := storage.FromGo(got); err != nil || verr != nil || v.Type != storage.NUMBER || v.Text() != "12345678901234567890" {
		t.Errorf("typed render = %#v (%v, %v)", got, err, verr)
	}
	for _, src := range []string{"{{ kv('big') + 1 }}", "{{ 1 + kv('big') }}", "{{ kv('big') * 2 }}", "x{{ kv('big') - 1 }}", "{{ 12345678901234567890 + 1 }}", "{{ 2 * 99999999999999999999 }}"} {
		_, err := e.RenderString(context.Background(), src, flowData(ns))
		wantError(t, err, kvflow.EINVALID, "cannot compute")
	}
}

func TestKV_Int64Overflow_RefusedNotRounded(t *testing.T) {
	s, _ := kvStore(t)
	ns := "company.team"
	set(t, s, ns, "max", parse(t, storage.NUMBER, "9223372036854775807"), 0)
	set(t, s, ns, "min", parse(t, storage.NUMBER, "-9223372036854775808"), 0)
	e := New(Options{KV: s})
	// Before, these were computed as float64 and printed 9223372036854776000.
	for _, src := range []string{"{{ kv('max') + 1 }}", "{{ kv('max') * 2 }}", "{{ kv('min') - 1 }}", "{{ -kv('min') }}", "{{ kv('min') / -1 }}", "{{ 9223372036854775807 + 1 }}"} {
		got, err := e.RenderString(context.Background(), src, flowData(ns))
		if err == nil {
			t.Errorf("%s = %q, want an error", src, got)
			continue
		}
		wantError(t, err, kvflow.EINVALID, "beyond 64-bit integers")
	}
	for src, want := range map[string]string{"{{ kv('max') - 1 }}": "9223372036854775806", "{{ kv('min') % -1 }}": "0", "{{ kv('min') + 1 }}": "-9223372036854775807"} {
		if got, err := e.RenderString(context.Background(), src, flowData(ns)); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", src, got, err, want)
		}
	}
}

func TestKV_Default_ForMissingAndExpired(t *testing.T) {
	s, clock := kvStore(t)
	ns := "company.team"
	set(t, s, ns, "short", storage.String("soon gone"), time.Minute)
	set(t, s, ns, "here", storage.String("present"), 0)
	clock.Add(2 * time.Minute)
	e := New(Options{KV: s})
	for src, want := range map[string]any{
		"{{ kv('nope', default='fallback') }}":                "fallback",
		"{{ kv('short', default=42) }}":                       int64(42),
		"{{ kv('here', default='fallback') }}":                "present",
		"{{ kv('nope', 'company.team', true, null, 'pos') }}": "pos",
		"{{ kv('nope', errorOnMissing=true, default=7) }}":    int64(7),
	} {
		got, err := e.Render(context.Background(), src, flowData(ns))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, %v; want %#v", src, got, err, want)
		}
	}
}
