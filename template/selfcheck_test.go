package template

import (
	"strings"
	"testing"
)

// Each pongo2 behaviour kvflow relies on is probed on its own, and a probe
// that no longer holds fails with its name.
func TestSelfCheck_EachProbeHolds(t *testing.T) {
	if err := selfCheck(); err != nil {
		t.Fatal(err)
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			if err := runProbes([]probe{p}); err != nil {
				t.Fatal(err)
			}
			broken := p
			if p.wantErr != "" {
				broken.wantErr = p.wantErr + " (changed)"
			} else if p.steps > 0 {
				broken.steps = p.steps + 1
			} else {
				broken.want = p.want + " (changed)"
			}
			err := runProbes([]probe{broken})
			if err == nil || !strings.Contains(err.Error(), "pongo2 does not behave as kvflow relies on ("+p.name+")") {
				t.Errorf("a changed behaviour was not reported: %v", err)
			}
		})
	}
}

func TestNew_PanicsWhenPongo2Changed(t *testing.T) {
	saved := selfCheckErr
	defer func() {
		selfCheckErr = saved
		r := recover()
		if r == nil || !strings.Contains(r.(string), "pongo2 does not behave") {
			t.Errorf("New did not fail loudly: %v", r)
		}
	}()
	selfCheck() // the Once has run
	selfCheckErr = runProbes([]probe{{name: "a deliberately wrong probe", src: "{{ 1 }}", want: "2"}})
	New(Options{})
}
