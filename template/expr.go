package template

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// Kestra's expression language (Pebble's, with Kestra's additions) is parsed
// here into a small tree that eval.go evaluates; pongo2 only ever sees calls
// to that evaluator (see translate.go). Operators, loosest first:
//
//	c ? a : b     ternary (right)
//	or ||         and &&        not (unary, binds loosely as in Pebble)
//	is [not] test, contains, in, not in
//	== != < > <= >= equals
//	+ -           * / %         | filter      ~ concatenation
//	.. range, and a ?? b (b when a is undefined or null; a ??? b only when
//	undefined), both as Kestra's: tighter than ~, | and +, left to right
//	- + (unary)   .name [subscript] (call)
//
// Literals: 42, 3.5, 'text', "text", true, false, null, [1, 2], {'a': 1}.

type exprKind uint8

const (
	eLit      exprKind = iota
	eIdent             // name
	eAttr              // a.name
	eIndex             // a[b]
	eCall              // name(args)
	eFilter            // a | name(args)
	eTest              // a is name(args); not: negated
	eUnary             // op a
	eBinary            // a op b
	eAnd               // a and b
	eOr                // a or b
	eCoalesce          // a ?? b
	eUndef             // a ??? b
	eCond              // a ? b : c
	eList              // [args]
	eMap               // {keys: args}
	eRaise             // raise / raise(msg)
)

// expr is one node of a parsed expression. pos is its byte offset in the
// template source, for error messages.
type expr struct {
	kind  exprKind
	pos   int
	name  string // identifier, attribute, function, filter or test name, operator
	val   any    // literal value
	not   bool   // eTest: is not
	a, b  *expr
	c     *expr
	args  []*expr
	names []string // keyword of each argument, "" for positional
	keys  []*expr  // eMap
}

// token is a lexical token of an expression.
type token struct {
	kind byte // 'n' number, 's' string, 'i' identifier, 'p' punctuation, 0 end
	val  string
	num  any
	pos  int // offset in the template source
}

