package template

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// mapKV is a fixed in-memory KV for fuzzing and benchmarks, where a database
// would only slow things down; kv() itself is tested on a real store.
type mapKV map[string]storage.Value

func (m mapKV) Get(_ context.Context, ns, key string) (*storage.Entry, storage.Value, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, storage.Value{}, err
	}
	v, ok := m[ns+"/"+key]
	if !ok {
		return nil, storage.Value{}, storage.NotFound(ns, key)
	}
	return &storage.Entry{Namespace: ns, Key: key, Type: v.Type}, v, nil
}

func fuzzKV() mapKV {
	return mapKV{
		"company/str":       storage.String("hello"),
		"company.team/num":  {Type: storage.NUMBER, V: int64(42)},
		"company.team/json": {Type: storage.JSON, V: map[string]any{"address": map[string]any{"city": "Paris"}}},
		"other/secret":      storage.String("s"),
	}
}

func FuzzRender(f *testing.F) {
	for _, s := range []string{
		"", "plain", "{{ inputs.name }}", "{{ inputs.person }}", "n={{ inputs.count }} r={{ inputs.ratio }}",
		"{{ nope }}", "{{ nope | default('x') }}", "{{ kv('str') }}", "{{ kv('json').address.city }}",
		"{{ json(kv('json')).address.city }}", "{{ kv('secret', 'other') }}", "{{ kv('k', errorOnMissing=false) }}",
		"{% for x in inputs.list %}{{ x }}{% endfor %}", "{% if inputs.on %}y{% else %}n{% endif %}",
		"{% set a = 1 %}{{ a + 2 }}", "{{ 1/0 }}", "{% ssi '/etc/passwd' %}", "{% include 'x' %}",
		"{{ fromJson('[1,2]')[1] }}", "{{ inputs.list[inputs.count] }}", "{{ x.nil }}", "{% cycle %}",
		"{{ 'x'|center:9 }}", "{{ inputs.name|slice:':2' }}", "{{- inputs.name -}}", "{% verbatim %}{{{% endverbatim %}",
		"{# c #}{{ 1 }}", "{{ (((1))) }}", "{{ toJson(inputs) }}", "{{ execution.startDate|date('yyyy') }}",
		// Kestra's idioms (issue 13).
		"{{ nope ?? inputs.name ?? 'x' }}", "{{ a ??? b }}", "{{ inputs.on ? 'y' : 'n' }}", "{{ 'a' ~ 1 ~ inputs.ratio }}",
		"{{ inputs.list is iterable and nope is not defined }}", "{{ inputs.list contains 'a' }}", "{{ 'x' not in inputs.list }}",
		"{{ {'a': 1, 'b': [1, 2]}['b'][1] }}", "{{ 1..5 }}", "{{ outputs.get[taskrun.value] ?? 0 }}", "{{ json(kv('json'))['address'].city }}",
		"{{ kv('str', namespace='company', errorOnMissing=false) }}", "{{ now() | dateAdd(-1, 'MONTHS') | date('yyyy-MM-dd') }}",
		"{{ inputs.person | jq('.address.city') | first }}", "{{ render('{{ 1 + 1 }}') }}", "{{ nope ?? raise('missing') }}",
		"{% for e in inputs.person %}{{ loop.index }}{{ e.key }}{% else %}-{% endfor %}", "{% if 1 %}a{% elseif 2 %}b{% else %}c{% endif %}",
		"{{ range(1, 3) | join(',') | upper | slugify }}", "{{ '2024-01-31' | dateAdd(1, 'MONTHS') | timestamp }}", "{{ yaml('a: [1]') | toYaml }}",
		"{{ 'x' | replace('[', '', regexp=true) }}", "{{ min(1, 'a') }}", "{{ -9223372036854775808 / -1 }}", "{{ [] | first }}",
	} {
		f.Add(s)
	}
	e := New(Options{KV: fuzzKV(), MaxRenderTime: time.Second})
	f.Fuzz(func(t *testing.T, src string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, wantValue := range []bool{true, false} {
			start := time.Now()
			v, err := e.render(ctx, src, testData(), wantValue)
			if took := time.Since(start); took > 4*time.Second {
				t.Fatalf("%q: render took %v", src, took)
			}
			if s, ok := v.(string); ok && strings.Contains(s, "root:") && !strings.Contains(src, "root:") {
				t.Fatalf("%q: a file was read", src)
			}
			if err != nil {
				var ke *kvflow.Error
				if !errors.As(err, &ke) {
					t.Fatalf("%q: error %T %v is not a *kvflow.Error", src, err, err)
				}
				if ke.Code == kvflow.EINTERNAL {
					t.Fatalf("%q: internal error: %v", src, err)
				}
				continue
			}
			if !isTemplate(src) && v != src {
				t.Fatalf("%q: plain text came back as %#v", src, v)
			}
			if _, ok := v.(string); !wantValue && !ok {
				t.Fatalf("%q: text render gave %T", src, v)
			}
		}
	})
}
