package template

import (
	"strconv"
	"sync"

	"github.com/flosch/pongo2/v6"
)

// Two tags of kvflow's own, registered with pongo2's public RegisterTag:
// {% kvflow_p 3 %} prints expression 3 and {% kvflow_s %} starts every loop
// iteration (the step guard). pongo2 runs a tag's node directly, where a
// function in the context would cost a reflective call per use. The
// template parser refuses tag names starting with kvflow_ (translate.go),
// so only the translation writes them.
const (
	tagPrint = "kvflow_p"
	tagStep  = "kvflow_s"
)

var registerTags = sync.OnceValue(func() error {
	if err := pongo2.RegisterTag(tagPrint, func(_ *pongo2.Parser, start *pongo2.Token, args *pongo2.Parser) (pongo2.INodeTag, *pongo2.Error) {
		tok := args.MatchType(pongo2.TokenNumber)
		if tok == nil || args.Remaining() > 0 {
			return nil, args.Error("kvflow_p takes an expression number.", start)
		}
		n, err := strconv.Atoi(tok.Val)
		if err != nil {
			return nil, args.Error("kvflow_p takes an expression number.", start)
		}
		return printTag(n), nil
	}); err != nil {
		return err
	}
	return pongo2.RegisterTag(tagStep, func(_ *pongo2.Parser, start *pongo2.Token, args *pongo2.Parser) (pongo2.INodeTag, *pongo2.Error) {
		if args.Remaining() > 0 {
			return nil, args.Error("kvflow_s takes no arguments.", start)
		}
		return stepTag{}, nil
	})
})

// printTag prints an expression of the template being rendered.
type printTag int

func (n printTag) Execute(ec *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	v, _, err := evalIn(ec, pongo2.AsValue(int(n)))
	if err != nil {
		return ec.OrigError(err, nil)
	}
	w.WriteString(Text(v))
	return nil
}

// stepTag counts a loop step; see stepFunc.
type stepTag struct{}

func (stepTag) Execute(ec *pongo2.ExecutionContext, _ pongo2.TemplateWriter) *pongo2.Error {
	if _, err := stepFunc(ec); err != nil {
		return ec.OrigError(err, nil)
	}
	return nil
}
