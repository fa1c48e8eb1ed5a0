package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/template"
)

// A task without a timeout of its own still ends: DefaultTaskTimeout.
func TestRun_TaskWithoutTimeout_GetsTheDefault(t *testing.T) {
	old := engine.DefaultTaskTimeout
	engine.DefaultTaskTimeout = 100 * time.Millisecond
	t.Cleanup(func() { engine.DefaultTaskTimeout = old })
	e, _ := newEngine(t)
	start := time.Now()
	ex := run(t, e, `
id: no_timeout
namespace: company.team
tasks:
  - id: slow
    type: test.Sleep
    duration: PT30S
`, nil)
	wantState(t, ex, engine.FAILED)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("run took %v despite the default timeout", took)
	}
	if ex.Error != "Task 'slow' timed out after PT0.1S." {
		t.Errorf("error = %q", ex.Error)
	}
}

// Issue 9: three nested loops of "a"|ljust:16000000 ran for 40 s until
// killed. The render now stops at its deadline with a clear error.
func TestRun_CPUHeavyTemplate_FailsFast(t *testing.T) {
	e, _ := newEngine(t, func(o *engine.Options) {
		o.Templates = template.New(template.Options{KV: o.Store, MaxRenderTime: 500 * time.Millisecond})
	})
	start := time.Now()
	ex := run(t, e, `
id: cpu
namespace: company.team
tasks:
  - id: spin
    type: test.Echo
    value: "{% for a in 1..1000 %}{% for b in 1..1000 %}{% for c in 1..1000 %}{{ 'a'|ljust:16000000|length }}{% endfor %}{% endfor %}{% endfor %}"
`, nil)
	took := time.Since(start)
	wantState(t, ex, engine.FAILED)
	if took > 5*time.Second {
		t.Errorf("render ran %v, want it stopped near 500ms", took)
	}
	if !strings.Contains(ex.Error, "Task 'spin', property 'value'") || !strings.Contains(ex.Error, "Template rendering took longer than 500ms and was stopped") {
		t.Errorf("error = %q", ex.Error)
	}
}
