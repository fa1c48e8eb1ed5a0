package template

import (
	"context"
	"syscall"
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
		// Issue 13's target: ??, a map literal and date(), typed and in text.
		{"Kestra", "{{ {'since': inputs.start ?? execution.startDate | date('yyyy-MM-dd'), 'n': inputs.count} }}"},
		{"KestraText", "Since {{ inputs.start ?? execution.startDate | date('yyyy-MM-dd') }}: {{ {'n': inputs.count} }}"},
		{"Floor", "{{ inputs.name }}"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			if _, err := e.Render(ctx, bm.src, data); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var before, after syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			for b.Loop() {
				if _, err := e.Render(ctx, bm.src, data); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time per render: on a shared machine, wall time counts waiting.
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
			b.ReportMetric(float64(cpu)/1000/float64(b.N), "cpu-µs/op")
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

// BenchmarkCompile_Kestra is a cache miss of a template with a tag (translated
// and compiled by pongo2) and of one without (translated only).
func BenchmarkCompile_Kestra(b *testing.B) {
	e := New(Options{})
	for _, bm := range []struct{ name, src string }{
		{"WithTag", "{{ inputs.start ?? execution.startDate | date('yyyy-MM-dd') }} {{ {'n': 1} | toJson }} {% if outputs.t1 is defined %}{{ outputs.t1.value }}{% endif %}"},
		{"NoTag", "{{ inputs.start ?? execution.startDate | date('yyyy-MM-dd') }} {{ {'n': 1} | toJson }} {{ outputs.t1.value ?? '' }}"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				if c := e.build(bm.src); c.err != nil {
					b.Fatal(c.err)
				}
			}
		})
	}
}
