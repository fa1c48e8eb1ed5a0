package engine_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/plugin"
)

// Validating a flow of 100 tasks whose properties use Kestra's idioms, every
// template compiled (each iteration's templates are new, so none comes from
// the cache). The floor is the same flow with plain text instead of
// templates, measured in the same run. Target: under 10 ms.
func BenchmarkValidate_100Tasks(b *testing.B) {
	flow := func(salt int, templated bool) []byte {
		var src strings.Builder
		src.WriteString("id: validate\nnamespace: bench\ninputs:\n  - {id: start, type: STRING, required: false}\ntasks:\n")
		for i := 0; i < 100; i++ {
			msg := fmt.Sprintf("run %d.%d of the flow", salt, i)
			if templated {
				msg = fmt.Sprintf("{{ inputs.start ?? execution.startDate | date('yyyy-MM-dd') }} {{ {'n': %d, 'salt': %d} | toJson }} {%% if outputs.t%d is defined %%}{{ outputs.t%d.value }}{%% endif %%}", i, salt, max(i-1, 0), max(i-1, 0))
				if i == 0 {
					msg = fmt.Sprintf("{{ 'first' ~ %d }}", salt)
				}
			}
			fmt.Fprintf(&src, "  - id: t%d\n    type: io.kestra.plugin.core.debug.Return\n    format: %q\n", i, msg)
		}
		return []byte(src.String())
	}
	for _, bm := range []struct {
		name      string
		templated bool
	}{{"Templates", true}, {"Floor", false}} {
		b.Run(bm.name, func(b *testing.B) {
			salt := 0
			cpu := cpuTime()
			for b.Loop() {
				salt++
				if _, err := engine.Parse("bench.yaml", flow(salt, bm.templated), plugin.Default); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time per flow: on a shared machine, wall time counts waiting.
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
