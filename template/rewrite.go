package template

import (
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/flosch/pongo2/v6"
)

// pongo2 v6 offers no hook for undefined variables nor for how values print,
// so after compiling, the template's tree is rewritten in place:
//   - every {{ expression }} node becomes an outputNode, which prints values
//     the kvflow way (3.5, true, JSON for maps) and captures a typed result;
//   - every variable reference becomes a strictVar, which refuses a name or a
//     key that does not exist unless a default filter follows it.
//
// The tree's types are unexported, so this file reads and writes their fields
// through reflect and unsafe. It depends on pongo2 v6.0.0's internals (pinned in
// go.mod); the tests fail loudly if they change.

const pongoPkg = "github.com/flosch/pongo2/v6"

// rewriter walks one compiled template.
type rewriter struct {
	seen map[visit]bool
}

// visit is a pointer already walked, with its type: a struct and its first
// field share an address.
type visit struct {
	t reflect.Type
	p uintptr
}

// rewrite converts tpl's tree and returns its document. When the document is
// exactly one {{ expression }} with only whitespace around, typed is that node.
func rewrite(tpl *pongo2.Template) (doc pongo2.INode, typed *outputNode, err error) {
	w := &rewriter{seen: map[visit]bool{}}
	root := field(reflect.ValueOf(tpl).Elem(), "root")
	if !root.IsValid() || root.IsNil() {
		return nil, nil, fmt.Errorf("pongo2 template has no root")
	}
	nodes := field(root.Elem(), "Nodes")
	doc, ok := root.Interface().(pongo2.INode)
	if !nodes.IsValid() || !ok || ecTemplate.Type != reflect.TypeOf(tpl) {
		return nil, nil, fmt.Errorf("pongo2's internals are not those of v6.0.0")
	}
	w.walk(root)
	if typed = soleOutput(nodes); typed != nil {
		typed.typed = true
	}
	return doc, typed, nil
}

// soleOutput returns the document's only outputNode when everything else in
// it is whitespace, and nil otherwise.
func soleOutput(nodes reflect.Value) *outputNode {
	var sole *outputNode
	for i := 0; i < nodes.Len(); i++ {
		n := nodes.Index(i).Elem()
		if out, ok := n.Interface().(*outputNode); ok && sole == nil {
			sole = out
		} else if !isBlankHTML(n) {
			return nil
		}
	}
	return sole
}

// isBlankHTML reports whether n is an HTML text node holding only whitespace.
func isBlankHTML(n reflect.Value) bool {
	if !isPongo(n.Type(), "nodeHTML") {
		return false
	}
	tok, _ := field(n.Elem(), "token").Interface().(*pongo2.Token)
	return tok != nil && strings.TrimSpace(tok.Val) == ""
}

// walk visits v and everything it holds, replacing nodes found in interface slots.
func (w *rewriter) walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || !walkable(v.Type().Elem()) {
			return
		}
		key := visit{v.Type(), v.Pointer()}
		if w.seen[key] {
			return
		}
		w.seen[key] = true
		w.walk(v.Elem())
	case reflect.Interface:
		w.slot(v, false)
	case reflect.Struct:
		if !walkable(v.Type()) {
			return
		}
		lenient := false
		switch v.Type().Name() {
		case "nodeFilteredVariable":
			lenient = hasDefaultFilter(field(v, "filterChain"))
		case "NodeWrapper":
			// Every block body (loop iteration, if branch) starts with a
			// checkNode that counts steps and watches the context.
			if nodes := field(v, "nodes"); nodes.IsValid() {
				withCheck := reflect.Append(reflect.MakeSlice(nodes.Type(), 0, nodes.Len()+1), reflect.ValueOf(checkNode{}))
				nodes.Set(reflect.AppendSlice(withCheck, nodes))
			}
		case "filterCall":
			if fn := field(v, "filterFunc"); fn.IsValid() && !fn.IsNil() {
				if orig, ok := fn.Interface().(pongo2.FilterFunction); ok {
					fn.Set(reflect.ValueOf(guardFilter(field(v, "name").String(), orig)))
				}
			}
		}
		for i := 0; i < v.NumField(); i++ {
			f := settable(v.Field(i))
			if f.Kind() == reflect.Interface && v.Type().Field(i).Name == "resolver" {
				w.slot(f, lenient)
				continue
			}
			w.walk(f)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			w.walk(settable(v.Index(i)))
		}
	case reflect.Map:
		if v.Type().Elem().Kind() != reflect.Interface && v.Type().Elem().Kind() != reflect.Pointer {
			return
		}
		m := settable(v)
		for _, k := range m.MapKeys() {
			e := reflect.New(m.Type().Elem()).Elem()
			e.Set(m.MapIndex(k))
			w.walk(e)
			m.SetMapIndex(k, e)
		}
	}
}

