package template

import (
	"fmt"
	"strings"

	"github.com/kvflow/kvflow"
)

// A template is translated before pongo2 sees it: every expression, in
// {{ }} and in tags, is parsed by expr.go and replaced by a call to the
// evaluator ({% kvflow_p 3 %} prints expression 3, __kvflow_e(3) gives its
// value, __kvflow_b(3) its truth; see tags.go), and Pebble's tag spellings become
// pongo2's (elseif → elif, a for loop's else → empty). pongo2 then runs the
// tag structure (for, if, set, with) through its public API only. A template
// that is one {{ expression }} does not reach pongo2 at all.
//
// The tags allowed are for, if/elif/elseif/else, set, with, verbatim and
// comments; anything else is refused here, before pongo2 parses it.

// Names of the evaluator's functions in pongo2's context; the parser refuses
// identifiers starting with "__", so no template can call them directly.
const (
	fnEval  = "__kvflow_e"
	fnBool  = "__kvflow_b"
	fnEach  = "__kvflow_i"  // a loop's items: a map gives Pebble's entries {key, value}, by key
	fnPairs = "__kvflow_kv" // a two-variable loop's pairs: index → item for a list, key → value for a map
	ctxKey  = "__kvflow"
)

// bannedTags read files (include, ssi, import, extends), recurse without
// bound (macro), produce text for nothing (lorem), render into buffers of
// their own (filter, spaceless, ifchanged, block, autoescape), or keep state
// in the compiled template (cycle). They are refused by name, and pongo2's
// set bans them too. Pebble's embed, parallel, cache and flush are refused as well.
var (
	bannedTags  = []string{"include", "ssi", "import", "extends", "macro", "lorem", "filter", "spaceless", "ifchanged", "block", "cycle", "autoescape"}
	refusedTags = append([]string{"embed", "parallel", "cache", "flush"}, bannedTags...)
)

// seg maps translated text back to the source: out[outStart:] came from
// src[srcStart:], character by character when verbatim.
type seg struct {
	outStart, srcStart int
	verbatim           bool
}

// translation is a template ready for pongo2.
type translation struct {
	out   string
	exprs []*expr
	segs  []seg
	// lone is set when the template is exactly one {{ expression }}, with
	// whitespace (before, after) that RenderString keeps.
	lone          *expr
	before, after string
	// direct is set for text with {{ }} but no tags or comments: rendered
	// piece by piece without pongo2.
	direct []piece
}

// piece is literal text, or expression expr when text is empty and expr >= 0.
type piece struct {
	text string
	expr int
}

type translator struct {
	src      string
	out      strings.Builder
	t        *translation
	stack    []string // open block tags: for, if, with
	opened   []int    // where each was opened
	pieces   []piece  // for translation.direct
	trimNext bool     // the last {{ }} ended with -}}
}

// translate parses every expression of src and builds pongo2's template.
func translate(src string) (*translation, error) {
	tr := &translator{src: src, t: &translation{}}
	if err := tr.run(); err != nil {
		return nil, err
	}
	tr.t.out = tr.out.String()
	return tr.t, nil
}

// err builds a template error at an offset of the source.
func errAt(src string, pos int, code, msg string) error {
	line, col := lineCol(src, pos)
	return newError(code, line, col, msg, nil)
}

// lineCol gives the 1-based line and column of an offset.
func lineCol(src string, pos int) (int, int) {
	if pos > len(src) {
		pos = len(src)
	}
	line := 1 + strings.Count(src[:pos], "\n")
	col := pos - strings.LastIndexByte(src[:pos], '\n')
	return line, col
}

func (tr *translator) emitVerbatim(from, to int) {
	if from >= to {
		return
	}
	tr.t.segs = append(tr.t.segs, seg{outStart: tr.out.Len(), srcStart: from, verbatim: true})
	tr.out.WriteString(tr.src[from:to])
}

func (tr *translator) emit(srcPos int, s string) {
	tr.t.segs = append(tr.t.segs, seg{outStart: tr.out.Len(), srcStart: srcPos})
	tr.out.WriteString(s)
}

func (tr *translator) addExpr(e *expr) int {
	tr.t.exprs = append(tr.t.exprs, e)
	return len(tr.t.exprs) - 1
}

