// Package template renders kvflow's templates in Kestra's expression
// language: expressions are parsed and evaluated here (expr.go, eval.go,
// functions.go), pongo2 v6 runs the tags (translate.go). A lone
// {{ expression }} keeps its type, undefined names are errors, no template
// reads a file, and every render is bounded in size, steps and time.
package template

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flosch/pongo2/v6"
	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// Limits on what one template may be and produce.
const (
	MaxTemplateLen = 256 << 10 // bytes of template source
	MaxOutput      = 16 << 20  // bytes of rendered text
	MaxNesting     = 64        // brackets nested inside one {{ }} or {% %}
	MaxTagLen      = 16 << 10  // characters of one {{ }} or {% %}, strings aside
	MaxSteps       = 1000000   // loop iterations and blocks run by one render
	MaxListInput   = 1 << 20   // bytes of a string make_list or split may take
	cacheSize      = 4096      // compiled templates kept per Engine
)

// KV is what kv() reads through; *storage.Store satisfies it. Get returns
// errors with the codes ENOTFOUND and EEXPIRED for missing and expired keys.
type KV interface {
	Get(ctx context.Context, ns, key string) (*storage.Entry, storage.Value, error)
}

// Options configure an Engine. kv() reads what storage.Access allows with
// Policy and the scope the render's context carries (storage.WithScope).
type Options struct {
	KV     KV
	Policy storage.Policy
	// MaxRenderTime bounds one render's CPU time (DefaultMaxRenderTime when 0);
	// a context deadline that comes sooner wins.
	MaxRenderTime time.Duration
}

// DefaultMaxRenderTime is how long one render may run.
const DefaultMaxRenderTime = 10 * time.Second

// Context is the data a template sees: flow {id, namespace}, execution
// {id, startDate}, inputs, vars, outputs (task id → outputs), taskrun, and
// anything else. Templates only read it. kv() takes the flow's namespace from
// flow.namespace.
type Context map[string]any

// Engine compiles and renders templates. It is safe for concurrent use and
// keeps the most recently used compiled templates.
type Engine struct {
	store     KV
	policy    storage.Policy
	maxRender time.Duration
	// sets are pongo2 template sets configured alike, made as needed up to one
	// per core: pongo2 v6 compiles racily on one set, so a compile takes one.
	sets     chan *pongo2.TemplateSet
	setsMade atomic.Int32

	mu    sync.Mutex
	cache map[string]*list.Element // source → *compiled in lru
	lru   *list.List
}

// compiled is a cached compile: a translation and pongo2's template (none
// for a lone expression), or the error compiling gave.
type compiled struct {
	src  string
	t    *translation
	tpl  *pongo2.Template
	refs []Ref
	err  error
}

// New returns an Engine reading keys through opts.KV. The first call checks
// that pongo2 behaves as kvflow relies on (see selfcheck.go) and panics if not.
func New(opts Options) *Engine {
	if err := registerTags(); err != nil {
		panic("template: cannot register kvflow's pongo2 tags: " + err.Error())
	}
	e := newEngine(opts)
	if err := selfCheck(); err != nil {
		panic(err.Error())
	}
	return e
}

func newEngine(opts Options) *Engine {
	e := &Engine{
		store:     opts.KV,
		policy:    opts.Policy,
		maxRender: opts.MaxRenderTime,
		sets:      make(chan *pongo2.TemplateSet, runtime.GOMAXPROCS(0)),
		cache:     map[string]*list.Element{},
		lru:       list.New(),
	}
	if e.maxRender <= 0 {
		e.maxRender = DefaultMaxRenderTime
	}
	return e
}