// syntaxError is a parse error at an offset of the template source.
type syntaxError struct {
	pos int
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

// lexExpr splits src[start:end] into tokens with absolute offsets.
func lexExpr(src string, start, end int) ([]token, error) {
	toks := make([]token, 0, (end-start)/4+4)
	i := start
	for i < end {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isDigit(c):
			j := i
			for j < end && isDigit(src[j]) {
				j++
			}
			isFloat := false
			if j+1 < end && src[j] == '.' && isDigit(src[j+1]) {
				isFloat = true
				j++
				for j < end && isDigit(src[j]) {
					j++
				}
			}
			if j < end && (src[j] == 'e' || src[j] == 'E') {
				k := j + 1
				if k < end && (src[k] == '+' || src[k] == '-') {
					k++
				}
				if k < end && isDigit(src[k]) {
					isFloat = true
					for j = k; j < end && isDigit(src[j]); j++ {
					}
				}
			}
			text := src[i:j]
			var num any
			if isFloat {
				// A float64 when it reads back as the same decimal, else
				// the decimal itself, exact, as a NUMBER from KV is.
				v, err := storage.ParseAs(storage.NUMBER, text)
				if err != nil {
					return nil, &syntaxError{i, fmt.Sprintf("%q is not a number.", kvflow.Clip(text))}
				}
				num = v.V
			} else if n, err := strconv.ParseInt(text, 10, 64); err == nil {
				num = n
			} else {
				// Beyond int64: kept exact, as a NUMBER from KV is (printed
				// whole, refused in arithmetic), never rounded to a float.
				num = json.Number(strings.TrimLeft(text, "0"))
			}
			toks = append(toks, token{kind: 'n', val: text, num: num, pos: i})
			i = j
		case c == '\'' || c == '"':
			var b strings.Builder
			j := i + 1
			closed := false
			for j < end {
				ch := src[j]
				if ch == '\\' && j+1 < end {
					switch n := src[j+1]; n {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					default:
						b.WriteByte(n)
					}
					j += 2
					continue
				}
				if ch == c {
					closed = true
					j++
					break
				}
				b.WriteByte(ch)
				j++
			}
			if !closed {
				return nil, &syntaxError{i, "This string is not closed."}
			}
			toks = append(toks, token{kind: 's', val: b.String(), pos: i})
			i = j
		case isIdentStart(c):
			j := i
			for j < end && isIdentChar(src[j]) {
				j++
			}
			toks = append(toks, token{kind: 'i', val: src[i:j], pos: i})
			i = j
		default:
			op := ""
			for _, cand := range []string{"???", "??", "==", "!=", "<=", ">=", "&&", "||", ".."} {
				if strings.HasPrefix(src[i:end], cand) {
					op = cand
					break
				}
			}
			if op == "" {
				if !strings.ContainsRune("()[]{},:.|?~+-*/%<>!=", rune(c)) {
					return nil, &syntaxError{i, fmt.Sprintf("Unexpected character %q.", string(rune(c)))}
				}
				op = string(c)
			}
			toks = append(toks, token{kind: 'p', val: op, pos: i})
			i += len(op)
		}
	}
	return append(toks, token{pos: end}), nil
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

// parser reads one expression from tokens.
type parser struct {
	toks  []token
	i     int
	depth int
	// then: the expression being parsed is a ternary's middle branch, whose
	// end is a ':'; a filter there takes no pongo2 ':arg' (as in Pebble,
	// c ? x | upper : y).
	then bool
}

// parseExpr parses src[start:end] as one whole expression.
func parseExpr(src string, start, end int) (*expr, error) {
	toks, err := lexExpr(src, start, end)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == 0 {
		return nil, &syntaxError{start, "An expression is expected here."}
	}
	e, err := p.expression()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != 0 {
		return nil, &syntaxError{t.pos, fmt.Sprintf("Unexpected %s after the expression.", describe(t))}
	}
	return e, nil
}

func describe(t token) string {
	switch t.kind {
	case 0:
		return "end of the expression"
	case 's':
		return "string " + strconv.Quote(kvflow.Clip(t.val))
	}
	return "'" + kvflow.Clip(t.val) + "'"
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != 0 {
		p.i++
	}
	return t
}
func (p *parser) is(kind byte, val string) bool {
	t := p.peek()
	return t.kind == kind && t.val == val
}
func (p *parser) expect(val string) (token, error) {
	t := p.peek()
	if t.kind != 'p' || t.val != val {
		return t, &syntaxError{t.pos, fmt.Sprintf("'%s' expected, not %s.", val, describe(t))}
	}
	return p.next(), nil
}

// expression parses a whole expression: a ternary.
func (p *parser) expression() (*expr, error) { return p.branch(false) }

// branch parses an expression; then tells whether it is a ternary's middle
// branch (a nested expression, in brackets or arguments, is not).
func (p *parser) branch(then bool) (*expr, error) {
	outer := p.then
	p.then = then
	p.depth++
	defer func() { p.depth--; p.then = outer }()
	if p.depth > MaxNesting {
		return nil, &syntaxError{p.peek().pos, fmt.Sprintf("Expressions are nested more than %d deep.", MaxNesting)}
	}
	cond, err := p.binary(10)
	if err != nil {
		return nil, err
	}
	if !p.is('p', "?") {
		return cond, nil
	}
	q := p.next()
	a, err := p.branch(true)
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(":"); err != nil {
		return nil, err
	}
	b, err := p.expression()
	if err != nil {
		return nil, err
	}
	return &expr{kind: eCond, pos: q.pos, a: cond, b: a, c: b}, nil
}

// binaryOp returns the precedence of the operator at the cursor, and its
// canonical name; 0 when there is none.
func (p *parser) binaryOp() (int, string) {
	t := p.peek()
	switch t.kind {
	case 'p':
		switch t.val {
		case "||":
			return 10, "or"
		case "&&":
			return 15, "and"
		case "==", "!=", "<", ">", "<=", ">=":
			return 30, t.val
		case "+", "-":
			return 40, t.val
		case "*", "/", "%":
			return 60, t.val
		case "|":
			return 100, "|"
		case "~":
			return 110, "~"
		case "..":
			return 120, ".."
		case "??", "???": // Kestra's: tighter than ~, | and +, left to right
			return 120, t.val
		}
	case 'i':
		switch t.val {
		case "or":
			return 10, "or"
		case "and":
			return 15, "and"
		case "is":
			return 20, "is"
		case "contains":
			return 20, "contains"
		case "in":
			return 20, "in"
		case "not":
			if n := p.toks[p.i+1]; n.kind == 'i' && n.val == "in" {
				return 20, "not in"
			}
		case "equals":
			return 30, "=="
		}
	}
	return 0, ""
}

// binary parses operators binding at least as tightly as min (precedence climbing).
func (p *parser) binary(min int) (*expr, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		prec, op := p.binaryOp()
		if prec == 0 || prec < min {
			return left, nil
		}
		t := p.next()
		switch op {
		case "not in":
			p.next()
		case "|":
			if left, err = p.filter(left, t); err != nil {
				return nil, err
			}
			continue
		case "is":
			if left, err = p.test(left, t); err != nil {
				return nil, err
			}
			continue
		}
		right, err := p.binary(prec + 1)
		if err != nil {
			return nil, err
		}
		switch op {
		case "??":
			left = &expr{kind: eCoalesce, pos: t.pos, a: left, b: right}
		case "???":
			left = &expr{kind: eUndef, pos: t.pos, a: left, b: right}
		case "and":
			left = &expr{kind: eAnd, pos: t.pos, a: left, b: right}
		case "or":
			left = &expr{kind: eOr, pos: t.pos, a: left, b: right}
		default:
			left = &expr{kind: eBinary, pos: t.pos, name: op, a: left, b: right}
		}
	}
}

