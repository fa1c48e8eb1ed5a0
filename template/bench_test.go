package template

import (
	"context"
	"testing"
)

// BenchmarkRender_Cached renders a compiled template: the cost per property
// of a task once its template is in the cache (target: under 20 µs).
func BenchmarkRender_Cached(b *testing.B) {
	e := New(Options{KV: fuzzKV()})
	ctx, data := context.Background(), testData()
	for _, bm := range []struct{ name, src string }{
		{"Mixed", "Hello {{ inputs.name }}, {{ inputs.count }} items, ratio {{ inputs.ratio }}, from {{ outputs.get.value }} at {{ execution.startDate }}"},
		{"Typed", "{{ inputs.person.address }}"},
		{"KV", "City: {{ json(kv('json')).address.city }}"},
		{"Loop", "{% for x in inputs.list %}{{ x }},{% endfor %}{{ nope | default('d') }}"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			if _, err := e.Render(ctx, bm.src, data); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Render(ctx, bm.src, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRender_Compile is a cache miss: lexing, parsing and rewriting.
func BenchmarkRender_Compile(b *testing.B) {
	e := New(Options{})
	src := "Hello {{ inputs.name }}, {{ inputs.count }} items, ratio {{ inputs.ratio }}, from {{ outputs.get.value }} at {{ execution.startDate }}"
	b.ReportAllocs()
	for b.Loop() {
		e.build(src)
	}
}