// takeSet returns a template set for one compile; putSet gives it back.
func (e *Engine) takeSet() *pongo2.TemplateSet {
	select {
	case set := <-e.sets:
		return set
	default:
	}
	if int(e.setsMade.Add(1)) > cap(e.sets) {
		return <-e.sets
	}
	set := pongo2.NewSet("kvflow", refuseLoader{})
	for _, tag := range bannedTags {
		if err := set.BanTag(tag); err != nil {
			panic(fmt.Sprintf("template: cannot ban pongo2 tag %q: %v", tag, err))
		}
	}
	return set
}

func (e *Engine) putSet(set *pongo2.TemplateSet) { e.sets <- set }

// refuseLoader is the set's only loader: templates cannot load anything.
type refuseLoader struct{}

func (refuseLoader) Abs(base, name string) string { return name }
func (refuseLoader) Get(path string) (io.Reader, error) {
	return nil, kvflow.Errorf(kvflow.EFORBIDDEN, "Templates cannot read files (%q).", kvflow.Clip(path))
}

// Render renders src with data. When src is exactly one {{ expression }}
// (whitespace around allowed) the result keeps the expression's type: map,
// []any, int64, float64, bool, string, time.Time, nil...; otherwise it is the
// rendered text. Text without {{ or {% is returned as is. A typed map or list
// may be the one in data, not a copy: do not modify it.
//
// Errors are *kvflow.Error: EINVALID for template errors (undefined names,
// syntax, refused tags), ENOTFOUND, EEXPIRED and EFORBIDDEN from kv(),
// ETOOLARGE past a limit above, EUNAVAILABLE when ctx is done or the store
// fails. Those that come from a place in the template carry a *Location.
func (e *Engine) Render(ctx context.Context, src string, data Context) (any, error) {
	return e.render(ctx, src, data, true)
}

// RenderString renders src to text; a lone expression prints as in mixed text
// (maps and lists as JSON).
func (e *Engine) RenderString(ctx context.Context, src string, data Context) (string, error) {
	v, err := e.render(ctx, src, data, false)
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	return s, nil
}

// RenderValue renders every string inside v, through map[string]any, []any,
// map[string]string and []string, with Render; other values are returned as
// they are. An error's Location names the path inside v (headers.Accept, [2]).
func (e *Engine) RenderValue(ctx context.Context, v any, data Context) (any, error) {
	return e.renderValue(ctx, v, data, "")
}

