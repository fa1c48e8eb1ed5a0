package engine

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/rs/xid"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/template"
)

// Options configure an Engine. Store is needed by the KV tasks and kv();
// the rest have defaults.
type Options struct {
	Store  *storage.Store
	Bucket storage.Bucket // inputs, outputs and files of executions; nil: Store.Bucket()
	// Repo records flows, executions and logs. Nil keeps executions in
	// memory only (and writes no execution objects).
	Repo      Repository
	Registry  *plugin.Registry // nil: plugin.Default
	Templates *template.Engine // nil: one reading Store, with Policy
	// Policy grants flows namespaces besides their own and its ancestors
	// (config.Config.Policy); each execution is also bounded by its Scope.
	Policy storage.Policy
	// HTTPClient is what tasks fetch URLs with (plugin.RunContext); nil:
	// Download's default, which refuses private and loopback addresses.
	HTTPClient *http.Client
	Logger     *slog.Logger // the engine's own problems; nil: slog.Default()
	// MaxParallel bounds the branches one Parallel or ForEach runs at once;
	// 0: 16.
	MaxParallel int
	// FlushInterval is how often a running execution's states and logs are
	// saved; 0: 250ms. The final state is always saved before Run returns.
	FlushInterval time.Duration
}

// RunOptions tune one Run.
type RunOptions struct {
	// OnLog receives every log line as it happens, in order, from one
	// goroutine at a time.
	OnLog func(LogLine)
}

// Engine runs flows. It is safe for concurrent use.
type Engine struct {
	opts   Options
	reg    *plugin.Registry
	bucket storage.Bucket
	tpl    *template.Engine
	log    *slog.Logger

	base   context.Context // cancelled by Shutdown, with errServerStopped
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	running  map[string]*run
	finished map[string]*run // only without a Repo, the last maxFinished
	order    []string
	closing  bool
	wg       sync.WaitGroup
}

const maxFinished = 1000

// errServerStopped is why executions still running at Shutdown are killed.
var errServerStopped = errors.New("server stopped")

// New returns an engine.
func New(opts Options) *Engine {
	e := &Engine{opts: opts, reg: opts.Registry, bucket: opts.Bucket, tpl: opts.Templates, log: opts.Logger,
		running: map[string]*run{}, finished: map[string]*run{}}
	if e.reg == nil {
		e.reg = plugin.Default
	}
	if e.bucket == nil && opts.Store != nil {
		e.bucket = opts.Store.Bucket()
	}
	if e.tpl == nil {
		to := template.Options{}
		if opts.Store != nil {
			to.KV = opts.Store
		}
		to.Policy = opts.Policy
		e.tpl = template.New(to)
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.opts.MaxParallel <= 0 {
		e.opts.MaxParallel = 16
	}
	if e.opts.FlushInterval <= 0 {
		e.opts.FlushInterval = 250 * time.Millisecond
	}
	e.base, e.cancel = context.WithCancelCause(context.Background())
	return e
}

// Registry returns the task types the engine knows.
func (e *Engine) Registry() *plugin.Registry { return e.reg }

// Templates returns the template engine tasks render with.
func (e *Engine) Templates() *template.Engine { return e.tpl }

// Run executes flow with inputs and returns when it ends. The execution is
// returned whatever its final state (FAILED included), with its logs; err
// is for inputs that do not fit the flow (ValidationErrors, EINVALID) and
// for records that could not be saved. When ctx ends first the execution
// is KILLED.
func (e *Engine) Run(ctx context.Context, flow *Flow, inputs map[string]any, opts RunOptions) (*Execution, error) {
	r, err := e.prepare(ctx, flow, inputs, opts.OnLog)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(e.base, func() { cancel(context.Cause(e.base)) })
	defer func() {
		stop()
		cancel(nil)
	}()
	err = r.execute(rctx)
	return r.result(true), err
}

// Start saves a new execution in state CREATED, runs it in the background
// and returns it at once. Use Wait or Execution to follow it.
func (e *Engine) Start(ctx context.Context, flow *Flow, inputs map[string]any) (*Execution, error) {
	r, err := e.prepare(ctx, flow, inputs, nil)
	if err != nil {
		return nil, err
	}
	created := r.result(false)
	go func() {
		if err := r.execute(e.base); err != nil {
			e.log.Error("engine: execution records could not be saved", "execution", r.exec.ID, "err", err)
		}
	}()
	return created, nil
}

// prepare checks the inputs, creates the execution, saves it as CREATED and
// registers it as running.
func (e *Engine) prepare(ctx context.Context, flow *Flow, given map[string]any, onLog func(LogLine)) (*run, error) {
	if flow == nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "No flow to run.")
	}
	inputs, err := flow.ResolveInputs(given)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	ex := &Execution{
		ID: xid.New().String(), Namespace: flow.Namespace, FlowID: flow.ID, FlowRevision: flow.Revision, Scope: flow.Scope,
		State: CREATED, Labels: flow.Labels, Inputs: inputs, TaskRuns: []*TaskRun{}, Start: now,
	}
	if flow.KVSnapshot {
		ex.KVSnapshot = &now
	}
	r := newRun(e, flow, ex, onLog)

	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "The engine is shutting down: execution of flow '%s' in namespace '%s' refused.", flow.ID, flow.Namespace)
	}
	e.running[ex.ID] = r
	e.wg.Add(1)
	e.mu.Unlock()

	if err := r.saveCreated(ctx); err != nil {
		e.forget(r)
		return nil, err
	}
	return r, nil
}