// filter parses `name`, `name(args)` or pongo2's `name:arg` after a '|'.
func (p *parser) filter(in *expr, bar token) (*expr, error) {
	t := p.next()
	if t.kind != 'i' {
		return nil, &syntaxError{t.pos, "A filter name is expected after '|'."}
	}
	f := &expr{kind: eFilter, pos: t.pos, name: t.val, a: in}
	switch {
	case p.is('p', "("):
		args, names, err := p.arguments("'"+t.val+"' filter", t.pos)
		if err != nil {
			return nil, err
		}
		f.args, f.names = args, names
	case p.is('p', ":") && !p.then:
		p.next()
		arg, err := p.postfix()
		if err != nil {
			return nil, err
		}
		f.args, f.names = []*expr{arg}, []string{""}
	}
	return f, nil
}

// test parses `[not] name[(args)]` after 'is'.
func (p *parser) test(in *expr, is token) (*expr, error) {
	e := &expr{kind: eTest, pos: is.pos, a: in}
	if p.is('i', "not") {
		p.next()
		e.not = true
	}
	t := p.next()
	if t.kind != 'i' {
		return nil, &syntaxError{t.pos, "A test name (defined, null, empty, even, odd, iterable, json...) is expected after 'is'."}
	}
	e.name = t.val
	if p.is('p', "(") {
		args, names, err := p.arguments("'"+t.val+"' test", t.pos)
		if err != nil {
			return nil, err
		}
		e.args, e.names = args, names
	}
	return e, nil
}

func (p *parser) unary() (*expr, error) {
	t := p.peek()
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > MaxNesting {
		return nil, &syntaxError{t.pos, fmt.Sprintf("Expressions are nested more than %d deep.", MaxNesting)}
	}
	switch {
	case t.kind == 'i' && t.val == "not", t.kind == 'p' && t.val == "!":
		p.next()
		var a *expr
		var err error
		if t.val == "!" {
			a, err = p.unary() // ! binds tightly, as in pongo2
		} else {
			a, err = p.binary(5 + 1) // not binds loosely, as in Pebble
		}
		if err != nil {
			return nil, err
		}
		return &expr{kind: eUnary, pos: t.pos, name: "not", a: a}, nil
	case t.kind == 'p' && (t.val == "-" || t.val == "+"):
		p.next()
		a, err := p.unary()
		if err != nil {
			return nil, err
		}
		if a.kind == eLit && t.val == "-" {
			switch n := a.val.(type) {
			case int64:
				return &expr{kind: eLit, pos: t.pos, val: -n}, nil
			case float64:
				return &expr{kind: eLit, pos: t.pos, val: -n}, nil
			}
		}
		return &expr{kind: eUnary, pos: t.pos, name: t.val, a: a}, nil
	}
	return p.postfix()
}

// postfix parses a primary followed by .name, [subscript] and calls.
func (p *parser) postfix() (*expr, error) {
	e, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != 'p' {
			return e, nil
		}
		switch t.val {
		case ".":
			p.next()
			n := p.next()
			switch n.kind {
			case 'i':
				e = &expr{kind: eAttr, pos: e.pos, name: n.val, a: e}
			case 'n':
				if _, ok := n.num.(int64); !ok {
					return nil, &syntaxError{n.pos, "An attribute name is expected after '.'."}
				}
				e = &expr{kind: eIndex, pos: e.pos, a: e, b: &expr{kind: eLit, pos: n.pos, val: n.num}, name: "."}
			default:
				return nil, &syntaxError{n.pos, "An attribute name is expected after '.'."}
			}
			if p.is('p', "(") {
				return nil, &syntaxError{p.peek().pos, fmt.Sprintf("'%s' is not a function: methods cannot be called in kvflow templates.", n.val)}
			}
		case "[":
			p.next()
			sub, err := p.expression()
			if err != nil {
				return nil, err
			}
			if _, err := p.expect("]"); err != nil {
				return nil, err
			}
			e = &expr{kind: eIndex, pos: e.pos, a: e, b: sub}
		default:
			return e, nil
		}
	}
}