func (e *Engine) renderValue(ctx context.Context, v any, data Context, path string) (any, error) {
	switch x := v.(type) {
	case string:
		out, err := e.Render(ctx, x, data)
		return out, atPath(err, path)
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, k := range sortedKeys(x) {
			r, err := e.renderValue(ctx, x[k], data, join(path, k))
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			r, err := e.renderValue(ctx, el, data, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]string:
		out := make(map[string]string, len(x))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			r, err := e.RenderString(ctx, x[k], data)
			if err != nil {
				return nil, atPath(err, join(path, k))
			}
			out[k] = r
		}
		return out, nil
	case []string:
		out := make([]string, len(x))
		for i, el := range x {
			r, err := e.RenderString(ctx, el, data)
			if err != nil {
				return nil, atPath(err, fmt.Sprintf("%s[%d]", path, i))
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isTemplate reports whether src has anything for pongo2 to do.
func isTemplate(src string) bool {
	return strings.Contains(src, "{{") || strings.Contains(src, "{%")
}

func (e *Engine) newState(ctx context.Context, c *compiled, data Context) *renderState {
	if ctx == nil {
		ctx = context.Background()
	}
	deadline := time.Now().Add(e.maxRender)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return &renderState{ctx: ctx, engine: e, c: c, data: data, ns: flowNamespace(data), deadline: deadline, limit: e.maxRender,
		sec: storage.SecretsFrom(ctx)}
}

func (e *Engine) render(ctx context.Context, src string, data Context, wantValue bool) (any, error) {
	if !isTemplate(src) {
		return src, nil
	}
	c := e.compile(src)
	if c.err != nil {
		return nil, c.err
	}
	st := e.newState(ctx, c, data)
	if err := st.interrupted(); err != nil {
		return nil, err
	}
	return st.run(wantValue)
}

// renderNested renders src for render(), inside another render.
func (e *Engine) renderNested(parent *renderState, src string, data Context) (any, error) {
	if !isTemplate(src) {
		return src, nil
	}
	c := e.compile(src)
	if c.err != nil {
		return nil, c.err
	}
	st := *parent
	st.c, st.data, st.err, st.overflow = c, data, nil, false
	v, err := st.run(true)
	parent.steps, parent.depth = st.steps, st.depth
	parent.tainted = parent.tainted || st.tainted
	return v, err
}

// run renders the state's template: a lone expression directly, anything
// else through pongo2.
func (st *renderState) run(wantValue bool) (v any, err error) {
	c := st.c
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, panicError(r)
		}
	}()
	if c.t.lone != nil {
		ev := &evaluator{st: st, data: st.data}
		v, err := st.evalTainting(ev, c.t.lone)
		if err != nil {
			return nil, c.place(err)
		}
		if wantValue {
			return normalize(v), nil
		}
		return c.t.before + Text(v) + c.t.after, nil
	}
	w := &limitWriter{st: st}
	if c.t.direct != nil {
		ev := &evaluator{st: st, data: st.data}
		for _, p := range c.t.direct {
			if p.expr < 0 {
				w.Write([]byte(p.text))
				continue
			}
			v, err := st.evalTainting(ev, c.t.exprs[p.expr])
			if err != nil {
				return nil, c.place(err)
			}
			w.Write([]byte(Text(v)))
		}
		if err := st.interrupted(); err != nil {
			return nil, err
		}
		return w.buf.String(), nil
	}
	perr := c.tpl.ExecuteWriterUnbuffered(pongo2.Context{ctxKey: st, fnEval: evalFunc, fnBool: boolFunc, fnEach: eachFunc, fnPairs: pairsFunc}, w)
	if st.err != nil {
		return nil, c.place(st.err)
	}
	if perr != nil {
		return nil, c.pongoError(perr)
	}
	if err := st.interrupted(); err != nil {
		return nil, err
	}
	if st.tainted {
		st.taint(w.buf.String())
	}
	return w.buf.String(), nil
}

// place turns an evaluator error into a template error at its line and column.
func (c *compiled) place(err error) error {
	var ee *evalError
	if errors.As(err, &ee) {
		line, col := lineCol(c.src, ee.pos)
		return newError(ee.code, line, col, ee.msg, ee.cause)
	}
	var ke *kvflow.Error
	if errors.As(err, &ke) {
		return err
	}
	return kvflow.Errorf(kvflow.EINVALID, "Template error: %s", sentence(err.Error()))
}

// pongoError turns pongo2's error into a template error placed in the source.
func (c *compiled) pongoError(err error) error {
	var pe *pongo2.Error
	if !errors.As(err, &pe) || pe == nil {
		return kvflow.Errorf(kvflow.EINVALID, "Template error: %s", sentence(err.Error()))
	}
	var cause error = pe.OrigError
	if cause == nil {
		cause = errors.New("unknown error")
	}
	code, reason := kvflow.EINVALID, sentence(cause.Error())
	var ke *kvflow.Error
	if errors.As(cause, &ke) {
		code, reason = ke.Code, ke.Error()
	}
	line, col := 0, 0
	if c.t != nil {
		line, col = c.t.srcPos(c.src, pe.Line, pe.Column)
	}
	return newError(code, line, col, reason, cause)
}

// flowNamespace reads data["flow"]["namespace"].
func flowNamespace(data Context) string {
	switch f := data["flow"].(type) {
	case map[string]any:
		s, _ := f["namespace"].(string)
		return s
	case Context:
		s, _ := f["namespace"].(string)
		return s
	case map[string]string:
		return f["namespace"]
	}
	return ""
}

// compile returns the cached compile of src, compiling on a miss.
func (e *Engine) compile(src string) *compiled {
	e.mu.Lock()
	if el, ok := e.cache[src]; ok {
		e.lru.MoveToFront(el)
		e.mu.Unlock()
		return el.Value.(*compiled)
	}
	e.mu.Unlock()

	c := e.build(src)
	if len(src) > MaxTemplateLen {
		return c // not worth a cache slot
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if el, ok := e.cache[src]; ok {
		e.lru.MoveToFront(el)
		return el.Value.(*compiled)
	}
	e.cache[src] = e.lru.PushFront(c)
	for e.lru.Len() > cacheSize {
		old := e.lru.Remove(e.lru.Back()).(*compiled)
		delete(e.cache, old.src)
	}
	return c
}

// build translates src (see translate.go) and compiles it with pongo2.
func (e *Engine) build(src string) (c *compiled) {
	c = &compiled{src: src}
	if len(src) > MaxTemplateLen {
		c.err = kvflow.Errorf(kvflow.EINVALID, "Template is %d bytes long; the limit is %d.", len(src), MaxTemplateLen)
		return c
	}
	defer func() {
		if r := recover(); r != nil {
			c.t, c.tpl, c.err = nil, nil, panicError(r)
		}
	}()
	t, err := translate(src)
	if err != nil {
		c.err = err
		return c
	}
	c.t = t
	c.refs = outputRefs(src, t.exprs)
	if t.lone != nil || t.direct != nil {
		return c
	}
	set := e.takeSet()
	defer e.putSet(set)
	tpl, err := set.FromString(t.out)
	if err != nil {
		c.err = c.pongoError(err)
		return c
	}
	c.tpl = tpl
	return c
}

// Ref is a task whose outputs a template reads: outputs.<Task>, at a line
// and column of the template.
type Ref struct {
	Task      string
	Line, Col int
}

// Check compiles src as Render would, without rendering it, and returns the
// tasks whose outputs it reads. Text without template syntax passes. The
// error is what Render would return for a template that does not compile:
// unknown functions, filters and tests and wrong arguments included.
func (e *Engine) Check(src string) ([]Ref, error) {
	if !isTemplate(src) {
		return nil, nil
	}
	c := e.compile(src)
	return c.refs, c.err
}

var checker = sync.OnceValue(func() *Engine { return New(Options{}) })

// Check compiles src with a shared engine without a store; see Engine.Check.
func Check(src string) ([]Ref, error) { return checker().Check(src) }

// maxCheckedBlocks bounds the blocks CheckAll compiles one by one.
const maxCheckedBlocks = 32

// CheckAll is Check reporting every error, not only the first: when src
// does not compile, each {{ … }} block is compiled alone, at its place (the
// rest blanked out, lines kept), and the errors found at other places are
// added, in order.
func CheckAll(src string) ([]Ref, []error) {
	refs, err := Check(src)
	if err == nil {
		return refs, nil
	}
	errs := []error{err}
	seen := map[string]bool{err.Error(): true}
	for i, n := 0, 0; n < maxCheckedBlocks; n++ {
		start := strings.Index(src[i:], "{{")
		if start < 0 {
			break
		}
		start += i
		end := strings.Index(src[start:], "}}")
		if end < 0 {
			break
		}
		end += start + 2
		alone := []byte(src)
		for k := range alone {
			if (k < start || k >= end) && alone[k] != '\n' {
				alone[k] = ' '
			}
		}
		if _, err := Check(string(alone)); err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
		i = end
	}
	return nil, errs
}

// outputRefs lists outputs.<id> and outputs['id'] in exprs.
func outputRefs(src string, exprs []*expr) []Ref {
	var refs []Ref
	var walk func(e *expr)
	walk = func(e *expr) {
		if e == nil {
			return
		}
		if e.a != nil && e.a.kind == eIdent && e.a.name == "outputs" {
			task := ""
			switch {
			case e.kind == eAttr:
				task = e.name
			case e.kind == eIndex && e.b.kind == eLit:
				task, _ = e.b.val.(string)
			}
			if task != "" {
				line, col := lineCol(src, e.a.pos)
				refs = append(refs, Ref{Task: task, Line: line, Col: col})
			}
		}
		walk(e.a)
		walk(e.b)
		walk(e.c)
		for _, x := range e.args {
			walk(x)
		}
		for _, x := range e.keys {
			walk(x)
		}
	}
	for _, e := range exprs {
		walk(e)
	}
	return refs
}

// Location is where in a template an error happened. Errors from Render wrap
// one when the place is known; find it with errors.As.
type Location struct {
	Line, Col int    // 1-based; 0 when unknown
	Path      string // inside a value given to RenderValue: "headers.Accept", "[2]"
	Reason    string // the message without the place
	Err       error  // the cause, such as kv()'s *kvflow.Error
}

func (l *Location) Error() string {
	if l.Line == 0 {
		return l.Reason
	}
	return fmt.Sprintf("line %d, column %d: %s", l.Line, l.Col, l.Reason)
}

func (l *Location) Unwrap() error { return l.Err }

// newError builds the *kvflow.Error for a template failure at line:col.
func newError(code string, line, col int, reason string, cause error) error {
	loc := &Location{Line: line, Col: col, Reason: reason, Err: cause}
	if line == 0 {
		return &kvflow.Error{Code: code, Message: "Template error: " + reason, Err: loc}
	}
	return &kvflow.Error{Code: code, Message: "Template error at " + loc.Error(), Err: loc}
}

// Wrap names where a template came from in err's message, for example
// Wrap(err, "log", "message") gives "Task 'log', property 'message', line 1,
// column 4: Variable 'x' is not defined." The code and Location are kept; errors
// without a Location get the prefix only.
func Wrap(err error, task, property string) error {
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("Task '%s', property '%s'", task, property)
	var loc *Location
	if !errors.As(err, &loc) {
		return &kvflow.Error{Code: kvflow.ErrorCode(err), Message: where + ": " + kvflow.ErrorMessage(err), Err: err}
	}
	if loc.Path != "" {
		sep := "."
		if strings.HasPrefix(loc.Path, "[") {
			sep = ""
		}
		where = fmt.Sprintf("Task '%s', property '%s%s%s'", task, property, sep, loc.Path)
	}
	msg := where + ": " + loc.Reason
	if loc.Line > 0 {
		msg = fmt.Sprintf("%s, line %d, column %d: %s", where, loc.Line, loc.Col, loc.Reason)
	}
	return &kvflow.Error{Code: kvflow.ErrorCode(err), Message: msg, Err: err}
}

// atPath records where inside a RenderValue argument an error happened.
func atPath(err error, path string) error {
	var loc *Location
	var ke *kvflow.Error
	if err == nil || path == "" || !errors.As(err, &loc) || loc.Path != "" || !errors.As(err, &ke) {
		return err
	}
	// Compile errors are cached and shared: copy rather than change them.
	l := *loc
	l.Path = path
	return &kvflow.Error{Code: ke.Code, Message: ke.Message, Err: &l}
}

// panicError reports a panic inside pongo2 as a template error.
func panicError(r any) error {
	reason := fmt.Sprint(r)
	if re, ok := r.(runtime.Error); ok && strings.Contains(re.Error(), "divide by zero") {
		reason = "division by zero"
	}
	return newError(kvflow.EINVALID, 0, 0, "The template failed: "+strings.TrimSuffix(reason, ".")+".", nil)
}

// sentence ends msg with a period.
func sentence(msg string) string {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return "Unknown error."
	}
	if !strings.HasSuffix(msg, ".") && !strings.HasSuffix(msg, "?") && !strings.HasSuffix(msg, "!") {
		msg += "."
	}
	return msg
}