// tagEnd finds the end of a {{ }} or {% %} opened at i: the offset of the
// closing pair and where the content ends (before a '-').
func (tr *translator) tagEnd(i int, closer byte) (contentEnd, end int, err error) {
	src := tr.src
	var stack []byte // open brackets
	size := 0
	var quote byte
	for j := i + 2; j < len(src); j++ {
		ch := src[j]
		if quote != 0 {
			if ch == '\\' && j+1 < len(src) {
				j++
			} else if ch == quote {
				quote = 0
			}
			continue
		}
		if size++; size > MaxTagLen {
			return 0, 0, errAt(src, i, kvflow.EINVALID, fmt.Sprintf("This tag is over %d characters long, not counting its strings.", MaxTagLen))
		}
		switch ch {
		case '\'', '"':
			quote = ch
		case '(', '[', '{':
			if stack = append(stack, ch); len(stack) > MaxNesting {
				return 0, 0, errAt(src, j, kvflow.EINVALID, fmt.Sprintf("Brackets are nested more than %d deep.", MaxNesting))
			}
		case ')', ']':
			if n := len(stack); n > 0 && stack[n-1] != '{' {
				stack = stack[:n-1]
			}
		case '}', '%':
			if n := len(stack); ch == '}' && n > 0 && stack[n-1] == '{' {
				stack = stack[:n-1] // a map literal closes
				continue
			}
			if ch == closer && j+1 < len(src) && src[j+1] == '}' {
				ce := j
				if ce > i+2 && src[ce-1] == '-' {
					ce--
				}
				return ce, j + 2, nil
			}
		}
	}
	if closer == '%' {
		return 0, 0, errAt(src, i, kvflow.EINVALID, "'%}' expected: this '{%' is not closed.")
	}
	return 0, 0, errAt(src, i, kvflow.EINVALID, "'}}' expected: this '{{' is not closed.")
}

func line(src string, pos int) int { l, _ := lineCol(src, pos); return l }
func col(src string, pos int) int  { _, c := lineCol(src, pos); return c }

// parse parses src[from:to] as one expression and checks its calls.
func (tr *translator) parse(from, to int) (*expr, error) {
	e, err := parseExpr(tr.src, from, to)
	if err == nil {
		err = check(e)
	}
	if err != nil {
		if se, ok := err.(*syntaxError); ok {
			return nil, errAt(tr.src, se.pos, kvflow.EINVALID, se.msg)
		}
		return nil, err
	}
	return e, nil
}

func (tr *translator) run() error {
	src := tr.src
	last := 0 // source copied up to here
	exprTags, otherTags := 0, 0
	var loneStart, loneEnd int
	for i := 0; i+1 < len(src); i++ {
		if src[i] != '{' {
			continue
		}
		switch src[i+1] {
		case '#':
			j := strings.Index(src[i+2:], "#}")
			if j < 0 {
				return errAt(src, i, kvflow.EINVALID, "This comment is not closed with '#}'.")
			}
			otherTags++
			i += 2 + j + 1
			continue
		case '{':
			ce, end, err := tr.tagEnd(i, '}')
			if err != nil {
				return err
			}
			start := i + 2
			dashL := start < len(src) && src[start] == '-'
			if dashL {
				start++
			}
			e, err := tr.parse(start, ce)
			if err != nil {
				return err
			}
			tr.emitVerbatim(last, i)
			n := tr.addExpr(e)
			text := src[last:i]
			if dashL {
				text = strings.TrimRight(text, " \t\r\n")
			}
			if tr.trimNext {
				text = strings.TrimLeft(text, " \t\r\n")
			}
			if text != "" {
				tr.pieces = append(tr.pieces, piece{text: text, expr: -1})
			}
			tr.pieces = append(tr.pieces, piece{expr: n})
			tr.trimNext = ce < end-2
			open, close := "{% ", " %}"
			if dashL {
				open = "{%- "
			}
			if ce < end-2 {
				close = " -%}"
			}
			tr.emit(i, fmt.Sprintf("%s%s %d%s", open, tagPrint, n, close))
			exprTags++
			loneStart, loneEnd = i, end
			last, i = end, end-1
		case '%':
			end, err := tr.tag(i, last)
			if err != nil {
				return err
			}
			otherTags++
			last, i = end, end-1
		}
	}
	tr.emitVerbatim(last, len(src))
	if text := src[last:]; tr.trimNext {
		text = strings.TrimLeft(text, " \t\r\n")
		tr.pieces = append(tr.pieces, piece{text: text, expr: -1})
	} else if text != "" {
		tr.pieces = append(tr.pieces, piece{text: text, expr: -1})
	}
	if otherTags == 0 {
		tr.t.direct = tr.pieces
	}
	if exprTags == 1 && otherTags == 0 {
		before, after := src[:loneStart], src[loneEnd:]
		if strings.TrimSpace(before) == "" && strings.TrimSpace(after) == "" {
			tr.t.lone = tr.t.exprs[0]
			if strings.HasPrefix(src[loneStart:], "{{-") {
				before = ""
			}
			if strings.HasSuffix(src[:loneEnd], "-}}") {
				after = ""
			}
			tr.t.before, tr.t.after = before, after
		}
	}
	if n := len(tr.stack); n > 0 {
		return errAt(src, tr.opened[n-1], kvflow.EINVALID, fmt.Sprintf("This '%s' tag is not closed: 'end%s' expected.", tr.stack[n-1], tr.stack[n-1]))
	}
	return nil
}

