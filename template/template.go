// Package template renders kvflow's templates: pongo2 v6 with the kv(),
// json()/fromJson() and toJson() functions, typed results for a lone
// {{ expression }}, errors for undefined variables, and no file access.
package template

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"

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
}

// Context is the data a template sees: flow {id, namespace}, execution
// {id, startDate}, inputs, vars, outputs (task id → outputs), taskrun, and
// anything else. Templates only read it. kv() takes the flow's namespace from
// flow.namespace.
type Context map[string]any

// Engine compiles and renders templates. It is safe for concurrent use and
// keeps the most recently used compiled templates.
type Engine struct {
	store  KV
	policy storage.Policy
	set    *pongo2.TemplateSet
	funcs  pongo2.Context // functions and constants every template sees

	compileMu sync.Mutex // pongo2 v6 compiles racily on one set

	mu    sync.Mutex
	cache map[string]*list.Element // source → *compiled in lru
	lru   *list.List
}

// compiled is a cached compile: a template, or the error compiling it gave.
type compiled struct {
	src   string
	tpl   *pongo2.Template
	root  pongo2.INode // tpl's document
	typed bool         // exactly one {{ expression }} with whitespace around
	err   error
}

// bannedTags read files (include, ssi, import, extends), recurse without
// bound (macro), produce text for nothing (lorem), render into buffers of
// their own that the output limit cannot see (filter, spaceless, ifchanged,
// block, which is of no use without extends), or keep state in the compiled
// template, shared by concurrent renders (cycle, ifchanged).
var bannedTags = []string{"include", "ssi", "import", "extends", "macro", "lorem", "filter", "spaceless", "ifchanged", "block", "cycle"}

// New returns an Engine reading keys through opts.KV.
func New(opts Options) *Engine {
	e := &Engine{
		store:  opts.KV,
		policy: opts.Policy,
		set:    pongo2.NewSet("kvflow", refuseLoader{}),
		cache:  map[string]*list.Element{},
		lru:    list.New(),
	}
	for _, tag := range bannedTags {
		if err := e.set.BanTag(tag); err != nil {
			panic(fmt.Sprintf("template: cannot ban pongo2 tag %q: %v", tag, err))
		}
	}
	e.funcs = pongo2.Context{
		"kv":       wrap(e.kv),
		"json":     wrap(fromJSON("json")),
		"fromJson": wrap(fromJSON("fromJson")),
		"toJson":   wrap(toJSONFunc),
		"null":     nil, // Pebble's null literal, for kv('k', null, false)
	}
	for name, marker := range namedArgMarkers {
		e.funcs[marker] = namedArgFunc(name)
	}
	return e
}

// refuseLoader is the set's only loader: templates cannot load anything.
type refuseLoader struct{}

func (refuseLoader) Abs(base, name string) string { return name }
func (refuseLoader) Get(path string) (io.Reader, error) {
	return nil, kvflow.Errorf(kvflow.EFORBIDDEN, "Templates cannot read files (%q).", clip(path))
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

func (e *Engine) render(ctx context.Context, src string, data Context, wantValue bool) (any, error) {
	if !isTemplate(src) {
		return src, nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	c := e.compile(src)
	if c.err != nil {
		return nil, c.err
	}
	st := &renderState{ctx: ctx, ns: flowNamespace(data), wantValue: wantValue && c.typed}
	// The functions and the state go in the private context, which pongo2
	// looks in first; data is the public context, read but never written.
	priv := make(pongo2.Context, len(e.funcs)+4)
	for k, v := range e.funcs {
		priv[k] = v
	}
	priv[stateKey] = st
	// Autoescape false: no HTML escaping, for this render only.
	ec := &pongo2.ExecutionContext{Public: pongo2.Context(data), Private: priv, Autoescape: false}
	w := &limitWriter{st: st}
	if err := execute(c, ec, w, st); err != nil {
		return nil, err
	}
	if err := st.interrupted(); err != nil {
		return nil, err
	}
	if st.wantValue {
		if !st.captured {
			return nil, kvflow.Errorf(kvflow.EINTERNAL, "Template %q did not produce its value.", clip(src))
		}
		return normalize(st.value), nil
	}
	return w.buf.String(), nil
}

// execute runs a compiled template, turning pongo2's errors and panics into
// kvflow errors. It builds the execution context itself rather than calling
// Template.Execute, which copies the data and checks every name with a regexp
// on each render.
func execute(c *compiled, ec *pongo2.ExecutionContext, w pongo2.TemplateWriter, st *renderState) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r, st.pos)
		}
	}()
	settable(reflect.ValueOf(ec).Elem().FieldByIndex(ecTemplate.Index)).Set(reflect.ValueOf(c.tpl))
	if perr := c.root.Execute(ec, w); perr != nil {
		return convert(perr, st)
	}
	return nil
}

// ecTemplate is ExecutionContext's unexported template field, which pongo2
// needs to report errors.
var ecTemplate, _ = reflect.TypeOf(pongo2.ExecutionContext{}).FieldByName("template")

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

// build compiles src and rewrites its tree (see rewrite.go).
func (e *Engine) build(src string) (c *compiled) {
	c = &compiled{src: src}
	if len(src) > MaxTemplateLen {
		c.err = kvflow.Errorf(kvflow.EINVALID, "Template is %d bytes long; the limit is %d.", len(src), MaxTemplateLen)
		return c
	}
	prepared, err := prepare(src)
	if err != nil {
		c.err = err
		return c
	}
	e.compileMu.Lock()
	defer e.compileMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			c.tpl, c.err = nil, panicError(r, nil)
		}
	}()
	tpl, err := e.set.FromString(prepared)
	if err != nil {
		c.err = convert(err, nil)
		return c
	}
	root, typed, err := rewrite(tpl)
	if err != nil {
		c.err = kvflow.Errorf(kvflow.EINTERNAL, "Template could not be prepared: %v.", err)
		return c
	}
	c.tpl, c.root, c.typed = tpl, root, typed != nil
	return c
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

// convert turns a pongo2 error into a kvflow error with its place.
func convert(err error, st *renderState) error {
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
	} else if st != nil && st.funcErr != nil && cause.Error() == st.funcErr.Error() {
		code, reason, cause = kvflow.ErrorCode(st.funcErr), kvflow.ErrorMessage(st.funcErr), st.funcErr
	} else if strings.Contains(reason, "sandbox restriction") {
		reason = sandboxReason(reason)
	}
	return newError(code, pe.Line, pe.Column, reason, cause)
}

// sandboxReason rewords pongo2's refusal of a banned tag.
func sandboxReason(msg string) string {
	for _, tag := range bannedTags {
		if strings.Contains(msg, "'"+tag+"'") {
			return fmt.Sprintf("The tag '%s' is not allowed in kvflow templates.", tag)
		}
	}
	return sentence(msg)
}

// panicError reports a pongo2 panic as a template error.
func panicError(r any, pos *pongo2.Token) error {
	reason := fmt.Sprint(r)
	if re, ok := r.(runtime.Error); ok && strings.Contains(re.Error(), "divide by zero") {
		reason = "division by zero"
	}
	line, col := 0, 0
	if pos != nil {
		line, col = pos.Line, pos.Col
	}
	return newError(kvflow.EINVALID, line, col, "The template failed: "+strings.TrimSuffix(reason, ".")+".", nil)
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