// forget removes a run from the running set once it has ended and been saved.
func (e *Engine) forget(r *run) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.running, r.exec.ID)
	if e.opts.Repo == nil {
		e.finished[r.exec.ID] = r
		e.order = append(e.order, r.exec.ID)
		if len(e.order) > maxFinished {
			delete(e.finished, e.order[0])
			e.order = e.order[1:]
		}
	}
	e.wg.Done()
}

// Wait waits for an execution to end and returns it with its outputs and
// logs. An execution of another process is followed through the Repository.
func (e *Engine) Wait(ctx context.Context, id string) (*Execution, error) {
	e.mu.Lock()
	r := e.running[id]
	if r == nil {
		r = e.finished[id]
	}
	e.mu.Unlock()
	if r != nil {
		select {
		case <-r.done:
			return r.result(true), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for {
		ex, err := e.Execution(ctx, id)
		if err != nil {
			return nil, err
		}
		if ex.State.Terminated() {
			ex.Logs, err = e.Logs(ctx, id)
			return ex, err
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Execution returns an execution as it is now: from memory while this
// engine runs it, otherwise its record in the Repository joined with its
// inputs and outputs from the Bucket. Logs are not included.
func (e *Engine) Execution(ctx context.Context, id string) (*Execution, error) {
	e.mu.Lock()
	r := e.running[id]
	if r == nil {
		r = e.finished[id]
	}
	e.mu.Unlock()
	if r != nil {
		return r.result(false), nil
	}
	if e.opts.Repo == nil {
		return nil, kvflow.Errorf(kvflow.ENOTFOUND, "Execution '%s' does not exist.", id)
	}
	ex, err := e.opts.Repo.GetExecution(ctx, id)
	if err != nil {
		if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
			return nil, kvflow.Errorf(kvflow.ENOTFOUND, "Execution '%s' does not exist.", id)
		}
		return nil, err
	}
	if err := e.readObject(ctx, ex); err != nil {
		return nil, err
	}
	return ex, nil
}

// Logs returns the log lines of an execution.
func (e *Engine) Logs(ctx context.Context, id string) ([]LogLine, error) {
	e.mu.Lock()
	r := e.running[id]
	if r == nil {
		r = e.finished[id]
	}
	e.mu.Unlock()
	if r != nil && (e.opts.Repo == nil || !r.isDone()) {
		return r.logLines(), nil
	}
	if e.opts.Repo == nil {
		return nil, kvflow.Errorf(kvflow.ENOTFOUND, "Execution '%s' does not exist.", id)
	}
	return e.opts.Repo.Logs(ctx, id)
}

// Running is how many executions are running now.
func (e *Engine) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.running)
}

// Shutdown refuses new executions and waits for running ones until ctx
// ends; those still running then are killed, with the log line "server
// stopped", and saved as KILLED.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	e.cancel(errServerStopped)
	select {
	case <-idle:
		return nil
	case <-time.After(30 * time.Second):
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Executions did not stop within 30s of being killed.")
	}
}
