package template

import (
	"strings"
	"testing"
)

func TestPrepare_RewritesKeepingPositions(t *testing.T) {
	tests := []struct{ in, want string }{
		{"{{ x | default('y') }}", "{{ x | default:'y'  }}"},
		{`{{ x|default("a)b") }}`, `{{ x|default:"a)b"  }}`},
		{"{{ x | default(a.b[0].c) }}", "{{ x | default:a.b[0].c  }}"},
		{"{{ x | default(f(1, 2)) }}", "{{ x | default:f(1, 2)  }}"},
		{"{{ x | upper() }}", "{{ x | upper   }}"},
		{"{{ x | upper ( ) }}", "{{ x | upper     }}"},
		{"{{ x | default(1 + 2) }}", "{{ x | default(1 + 2) }}"},       // not one operand: left for pongo2
		{"{{ x | default('a', 'b') }}", "{{ x | default('a', 'b') }}"}, // two arguments: same
		{"{{ a || b(1) }}", "{{ a || b(1) }}"},                         // || is not a filter
		{"{{ '| default(1)' }}", "{{ '| default(1)' }}"},               // inside a string
		{"text | default(1) {{ 1 }}", "text | default(1) {{ 1 }}"},     // outside a tag
		{"{# {{ x|default(1) }} #}", "{# {{ x|default(1) }} #}"},       // inside a comment
		{"{% verbatim %}{{ x|default(1) }}{% endverbatim %}", "{% verbatim %}{{ x|default(1) }}{% endverbatim %}"},
		{"{% if x|default(1) %}", "{% if x|default:1  %}"},
		{"{{ kv('k', errorOnMissing=false) }}", "{{ kv('k', __eom(false)        ) }}"},
		{"{{ kv('k', namespace='a.b', errorOnMissing=false) }}", "{{ kv('k', __ns('a.b')    , __eom(false)        ) }}"},
		{"{{ kv('k', namespace = f(1, 2)) }}", "{{ kv('k', __ns( f(1, 2))     ) }}"},
		{"{{ kv('k', errorOnMissing=1==1) }}", "{{ kv('k', __eom(1==1)        ) }}"},
		{"{{ f(namespace='x') }}", "{{ f(namespace='x') }}"},         // only kv's arguments
		{"{{ kv(g(namespace='x')) }}", "{{ kv(g(namespace='x')) }}"}, // not at kv's top level
		{"{{ kv('k', namespace=='x') }}", "{{ kv('k', namespace=='x') }}"},
		{"{{ mykv('k', namespace='x') }}", "{{ mykv('k', namespace='x') }}"},
	}
	for _, tt := range tests {
		got, err := prepare(tt.in)
		if err != nil {
			t.Errorf("prepare(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("prepare(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
		if len(got) != len(tt.in) || strings.Count(got, "\n") != strings.Count(tt.in, "\n") {
			t.Errorf("prepare(%q) moved characters", tt.in)
		}
	}
}