// arguments parses (a, b, name=c).
func (p *parser) arguments(what string, at int) ([]*expr, []string, error) {
	open, _ := p.expect("(")
	var args []*expr
	var names []string
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > MaxNesting {
		return nil, nil, &syntaxError{open.pos, fmt.Sprintf("Expressions are nested more than %d deep.", MaxNesting)}
	}
	for !p.is('p', ")") {
		if len(args) > 0 {
			if _, err := p.expect(","); err != nil {
				return nil, nil, err
			}
		}
		name := ""
		if t := p.peek(); t.kind == 'i' && p.toks[p.i+1].kind == 'p' && p.toks[p.i+1].val == "=" {
			name = t.val
			p.i += 2
		} else if len(names) > 0 && names[len(names)-1] != "" {
			return nil, nil, &syntaxError{at, fmt.Sprintf("The %s takes its positional arguments before the named ones.", what)}
		}
		a, err := p.expression()
		if err != nil {
			return nil, nil, err
		}
		args, names = append(args, a), append(names, name)
	}
	p.next()
	return args, names, nil
}

func (p *parser) primary() (*expr, error) {
	t := p.next()
	switch t.kind {
	case 'n':
		return &expr{kind: eLit, pos: t.pos, val: t.num}, nil
	case 's':
		return &expr{kind: eLit, pos: t.pos, val: t.val}, nil
	case 'i':
		switch t.val {
		case "true", "True":
			return &expr{kind: eLit, pos: t.pos, val: true}, nil
		case "false", "False":
			return &expr{kind: eLit, pos: t.pos, val: false}, nil
		case "null", "none", "None", "nil":
			return &expr{kind: eLit, pos: t.pos, val: nil}, nil
		case "raise":
			e := &expr{kind: eRaise, pos: t.pos}
			if p.is('p', "(") {
				args, names, err := p.arguments("raise", t.pos)
				if err != nil {
					return nil, err
				}
				e.args, e.names = args, names
			}
			return e, nil
		}
		if strings.HasPrefix(t.val, "__") {
			return nil, &syntaxError{t.pos, fmt.Sprintf("Names starting with '__' are reserved ('%s').", kvflow.Clip(t.val))}
		}
		if p.is('p', "(") {
			args, names, err := p.arguments("'"+t.val+"' function", t.pos)
			if err != nil {
				return nil, err
			}
			return &expr{kind: eCall, pos: t.pos, name: t.val, args: args, names: names}, nil
		}
		return &expr{kind: eIdent, pos: t.pos, name: t.val}, nil
	case 'p':
		switch t.val {
		case "(":
			e, err := p.expression()
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(")"); err != nil {
				return nil, err
			}
			return e, nil
		case "[":
			l := &expr{kind: eList, pos: t.pos}
			for !p.is('p', "]") {
				if len(l.args) > 0 {
					if _, err := p.expect(","); err != nil {
						return nil, err
					}
					if p.is('p', "]") {
						break
					}
				}
				a, err := p.expression()
				if err != nil {
					return nil, err
				}
				l.args = append(l.args, a)
			}
			p.next()
			return l, nil
		case "{":
			m := &expr{kind: eMap, pos: t.pos}
			for !p.is('p', "}") {
				if len(m.args) > 0 {
					if _, err := p.expect(","); err != nil {
						return nil, err
					}
					if p.is('p', "}") {
						break
					}
				}
				var k *expr
				if kt := p.peek(); kt.kind == 'i' && p.toks[p.i+1].kind == 'p' && p.toks[p.i+1].val == ":" {
					p.next()
					k = &expr{kind: eLit, pos: kt.pos, val: kt.val} // {a: 1} reads a as 'a'
				} else {
					var err error
					if k, err = p.expression(); err != nil {
						return nil, err
					}
				}
				if _, err := p.expect(":"); err != nil {
					return nil, err
				}
				v, err := p.expression()
				if err != nil {
					return nil, err
				}
				m.keys, m.args = append(m.keys, k), append(m.args, v)
			}
			p.next()
			return m, nil
		}
	}
	if t.kind == 0 {
		return nil, &syntaxError{t.pos, "The expression ends too early."}
	}
	return nil, &syntaxError{t.pos, fmt.Sprintf("Unexpected %s.", describe(t))}
}

// label writes an expression's path as messages show it: outputs.task.value,
// inputs.list[…], json(…).a.
func label(e *expr) string {
	switch e.kind {
	case eIdent:
		return e.name
	case eAttr:
		return label(e.a) + "." + e.name
	case eIndex:
		if e.name == "." {
			return fmt.Sprintf("%s.%v", label(e.a), e.b.val)
		}
		return label(e.a) + "[…]"
	case eCall:
		return e.name + "(…)"
	case eLit:
		return Text(e.val)
	}
	return "(…)"
}