// tag translates the {% %} tag at i and returns its end.
func (tr *translator) tag(i, last int) (int, error) {
	src := tr.src
	ce, end, err := tr.tagEnd(i, '%')
	if err != nil {
		return 0, err
	}
	start := i + 2
	open := "{% "
	if start < len(src) && src[start] == '-' {
		start++
		open = "{%- "
	}
	close := " %}"
	if ce < end-2 {
		close = " -%}"
	}
	// The tag's name.
	p := skipSpaces(src, start, ce)
	q := p
	for q < ce && isIdentChar(src[q]) {
		q++
	}
	name := src[p:q]
	argStart := skipSpaces(src, q, ce)
	emit := func(body string) {
		tr.emitVerbatim(last, i)
		tr.emit(i, open+body+close)
	}
	top := ""
	if len(tr.stack) > 0 {
		top = tr.stack[len(tr.stack)-1]
	}
	pop := func(want string) error {
		if top != want {
			if top == "" {
				return errAt(src, p, kvflow.EINVALID, fmt.Sprintf("'%s' closes nothing.", name))
			}
			return errAt(src, p, kvflow.EINVALID, fmt.Sprintf("'end%s' expected, not '%s'.", top, name))
		}
		tr.stack, tr.opened = tr.stack[:len(tr.stack)-1], tr.opened[:len(tr.opened)-1]
		return nil
	}
	noArgs := func() error {
		if argStart < ce {
			return errAt(src, argStart, kvflow.EINVALID, fmt.Sprintf("The tag '%s' takes no arguments.", name))
		}
		return nil
	}
	switch name {
	case "if", "elif", "elseif":
		if name != "if" && top != "if" {
			return 0, errAt(src, p, kvflow.EINVALID, fmt.Sprintf("'%s' is only allowed inside an 'if' tag.", name))
		}
		e, err := tr.parse(argStart, ce)
		if err != nil {
			return 0, err
		}
		if name == "if" {
			tr.stack, tr.opened = append(tr.stack, "if"), append(tr.opened, p)
		} else {
			name = "elif"
		}
		emit(fmt.Sprintf("%s %s(%d)", name, fnBool, tr.addExpr(e)))
	case "else":
		if err := noArgs(); err != nil {
			return 0, err
		}
		switch top {
		case "if":
			emit("else")
		case "for":
			emit("empty") // Pebble's for ... else is pongo2's empty
		default:
			return 0, errAt(src, p, kvflow.EINVALID, "'else' is only allowed inside an 'if' or a 'for' tag.")
		}
	case "empty":
		if top != "for" {
			return 0, errAt(src, p, kvflow.EINVALID, "'empty' is only allowed inside a 'for' tag.")
		}
		emit("empty")
	case "endif", "endfor", "endwith":
		if err := noArgs(); err != nil {
			return 0, err
		}
		if err := pop(strings.TrimPrefix(name, "end")); err != nil {
			return 0, err
		}
		emit(name)
	case "for":
		// for a[, b] in expression
		vars, _, ok := strings.Cut(src[argStart:ce], " in ")
		if !ok {
			return 0, errAt(src, argStart, kvflow.EINVALID, "A 'for' tag reads 'for item in list' or 'for key, value in map'.")
		}
		var names []string
		for _, v := range strings.Split(vars, ",") {
			v = strings.TrimSpace(v)
			if !isIdent(v) {
				return 0, errAt(src, argStart, kvflow.EINVALID, fmt.Sprintf("%q is not a loop variable name.", kvflow.Clip(v)))
			}
			names = append(names, v)
		}
		if len(names) > 2 {
			return 0, errAt(src, argStart, kvflow.EINVALID, "A 'for' tag takes one or two loop variables.")
		}
		exprStart := argStart + len(vars) + len(" in ")
		e, err := tr.parse(exprStart, ce)
		if err != nil {
			return 0, err
		}
		tr.stack, tr.opened = append(tr.stack, "for"), append(tr.opened, p)
		if len(names) == 1 {
			emit(fmt.Sprintf("for %s in %s(%d)", names[0], fnEach, tr.addExpr(e)))
		} else {
			emit(fmt.Sprintf("for %s in %s(%d) sorted", strings.Join(names, ", "), fnPairs, tr.addExpr(e)))
		}
		// Every iteration starts with the step guard.
		if close == " -%}" {
			tr.emit(end, "{%- "+tagStep+" -%}")
		} else {
			tr.emit(end, "{% "+tagStep+" %}")
		}
	case "set":
		v, rest, ok := strings.Cut(src[argStart:ce], "=")
		v = strings.TrimSpace(v)
		if !ok || !isIdent(v) || strings.HasPrefix(rest, "=") {
			return 0, errAt(src, argStart, kvflow.EINVALID, "A 'set' tag reads 'set name = expression'.")
		}
		e, err := tr.parse(argStart+strings.Index(src[argStart:ce], "=")+1, ce)
		if err != nil {
			return 0, err
		}
		emit(fmt.Sprintf("set %s = %s(%d)", v, fnEval, tr.addExpr(e)))
	case "with":
		// with name=expression, or with expression as name
		body := src[argStart:ce]
		var v string
		var from, to int
		if k := strings.LastIndex(body, " as "); k >= 0 && isIdent(strings.TrimSpace(body[k+4:])) {
			v, from, to = strings.TrimSpace(body[k+4:]), argStart, argStart+k
		} else if k := strings.Index(body, "="); k > 0 && isIdent(strings.TrimSpace(body[:k])) {
			v, from, to = strings.TrimSpace(body[:k]), argStart+k+1, ce
		} else {
			return 0, errAt(src, argStart, kvflow.EINVALID, "A 'with' tag reads 'with name=expression' or 'with expression as name'.")
		}
		e, err := tr.parse(from, to)
		if err != nil {
			return 0, err
		}
		tr.stack, tr.opened = append(tr.stack, "with"), append(tr.opened, p)
		emit(fmt.Sprintf("with %s=%s(%d)", v, fnEval, tr.addExpr(e)))
	case "verbatim":
		k := strings.Index(src[end:], "endverbatim")
		if k < 0 {
			return 0, errAt(src, p, kvflow.EINVALID, "'endverbatim' expected: this 'verbatim' tag is not closed.")
		}
		closeTag := strings.Index(src[end+k:], "%}")
		if closeTag < 0 {
			return 0, errAt(src, end+k, kvflow.EINVALID, "'%}' expected.")
		}
		stop := end + k + closeTag + 2
		tr.emitVerbatim(last, stop)
		return stop, nil
	case "", tagPrint, tagStep:
		if name != "" {
			return 0, errAt(src, p, kvflow.EINVALID, fmt.Sprintf("Tag '%s' does not exist; expected for, if, elseif, else, set, with or verbatim.", name))
		}
		return 0, errAt(src, p, kvflow.EINVALID, "A tag name is expected after '{%'.")
	default:
		for _, b := range refusedTags {
			if name == b {
				return 0, errAt(src, p, kvflow.EINVALID, fmt.Sprintf("The tag '%s' is not allowed in kvflow templates.", name))
			}
		}
		return 0, errAt(src, p, kvflow.EINVALID, fmt.Sprintf("Tag '%s' does not exist; expected for, if, elseif, else, set, with or verbatim.", kvflow.Clip(name)))
	}
	return end, nil
}

func skipSpaces(s string, i, end int) int {
	for i < end && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

func isIdent(s string) bool {
	if s == "" || !isIdentStart(s[0]) || strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

func isIdentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// srcPos maps a line and column of the translated text to the source.
func (t *translation) srcPos(src string, line, col int) (int, int) {
	if line <= 0 {
		return 0, 0
	}
	off := 0
	for l := 1; l < line; l++ {
		k := strings.IndexByte(t.out[off:], '\n')
		if k < 0 {
			break
		}
		off += k + 1
	}
	off += col - 1
	pos := 0
	for _, s := range t.segs {
		if s.outStart > off {
			break
		}
		pos = s.srcStart
		if s.verbatim {
			pos += off - s.outStart
		}
	}
	return lineCol(src, pos)
}
