package template

import (
	"fmt"
	"strings"

	"github.com/kvflow/kvflow"
)

// prepare checks src and rewrites what pongo2 cannot parse but kvflow's
// templates use, keeping every character at its line and column:
//
//   - Pebble's filter call syntax: `x | default('y')` becomes `x | default:'y' `
//     and `x | upper()` becomes `x | upper  ` (pongo2 writes `default:'y'`);
//     only a single operand is rewritten, anything else is left for pongo2 to
//     refuse.
//   - Pebble's named arguments of kv(): `kv('k', errorOnMissing=false)`
//     becomes `kv('k', __eom(false)        )`, and namespace='x' becomes
//     __ns('x'); kv() reads these markers as named arguments.
//   - Brackets nested more than MaxNesting deep, and tags longer than
//     MaxTagLen, are refused: pongo2's parser is recursive and slows down on
//     very long expressions.
func prepare(src string) (string, error) {
	b := []byte(src)
	var kvDepths []int // bracket depths of the kv( calls we are in
	var named []kvArg
	line, lineStart := 1, 0
	pos := func(i int) (int, int) { return line, i - lineStart + 1 }
	for i := 0; i < len(b); i++ {
		if b[i] == '\n' {
			line, lineStart = line+1, i+1
			continue
		}
		if b[i] != '{' || i+1 >= len(b) {
			continue
		}
		switch b[i+1] {
		case '#': // comment: skip to its end
			if j := strings.Index(src[i+2:], "#}"); j >= 0 {
				i = countLines(src, i, i+2+j+1, &line, &lineStart)
			}
			continue
		case '{', '%':
		default:
			continue
		}
		if b[i+1] == '%' && strings.HasPrefix(strings.TrimLeft(src[i+2:], "- \t\r\n"), "verbatim") {
			if j := strings.Index(src[i:], "endverbatim"); j >= 0 {
				i = countLines(src, i, i+j, &line, &lineStart)
			}
			continue
		}
		// Inside a tag: until }} or %} outside a string.
		depth, size := 0, 0
		tagLine, tagCol := pos(i)
		var quote byte
		for i += 2; i < len(b); i++ {
			ch := b[i]
			if ch == '\n' {
				line, lineStart = line+1, i+1
			}
			if quote == 0 {
				if size++; size > MaxTagLen {
					return "", newError(kvflow.EINVALID, tagLine, tagCol, fmt.Sprintf("This tag is over %d characters long, not counting its strings.", MaxTagLen), nil)
				}
			}
			if quote != 0 {
				if ch == '\\' && i+1 < len(b) && b[i+1] != '\n' {
					i++
				} else if ch == quote || ch == '\n' {
					quote = 0
				}
				continue
			}
			switch ch {
			case '"', '\'':
				quote = ch
			case '(', '[':
				depth++
				if depth > MaxNesting {
					l, c := pos(i)
					return "", newError(kvflow.EINVALID, l, c, fmt.Sprintf("Brackets are nested more than %d deep.", MaxNesting), nil)
				}
				if ch == '(' && callsKV(b, i) {
					kvDepths = append(kvDepths, depth)
				}
			case ')', ']':
				if n := len(kvDepths); n > 0 && kvDepths[n-1] == depth {
					kvDepths = kvDepths[:n-1]
				}
				depth--
			case '|':
				if i+1 < len(b) && b[i+1] == '|' {
					i++ // the || operator
					continue
				}
				rewriteFilterCall(b, i)
			case '}', '%':
				if i+1 < len(b) && b[i+1] == '}' {
					i++
					goto closed
				}
			default:
				if n := len(kvDepths); n > 0 && kvDepths[n-1] == depth && isIdentChar(ch) && !isIdentChar(b[i-1]) {
					if a, ok := findNamedArg(b, i); ok {
						named = append(named, a)
					}
				}
			}
		}
	closed:
		kvDepths = kvDepths[:0]
	}
	for _, a := range named {
		// name = expr  →  marker(expr), padded with spaces to the same length.
		repl := a.marker + "(" + string(b[a.eq+1:a.end]) + ")"
		if len(repl) <= a.end-a.start {
			repl += strings.Repeat(" ", a.end-a.start-len(repl))
			copy(b[a.start:a.end], repl)
		}
	}
	return string(b), nil
}

// kvArg is a named argument of kv() found in the source: b[start:eq] is the
// name, b[eq] the '=', b[eq+1:end] the value.
type kvArg struct {
	start, eq, end int
	marker         string
}

// namedArgMarkers are the functions a named argument of kv() becomes; each
// marker call is shorter than "name=".
var namedArgMarkers = map[string]string{"namespace": "__ns", "errorOnMissing": "__eom", "default": "__df"}