// walkable is true for pongo2's own struct types, minus those that lead out of
// the tree (the template, its set, tokens, the parser) or hold reflect.Values.
func walkable(t reflect.Type) bool {
	if t.Kind() != reflect.Struct || t.PkgPath() != pongoPkg {
		return false
	}
	switch t.Name() {
	case "Template", "TemplateSet", "Token", "Parser", "Value", "ExecutionContext", "Options":
		return false
	}
	return true
}

// slot handles an interface-typed place: it rewrites what it holds and may
// replace it with an outputNode or a strictVar.
func (w *rewriter) slot(s reflect.Value, lenient bool) {
	if s.IsNil() {
		return
	}
	e := s.Elem()
	switch {
	case isPongo(e.Type(), "nodeVariable"):
		w.walk(e)
		expr, _ := field(e.Elem(), "expr").Interface().(pongo2.IEvaluator)
		tok, _ := field(e.Elem(), "locationToken").Interface().(*pongo2.Token)
		if expr == nil {
			return
		}
		n := &outputNode{expr: expr, tok: tok}
		if reflect.TypeOf(n).AssignableTo(s.Type()) {
			s.Set(reflect.ValueOf(n))
		}
	case isPongo(e.Type(), "simpleExpression"):
		// + concatenates strings: cap what a loop of {% set s = s + s %} grows.
		w.walk(e)
		guardBigOperands(e)
		if inner, ok := e.Interface().(pongo2.IEvaluator); ok {
			g := &sizeGuard{inner: inner}
			if reflect.TypeOf(g).AssignableTo(s.Type()) {
				s.Set(reflect.ValueOf(g))
			}
		}
	case isPongo(e.Type(), "term"), isPongo(e.Type(), "power"), isPongo(e.Type(), "relationalExpression"):
		w.walk(e)
		guardBigOperands(e) // numbers beyond int64 and float64: see numbers.go
	case isPongo(e.Type(), "variableResolver"):
		w.walk(e)
		sv := newStrictVar(e, lenient)
		if sv != nil && reflect.TypeOf(sv).AssignableTo(s.Type()) {
			s.Set(reflect.ValueOf(sv))
		}
	default:
		w.walk(e)
	}
}

func isPongo(t reflect.Type, name string) bool {
	return t.Kind() == reflect.Pointer && t.Elem().PkgPath() == pongoPkg && t.Elem().Name() == name
}

// hasDefaultFilter reports whether a filter chain holds default or default_if_none.
func hasDefaultFilter(chain reflect.Value) bool {
	if !chain.IsValid() {
		return false
	}
	for i := 0; i < chain.Len(); i++ {
		fc := chain.Index(i)
		if fc.Kind() != reflect.Pointer || fc.IsNil() {
			continue
		}
		switch field(fc.Elem(), "name").String() {
		case "default", "default_if_none":
			return true
		}
	}
	return false
}

// field returns a struct field, settable even when unexported, or the zero
// Value when there is no such field.
func field(v reflect.Value, name string) reflect.Value {
	if v.Kind() != reflect.Struct {
		return reflect.Value{}
	}
	f := v.FieldByName(name)
	if !f.IsValid() {
		return f
	}
	return settable(f)
}

