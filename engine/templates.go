package engine

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/template"
)

// Every template of a flow is compiled when the flow loads: a syntax error,
// an unknown function, filter or test, or a wrong argument is reported at
// the YAML file's line and column, with the other validation errors. So is
// outputs.<id> naming no task, or (in a task) a task that runs later.

// tplRef is an outputs.<id> reference found in a template.
type tplRef struct {
	task      string
	line, col int
	field     string
	from      int  // document order of the referring task; -1 for variables and flow outputs
	later     bool // a reference to a task that comes later is an error
}

// checkTemplates compiles every template below n (a task's properties, the
// variables, an output's value), path naming n. from is the referring
// task's order, or -1.
func (p *parser) checkTemplates(n *yaml.Node, path string, from int) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			sub := path
			if n.Kind == yaml.SequenceNode {
				sub = fmt.Sprintf("%s[%d]", path, i)
			}
			p.checkTemplates(c, sub, from)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p.checkTemplates(n.Content[i+1], path+"."+n.Content[i].Value, from)
		}
	case yaml.AliasNode:
		p.checkTemplates(n.Alias, path, from)
	case yaml.ScalarNode:
		if n.Tag != "!!str" || !(strings.Contains(n.Value, "{{") || strings.Contains(n.Value, "{%")) {
			return
		}
		p.tpls = append(p.tpls, tplCheck{n: n, path: path, from: from})
	}
}

// tplCheck is a template found by checkTemplates, compiled by compileTemplates.
type tplCheck struct {
	n    *yaml.Node
	path string
	from int
	refs []template.Ref
	errs []error
}

// compileTemplates compiles the templates found, on every core (they are
// independent), then reports their errors and references in document order.
func (p *parser) compileTemplates() {
	jobs := p.tpls
	workers := min(runtime.GOMAXPROCS(0), len(jobs)/8+1)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(jobs); i = int(next.Add(1)) - 1 {
				jobs[i].refs, jobs[i].errs = template.CheckAll(jobs[i].n.Value)
			}
		})
	}
	wg.Wait()
	for _, j := range jobs {
		n := j.n
		for _, err := range j.errs {
			line, col, msg := n.Line, n.Column, kvflow.ErrorMessage(err)
			var loc *template.Location
			if errors.As(err, &loc) {
				msg = loc.Reason
				if loc.Line > 0 {
					line, col = p.filePos(n, loc.Line, loc.Col)
				}
			}
			p.errs.addAt(line, col, j.path, "%s", msg)
		}
		if len(j.errs) > 0 {
			continue
		}
		for _, r := range j.refs {
			line, col := p.filePos(n, r.Line, r.Col)
			p.refs = append(p.refs, tplRef{task: r.Task, line: line, col: col, field: j.path, from: j.from, later: j.from >= 0})
		}
	}
	p.tpls = nil
}

// filePos maps a line and column inside scalar n's text to the file.
func (p *parser) filePos(n *yaml.Node, line, col int) (int, int) {
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The text starts on the next line, at the block's indentation.
		first := n.Line + 1
		indent := 0
		if first-1 < len(p.lines) {
			l := p.lines[first-1]
			indent = len(l) - len(strings.TrimLeft(l, " "))
		}
		return first + line - 1, indent + col
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 1 {
			return n.Line, p.quotedCol(n, col)
		}
	default:
		if line == 1 {
			return n.Line, n.Column + col - 1
		}
	}
	return n.Line + line - 1, col
}

// quotedCol maps a column of a quoted scalar's text to the file, counting
// ” and backslash escapes as the two (or more) characters they take there.
func (p *parser) quotedCol(n *yaml.Node, col int) int {
	if n.Line-1 >= len(p.lines) {
		return n.Column + col
	}
	raw := p.lines[n.Line-1]
	j := n.Column // 0-based index just after the opening quote
	for k := 1; k < col && j < len(raw); k++ {
		switch {
		case n.Style == yaml.SingleQuotedStyle && raw[j] == '\'' && j+1 < len(raw) && raw[j+1] == '\'':
			j += 2
		case n.Style == yaml.DoubleQuotedStyle && raw[j] == '\\' && j+1 < len(raw):
			switch raw[j+1] {
			case 'x':
				j += 4
			case 'u':
				j += 6
			case 'U':
				j += 10
			default:
				j += 2
			}
		default:
			j++
		}
	}
	return j + 1
}

// checkRefs reports outputs.<id> naming no task, or a task that runs later.
func (p *parser) checkRefs() {
	for _, r := range p.refs {
		order, ok := p.order[r.task]
		switch {
		case !ok:
			p.errs.addAt(r.line, r.col, r.field, "outputs.%s: there is no task '%s' in this flow", r.task, r.task)
		case r.later && order >= r.from:
			p.errs.addAt(r.line, r.col, r.field, "outputs.%s: the task '%s' has not run yet at this point; it comes at %s", r.task, r.task, p.ids[r.task])
		}
	}
}