// callsKV reports whether the '(' at b[open] follows the name kv.
func callsKV(b []byte, open int) bool {
	j := open - 1
	for j >= 0 && (b[j] == ' ' || b[j] == '\t') {
		j--
	}
	return j >= 1 && b[j] == 'v' && b[j-1] == 'k' && (j < 2 || !isIdentChar(b[j-2]) && b[j-2] != '.')
}

// findNamedArg reads `name = value` at b[i], at the top level of a kv( ) call,
// where name is a kv() parameter and the value runs to the next ',' or ')'.
func findNamedArg(b []byte, i int) (kvArg, bool) {
	p := i - 1
	for p >= 0 && (b[p] == ' ' || b[p] == '\t' || b[p] == '\n' || b[p] == '\r') {
		p--
	}
	if p < 0 || (b[p] != '(' && b[p] != ',') {
		return kvArg{}, false
	}
	j := i
	for j < len(b) && isIdentChar(b[j]) {
		j++
	}
	marker, ok := namedArgMarkers[string(b[i:j])]
	if !ok {
		return kvArg{}, false
	}
	eq := skipSpaces(b, j)
	if eq+1 >= len(b) || b[eq] != '=' || b[eq+1] == '=' {
		return kvArg{}, false
	}
	depth := 0
	var quote byte
	for k := eq + 1; k < len(b); k++ {
		ch := b[k]
		if quote != 0 {
			if ch == '\\' {
				k++
			} else if ch == quote {
				quote = 0
			}
			continue
		}
		switch ch {
		case '"', '\'':
			quote = ch
		case '(', '[':
			depth++
		case ')', ']', ',':
			if depth == 0 && ch != ']' {
				return kvArg{start: i, eq: eq, end: k, marker: marker}, true
			}
			if ch != ',' {
				depth--
			}
		case '}', '%':
			if k+1 < len(b) && b[k+1] == '}' {
				return kvArg{}, false
			}
		}
	}
	return kvArg{}, false
}

// countLines advances the line count over src[from:to] and returns to.
func countLines(src string, from, to int, line, lineStart *int) int {
	for k := from; k < to && k < len(src); k++ {
		if src[k] == '\n' {
			*line, *lineStart = *line+1, k+1
		}
	}
	return to
}

// rewriteFilterCall turns `| name(arg)` at b[bar] into `| name:arg ` and
// `| name()` into `| name  `, when arg is a single operand.
func rewriteFilterCall(b []byte, bar int) {
	i := skipSpaces(b, bar+1)
	start := i
	for i < len(b) && isIdentChar(b[i]) {
		i++
	}
	if i == start {
		return
	}
	i = skipSpaces(b, i)
	if i >= len(b) || b[i] != '(' {
		return
	}
	open := i
	end := matching(b, open)
	if end < 0 {
		return
	}
	arg := strings.TrimSpace(string(b[open+1 : end]))
	switch {
	case arg == "":
		b[open], b[end] = ' ', ' '
	case singleOperand(arg):
		b[open], b[end] = ':', ' '
	}
}

// matching returns the index of the bracket closing b[open], or -1.
func matching(b []byte, open int) int {
	depth := 0
	var quote byte
	for i := open; i < len(b); i++ {
		ch := b[i]
		if quote != 0 {
			if ch == '\\' {
				i++
			} else if ch == quote {
				quote = 0
			}
			continue
		}
		switch ch {
		case '"', '\'':
			quote = ch
		case '(', '[':
			depth++
		case ')', ']':
			depth--
			if depth == 0 {
				return i
			}
		case '}', '%':
			if i+1 < len(b) && b[i+1] == '}' {
				return -1
			}
		}
	}
	return -1
}

// singleOperand reports whether s is one string literal, or one name path
// such as a.b[0].c or f(x).y, or a number: what pongo2 takes after ':'.
func singleOperand(s string) bool {
	b := []byte(s)
	if b[0] == '"' || b[0] == '\'' {
		q := b[0]
		for i := 1; i < len(b); i++ {
			if b[i] == '\\' {
				i++
				continue
			}
			if b[i] == q {
				return i == len(b)-1
			}
		}
		return false
	}
	for i := 0; i < len(b); i++ {
		switch ch := b[i]; {
		case isIdentChar(ch) || ch == '.':
		case ch == '(' || ch == '[':
			end := matching(b, i)
			if end < 0 {
				return false
			}
			i = end
		default:
			return false
		}
	}
	return true
}

func skipSpaces(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

func isIdentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