// settable drops reflect's read-only flag from an addressable value.
func settable(v reflect.Value) reflect.Value {
	if !v.CanAddr() {
		return v
	}
	return reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
}

// partKind is what one step of a variable path does.
type partKind int

const (
	partIdent     partKind = iota // .name
	partIndex                     // .0
	partSubscript                 // [expr]
	partOther                     // anything pongo2 resolves its own way
)

// part is one step of a variable path, read from pongo2's variablePart.
type part struct {
	kind  partKind
	name  string
	index int
	sub   pongo2.IEvaluator // partSubscript: the expression inside [ ]
	call  bool              // followed by ( ... )
	label string            // as written, for messages
}

// newStrictVar builds the checking wrapper of a *pongo2.variableResolver (e)
// whose subscripts and call arguments are already rewritten. Each path step gets
// its own small pongo2 resolver: step 0 is the first name (and its call), step k
// reads the previous value from a private context slot and applies part k, so
// pongo2 keeps its semantics for method and function calls and each value is
// computed once.
func newStrictVar(e reflect.Value, lenient bool) *strictVar {
	orig, ok := e.Interface().(pongo2.IEvaluator)
	if !ok {
		return nil
	}
	vr := e.Elem()
	tok, _ := field(vr, "locationToken").Interface().(*pongo2.Token)
	parts := field(vr, "parts")
	if !parts.IsValid() || parts.Len() == 0 {
		return nil
	}
	sv := &strictVar{orig: orig, tok: tok, lenient: lenient}
	identTyp := field(parts.Index(0).Elem(), "typ").Int() // the first part is always a name
	partType := parts.Type().Elem().Elem()

	newResolver := func(ps ...reflect.Value) pongo2.IEvaluator {
		r := reflect.New(vr.Type())
		field(r.Elem(), "locationToken").Set(reflect.ValueOf(tok))
		sl := reflect.MakeSlice(parts.Type(), 0, len(ps))
		sl = reflect.Append(sl, ps...)
		field(r.Elem(), "parts").Set(sl)
		return r.Interface().(pongo2.IEvaluator)
	}
	tmp := reflect.New(partType)
	field(tmp.Elem(), "typ").SetInt(identTyp)
	field(tmp.Elem(), "s").SetString(tmpKey)

	for i := 0; i < parts.Len(); i++ {
		p := parts.Index(i)
		pe := p.Elem()
		pt := part{
			name:  field(pe, "s").String(),
			index: int(field(pe, "i").Int()),
			call:  field(pe, "isFunctionCall").Bool(),
		}
		sub := field(pe, "subscript")
		switch {
		case field(pe, "isNil").Bool():
			pt.kind = partOther
		case sub.IsValid() && !sub.IsNil():
			pt.kind = partSubscript
			pt.sub, _ = sub.Interface().(pongo2.IEvaluator)
		case field(pe, "typ").Int() == identTyp:
			pt.kind = partIdent
		default:
			pt.kind = partIndex
		}
		pt.label = label(pt, i)
		if i == 0 {
			sv.steps = append(sv.steps, newResolver(p))
		} else {
			step := p
			if pt.kind == partSubscript && !pt.call && pt.sub != nil {
				// The subscript is evaluated (and checked) by strictVar, then
				// handed to pongo2 through a private slot.
				c := reflect.New(partType)
				c.Elem().Set(pe)
				field(c.Elem(), "subscript").Set(reflect.ValueOf(privEval{key: subKey}))
				step = c
			} else if pt.kind == partSubscript {
				pt.kind = partOther
			}
			sv.steps = append(sv.steps, newResolver(tmp, step))
		}
		if pt.call {
			pt.label += "(…)"
		}
		sv.parts = append(sv.parts, pt)
	}
	return sv
}

func label(p part, i int) string {
	switch p.kind {
	case partIdent:
		if i == 0 {
			return p.name
		}
		return "." + p.name
	case partIndex:
		return fmt.Sprintf(".%d", p.index)
	case partSubscript:
		return "[…]"
	}
	return ".?"
}
