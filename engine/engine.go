package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
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
	Bucket storage.Bucket // inputs, outputs and files of executions
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

	// Queue, when set (with Repo), makes executions durable: Start hands
	// them to the queue, and workers run them through Work.
	Queue kvflow.Queue
	// Worker names this process in the executions it runs; "": host-pid-id.
	Worker string
	// HeartbeatTimeout is how long a worker may stay silent before its
	// executions are taken over; 0: 30s. Heartbeats go every
	// min(1s, HeartbeatTimeout/3) and also carry kill requests.
	HeartbeatTimeout time.Duration
	// RunHere, when above 0, lets a process that is also a worker start
	// up to that many executions it creates itself at once, without
	// waiting for the queue to hand them out; the claim still makes it the
	// only runner, and the queue's job then finds it taken.
	RunHere int
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

	mu        sync.Mutex
	running   map[string]*run
	finished  map[string]*run // only without a Repo, the last maxFinished
	order     []string
	watches   map[string]*watch
	flows     flowCache
	starting  map[string]chan struct{} // runs here about to register: closed when they do or give up
	polling   bool                     // pollWatches runs
	listening bool                     // ends are heard (endListener), polls are a fallback
	wake      chan struct{}            // a watched execution ended: poll now
	closing   bool
	heartbeat bool // the heartbeat loop runs
	onEnd     []func(*Execution)
	wg        sync.WaitGroup

	triggerFires atomic.Int64
	epoch        time.Time     // leases are kept on the monotonic clock since
	here         chan struct{} // slots for RunHere
}

// watch lets Wait learn at once that a run of this process ended.
type watch struct {
	done    chan struct{}
	r       *run
	waiters int
	// For the poller, when another process may run it:
	next  time.Time     // when to read its state again
	delay time.Duration // then the wait after that
	since time.Time     // when the watch began
}

const maxFinished = 1000

var (
	// errServerStopped is why executions still running at Shutdown are killed.
	errServerStopped = errors.New("server stopped")
	// errKilled is why an execution killed through the API stops.
	errKilled = errors.New("killed on request")
	// errLost stops a run whose execution another worker took over.
	errLost = errors.New("another worker took the execution over")
)

// New returns an engine.
func New(opts Options) *Engine {
	e := &Engine{opts: opts, reg: opts.Registry, bucket: opts.Bucket, tpl: opts.Templates, log: opts.Logger,
		running: map[string]*run{}, finished: map[string]*run{}, watches: map[string]*watch{}, starting: map[string]chan struct{}{},
		wake: make(chan struct{}, 1), epoch: time.Now()}
	if e.reg == nil {
		e.reg = plugin.Default
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
	if e.opts.HeartbeatTimeout <= 0 {
		e.opts.HeartbeatTimeout = 30 * time.Second
	}
	if e.opts.Worker == "" {
		host, _ := os.Hostname()
		e.opts.Worker = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), xid.New().String()[12:])
	}
	e.here = make(chan struct{}, max(e.opts.RunHere, 0))
	e.base, e.cancel = context.WithCancelCause(context.Background())
	return e
}

// Registry returns the task types the engine knows.
func (e *Engine) Registry() *plugin.Registry { return e.reg }

// Templates returns the template engine tasks render with.
func (e *Engine) Templates() *template.Engine { return e.tpl }

// Worker is the name of this process in the executions it runs.
func (e *Engine) Worker() string { return e.opts.Worker }

// HeartbeatTimeout is how long a silent worker keeps its executions.
func (e *Engine) HeartbeatTimeout() time.Duration { return e.opts.HeartbeatTimeout }

// OnEnd registers fn, called with each execution this process ran once it
// has ended and been saved.
func (e *Engine) OnEnd(fn func(*Execution)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onEnd = append(e.onEnd, fn)
}

// Run executes flow with inputs in this process and returns when it ends.
// The execution is returned whatever its final state (FAILED included),
// with its logs; err is for inputs that do not fit the flow
// (ValidationErrors, EINVALID) and for records that could not be saved.
// When ctx ends first the execution is KILLED.
func (e *Engine) Run(ctx context.Context, flow *Flow, inputs map[string]any, opts RunOptions) (*Execution, error) {
	ex, err := e.Prepare(ctx, flow, inputs, nil)
	if err != nil {
		return nil, err
	}
	if err := e.SaveObject(ctx, ex); err != nil {
		return nil, err
	}
	r, err := e.register(flow, ex, opts.OnLog, 0)
	if err != nil {
		return nil, err
	}
	if err := r.saveCreated(ctx); err != nil {
		e.forget(r)
		return nil, err
	}
	err = r.execute(ctx)
	return r.result(true), err
}

// Start creates an execution of flow in state CREATED and returns it at
// once: with a Queue, a worker (of any process) runs it; without, this
// process does. Use Wait or Execution to follow it.
func (e *Engine) Start(ctx context.Context, flow *Flow, inputs map[string]any) (*Execution, error) {
	return e.StartTriggered(ctx, flow, inputs, nil)
}

// StartTriggered is Start for an execution a trigger creates.
func (e *Engine) StartTriggered(ctx context.Context, flow *Flow, inputs map[string]any, trig *kvflow.TriggerInfo) (*Execution, error) {
	inputs, err := e.triggerInputs(ctx, flow, inputs, trig)
	if err != nil {
		return nil, err
	}
	ex, err := e.Prepare(ctx, flow, inputs, trig)
	if err != nil {
		return nil, err
	}
	if e.opts.Queue != nil && e.opts.Repo != nil {
		e.mu.Lock()
		closing := e.closing
		e.mu.Unlock()
		if closing {
			return nil, shuttingDown(flow)
		}
		var write func(context.Context) error // nil: nothing to store
		if e.hasObject(ex) {
			write = func(ctx context.Context) error { return e.writeObject(ctx, ex) }
		}
		here := false
		if flow.Concurrency == nil { // a limited flow waits for its turn through the queue
			select {
			case e.here <- struct{}{}:
				here = true
			default: // busy: the queue hands it to a worker
			}
		}
		if !here {
			if err := e.opts.Queue.Submit(ctx, ex, write); err != nil {
				return nil, err
			}
		} else {
			// Run here at once: created claimed by this worker, without a
			// job; should this process die, the execution goes silent and
			// is taken over after the heartbeat timeout. Once created it
			// runs even if Shutdown starts meanwhile, and Shutdown waits
			// for it: refused, it would wait for that timeout.
			mine := *ex // the caller keeps ex; the run changes its copy
			mine.TaskRuns, mine.Worker = []*TaskRun{}, e.opts.Worker
			e.mu.Lock()
			if e.closing {
				e.mu.Unlock()
				<-e.here
				return nil, shuttingDown(flow)
			}
			e.starting[ex.ID] = make(chan struct{}) // Wait waits for the run, not the database
			e.wg.Add(1)
			e.mu.Unlock()
			sent := e.clock() // the creation's heartbeat is no older than this
			if err := e.opts.Queue.SubmitHere(ctx, &mine, write); err != nil {
				e.started(ex.ID)
				e.wg.Done()
				<-e.here
				return nil, err
			}
			go func() {
				defer e.wg.Done()
				err := e.claimAndRun(e.base, &mine, flow, nil, false, 1, sent)
				<-e.here
				e.started(ex.ID) // if it never registered
				if err != nil {
					e.log.Warn("engine: execution could not run here; it is taken over after the heartbeat timeout", "execution", ex.ID, "err", err)
				}
			}()
		}
		if trig != nil {
			e.triggerFires.Add(1)
		}
		return ex, nil
	}
	if err := e.SaveObject(ctx, ex); err != nil {
		return nil, err
	}
	r, err := e.register(flow, ex, nil, 0)
	if err != nil {
		return nil, err
	}
	if err := r.saveCreated(ctx); err != nil {
		e.forget(r)
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

// triggerInputs renders the templates among a trigger's inputs with its
// variables, as Kestra does (`data: "{{ trigger.outputs.data }}"`), within
// the flow's scope; other inputs pass as given.
func (e *Engine) triggerInputs(ctx context.Context, flow *Flow, inputs map[string]any, trig *kvflow.TriggerInfo) (map[string]any, error) {
	if trig == nil {
		return inputs, nil
	}
	var out map[string]any
	for k, v := range inputs {
		s, ok := v.(string)
		if !ok || !strings.Contains(s, "{{") && !strings.Contains(s, "{%") {
			continue
		}
		if out == nil {
			out = maps.Clone(inputs)
		}
		data := template.Context{"flow": map[string]any{"id": flow.ID, "namespace": flow.Namespace, "revision": flow.Revision},
			"labels": labelsOf(flow), "trigger": trig.Variables}
		rendered, err := e.tpl.Render(storage.WithScope(ctx, flow.Scope), s, data)
		if err != nil {
			return nil, kvflow.Errorf(kvflow.ErrorCode(err), "Trigger '%s' of flow '%s': input '%s': %s", trig.ID, flow.ID, k, kvflow.ErrorMessage(err))
		}
		out[k] = rendered
	}
	if out == nil {
		return inputs, nil
	}
	return out, nil
}

// Prepare checks the inputs and returns a new execution of flow in state
// CREATED. Nothing is stored yet: the caller creates it, with SaveObject
// as Submit's write (a trigger does so inside its own transaction, see
// riverqueue.Queue.SubmitTx).
func (e *Engine) Prepare(ctx context.Context, flow *Flow, given map[string]any, trig *kvflow.TriggerInfo) (*Execution, error) {
	if flow == nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "No flow to run.")
	}
	inputs, err := flow.ResolveInputs(given)
	if err != nil {
		return nil, err
	}
	ex := &Execution{
		ID: xid.New().String(), Namespace: flow.Namespace, FlowID: flow.ID, FlowRevision: flow.Revision, Scope: flow.Scope,
		State: CREATED, Labels: flow.Labels, Inputs: inputs, TaskRuns: []*TaskRun{}, Start: now(), Trigger: trig,
	}
	if flow.KVSnapshot {
		at := ex.Start
		ex.KVSnapshot = &at
	}
	return ex, nil
}

// SaveObject writes a new execution's inputs and trigger variables to
// object storage, when it has any.
func (e *Engine) SaveObject(ctx context.Context, ex *Execution) error {
	if e.hasObject(ex) {
		return e.writeObject(ctx, ex)
	}
	return nil
}

// hasObject reports whether a new execution has inputs or trigger
// variables for SaveObject to store.
func (e *Engine) hasObject(ex *Execution) bool {
	return e.opts.Repo != nil && (len(ex.Inputs) > 0 || (ex.Trigger != nil && len(ex.Trigger.Variables) > 0))
}

func shuttingDown(flow *Flow) error {
	return kvflow.Errorf(kvflow.EUNAVAILABLE, "The engine is shutting down: execution of flow '%s' in namespace '%s' refused.", flow.ID, flow.Namespace)
}

// register makes a run of ex and records it as running here.
func (e *Engine) register(flow *Flow, ex *Execution, onLog func(LogLine), claim int64) (*run, error) {
	r := newRun(e, flow, ex, onLog)
	r.claim = claim // before other goroutines see r
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing && e.starting[ex.ID] == nil { // a run StartTriggered began goes on
		return nil, shuttingDown(flow)
	}
	if old := e.running[ex.ID]; old != nil && claim != 0 && old.claim != 0 && old.claim < claim {
		// This process ran it under an older claim and lost that (it was
		// paused, or cut off, past the heartbeat timeout): that run stops
		// before this one starts.
		e.mu.Unlock()
		old.lost.Store(true)
		old.stop(errLost)
		<-old.done
		e.mu.Lock()
		for e.running[ex.ID] == old { // forget comes right after done
			e.mu.Unlock()
			time.Sleep(time.Millisecond)
			e.mu.Lock()
		}
	}
	if e.running[ex.ID] != nil {
		return nil, kvflow.Errorf(kvflow.ECONFLICT, "Execution '%s' already runs in this process.", ex.ID)
	}
	e.running[ex.ID] = r
	e.wg.Add(1)
	if ch := e.starting[ex.ID]; ch != nil {
		close(ch)
		delete(e.starting, ex.ID)
	}
	return r, nil
}

// Work runs an execution created by Start on a Queue: the queue's workers
// call it, in any process. It claims the execution first, so only one
// worker runs it; a claimed execution whose worker stopped heartbeating is
// taken over: its finished task runs are kept (with their outputs), the
// interrupted ones get a new attempt. An execution that is over or held
// by a live worker is left alone (nil).
func (e *Engine) Work(ctx context.Context, id string) (err error) {
	repo := e.opts.Repo
	if repo == nil {
		return kvflow.Errorf(kvflow.EINTERNAL, "Work needs an engine with a Repository.")
	}
	e.mu.Lock()
	closing := e.closing
	e.mu.Unlock()
	if closing {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "This worker is shutting down.")
	}
	ex, rec, err := repo.ReadExecution(ctx, id, kvflow.ExecutionParts{Flow: true})
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return nil // deleted
	} else if err != nil {
		return err // the queue retries
	} else if ex.State.Terminated() {
		return nil
	}
	flow, ferr := e.parseFlow(ex, rec)
	return e.claimAndRun(ctx, ex, flow, ferr, true, 0, 0)
}

// claimAndRun claims ex and runs it to its end. stored is false for an
// execution this process has just created, whose inputs and trigger
// variables are in ex already; claimed, when not 0, is the claim it was
// created with, at sent or later (Engine.clock); ferr is why its flow did
// not load.
func (e *Engine) claimAndRun(ctx context.Context, ex *Execution, flow *Flow, ferr error, stored bool, claimed int64, sent time.Duration) (err error) {
	repo, id := e.opts.Repo, ex.ID
	limit, atCreation := 0, false
	if ferr == nil && flow.Concurrency != nil {
		limit = flow.Concurrency.Limit
		atCreation = flow.Concurrency.Behavior == CANCEL || flow.Concurrency.Behavior == FAIL
	}
	claim := kvflow.Claim{Claim: claimed}
	if claimed == 0 {
		sent = e.clock() // the claim's heartbeat is no older than this
		claim, err = repo.ClaimExecution(ctx, id, e.opts.Worker, time.Now().Add(-e.opts.HeartbeatTimeout), limit, atCreation)
		if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
			return nil // over, or a live worker holds it
		} else if err != nil {
			return err
		}
	}
	if claim.OverLimit {
		return e.overLimit(ctx, ex, flow)
	}
	e.startHeartbeat()
	if claim.Takeover { // with its log lines: Logs shows them while it runs here
		if ex, _, err = repo.ReadExecution(ctx, id, kvflow.ExecutionParts{Logs: true}); err != nil {
			return err
		}
	}
	var sealed *sealedState
	if claim.Takeover {
		sealed = &sealedState{}
	}
	if claim.Takeover || (stored && mayHaveObject(ex, flow, ferr)) {
		if err := e.readObject(ctx, ex, claim.Takeover, sealed); err != nil {
			return err
		}
	}
	if ferr != nil {
		flow = &Flow{ID: ex.FlowID, Namespace: ex.Namespace}
	}
	ex.Claim = claim.Claim
	r, err := e.register(flow, ex, nil, claim.Claim)
	if err != nil {
		return err
	}
	r.lease.Store(e.leaseFrom(sent))
	r.resume(claim.Takeover, sealed)
	defer func() {
		// A task that panics fails its execution, never the worker.
		if p := recover(); p != nil {
			e.log.Error("engine: execution panicked", "execution", id, "panic", p)
			end := now()
			msg := fmt.Sprintf("Execution '%s' failed on an internal error: %v", id, p)
			ex.State, ex.End, ex.Error = FAILED, &end, msg
			err = repo.SaveExecution(context.WithoutCancel(ctx), kvflow.ExecutionSave{Execution: ex, Claim: claim.Claim,
				Logs: []LogLine{{ExecutionID: id, Time: end, Level: "ERROR", Message: msg}}})
		}
	}()
	if ferr != nil {
		r.log("", "", "ERROR", kvflow.ErrorMessage(ferr))
		r.fail(kvflow.ErrorMessage(ferr))
		r.broken = true
	}
	return r.execute(ctx)
}

// mayHaveObject reports whether a stored execution not run yet may have an
// object: one is written at creation only for inputs (declared by its flow,
// at the revision it was created from) or trigger variables.
func mayHaveObject(ex *Execution, flow *Flow, ferr error) bool {
	return ferr != nil || ex.Trigger != nil || len(flow.Inputs) > 0 || flow.Revision != ex.FlowRevision
}

// overLimit applies the flow's concurrency behavior to an execution over
// its limit: QUEUE waits (ErrWaitTurn), CANCEL ends it KILLED, FAIL FAILED.
func (e *Engine) overLimit(ctx context.Context, ex *Execution, flow *Flow) error {
	c := flow.Concurrency
	if c.Behavior == QUEUE || c.Behavior == "" {
		return kvflow.ErrWaitTurn
	}
	state := KILLED
	if c.Behavior == FAIL {
		state = FAILED
	}
	end := now()
	msg := fmt.Sprintf("Flow '%s' already runs %d execution(s), its concurrency limit: this one is %s (behavior %s).", flow.ID, c.Limit, strings.ToLower(string(state)), c.Behavior)
	ex.State, ex.End = state, &end
	if state == FAILED {
		ex.Error = msg
	}
	err := e.opts.Repo.SaveExecution(ctx, kvflow.ExecutionSave{Execution: ex,
		Logs: []LogLine{{ExecutionID: ex.ID, Time: end, Level: "WARN", Message: msg}}})
	if err == nil {
		e.ended(ex)
	}
	return err
}

// parseFlow parses the flow record of an execution (nil: the flow is gone).
func (e *Engine) parseFlow(ex *Execution, rec *kvflow.FlowRecord) (*Flow, error) {
	if rec == nil {
		return nil, kvflow.Errorf(kvflow.ENOTFOUND, "Flow '%s' does not exist in namespace '%s'.", ex.FlowID, ex.Namespace)
	}
	f, err := e.ParseStored(ex.Namespace+"/"+ex.FlowID+".yaml", *rec)
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Flow '%s' of namespace '%s' no longer loads: %s", ex.FlowID, ex.Namespace, kvflow.ErrorMessage(err))
	}
	return f, nil
}

// startHeartbeat starts, once, the loop that tells the database this
// worker is alive and kills the executions whose kill was requested.
func (e *Engine) startHeartbeat() {
	e.mu.Lock()
	if e.heartbeat {
		e.mu.Unlock()
		return
	}
	e.heartbeat = true
	e.mu.Unlock()
	every := min(time.Second, e.opts.HeartbeatTimeout/3)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-e.base.Done():
				return
			case <-t.C:
			}
			e.mu.Lock()
			ids := make([]string, 0, len(e.running))
			for id, r := range e.running {
				if !r.handedOver.Load() {
					ids = append(ids, id)
				}
			}
			e.mu.Unlock()
			ctx, cancel := context.WithTimeout(e.base, e.opts.HeartbeatTimeout)
			sent := e.clock()
			held, err := e.opts.Repo.Heartbeat(ctx, e.opts.Worker, ids)
			cancel()
			if err != nil {
				e.log.Warn("engine: heartbeat failed", "worker", e.opts.Worker, "err", err)
				continue
			}
			found := make(map[string]bool, len(held))
			for _, h := range held {
				e.mu.Lock()
				r := e.running[h.ID]
				e.mu.Unlock()
				if r == nil || r.claim != h.Claim {
					continue
				}
				found[h.ID] = true
				r.lease.Store(e.leaseFrom(sent))
				if h.Kill {
					r.stop(errKilled)
				}
			}
			// One not found and not ended here was taken over (this process
			// was paused, or cut off from the database): its task stops now.
			for _, id := range ids {
				e.mu.Lock()
				r := e.running[id]
				e.mu.Unlock()
				if r != nil && !found[id] && !r.ended() {
					r.lost.Store(true)
					r.stop(errLost)
				}
			}
		}
	}()
}

// clock reads the monotonic clock leases are kept on.
func (e *Engine) clock() time.Duration { return time.Since(e.epoch) }

// leaseFrom is until when a worker may start tasks of an execution whose
// heartbeat the database took after sent: another worker takes it over a
// heartbeat timeout after that heartbeat; a quarter of the timeout is left
// for clocks that differ between machines.
func (e *Engine) leaseFrom(sent time.Duration) int64 {
	return int64(sent + e.opts.HeartbeatTimeout - e.opts.HeartbeatTimeout/4)
}

// handOver releases the durable runs still going at shutdown to other
// workers (the others are killed).
func (e *Engine) handOver() {
	e.mu.Lock()
	var runs []*run
	for _, r := range e.running {
		if r.claim != 0 {
			runs = append(runs, r)
		}
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(e.base), 10*time.Second)
			defer cancel()
			if err := r.handOver(ctx); err != nil {
				e.log.Warn("engine: cannot hand the execution over; another worker takes it over after the heartbeat timeout", "execution", r.exec.ID, "err", err)
			}
		}()
	}
	wg.Wait()
	if len(runs) > 0 {
		e.log.Info("engine: executions handed over to other workers", "executions", len(runs))
	}
}

// Kill stops an execution, state KILLED: at once when this process runs
// it or it has not started, otherwise within a heartbeat on the worker
// holding it. ECONFLICT when it is already over.
func (e *Engine) Kill(ctx context.Context, id string) error {
	e.mu.Lock()
	r := e.running[id]
	e.mu.Unlock()
	if r != nil {
		r.stop(errKilled)
		return nil
	}
	if e.opts.Repo == nil {
		if _, err := e.Execution(ctx, id); err != nil {
			return err
		}
		return kvflow.Errorf(kvflow.ECONFLICT, "Execution '%s' is already over.", id)
	}
	_, err := e.opts.Repo.RequestKill(ctx, id)
	return err
}

// forget removes a run from the running set once it has ended and been saved.
func (e *Engine) forget(r *run) {
	e.mu.Lock()
	delete(e.running, r.exec.ID)
	if e.opts.Repo == nil {
		e.finished[r.exec.ID] = r
		e.order = append(e.order, r.exec.ID)
		if len(e.order) > maxFinished {
			delete(e.finished, e.order[0])
			e.order = e.order[1:]
		}
	}
	if w := e.watches[r.exec.ID]; w != nil && !r.lost.Load() && !r.handedOver.Load() { // else the database tells the end
		w.r = r
		close(w.done)
		delete(e.watches, r.exec.ID)
	}
	e.mu.Unlock()
	e.wg.Done()
}

// started ends the wait for a run here that registered or gave up.
func (e *Engine) started(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ch := e.starting[id]; ch != nil {
		close(ch)
		delete(e.starting, id)
	}
}

// ended calls the OnEnd hooks.
func (e *Engine) ended(ex *Execution) {
	e.mu.Lock()
	hooks := e.onEnd
	e.mu.Unlock()
	for _, fn := range hooks {
		fn(ex)
	}
}

// Wait waits for an execution to end and returns it with its outputs and
// logs. An execution of another process is followed through the Repository.
func (e *Engine) Wait(ctx context.Context, id string) (*Execution, error) {
	e.mu.Lock()
	if ch := e.starting[id]; ch != nil {
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		e.mu.Lock()
	}
	r := e.running[id]
	if r == nil {
		r = e.finished[id]
	}
	var w *watch
	if r == nil && e.opts.Repo != nil {
		if w = e.watches[id]; w == nil {
			now := time.Now()
			w = &watch{done: make(chan struct{}), next: now, delay: 5 * time.Millisecond, since: now}
			if e.listening { // its end will be heard: the first look is a fallback too
				w.delay, w.next = listenedPoll, now.Add(listenedPoll)
			}
			e.watches[id] = w
		}
		w.waiters++
		if !e.polling {
			e.polling = true
			go e.pollWatches()
		}
		if l, ok := e.opts.Repo.(endListener); ok && !e.listening {
			e.listening = l.ListenExecutionEnds(e.base, e.heardEnd)
		}
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
	if w != nil {
		defer func() {
			e.mu.Lock()
			if w.waiters--; w.waiters == 0 && e.watches[id] == w {
				delete(e.watches, id)
			}
			e.mu.Unlock()
		}()
	}
	if w == nil {
		return e.Execution(ctx, id) // no Repository: ENOTFOUND
	}
	// Another worker may run it: the poller tells when it is over.
	select {
	case <-w.done:
		if w.r != nil {
			return w.r.result(true), nil
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r := e.local(id); r != nil { // it ran here meanwhile
		ex := r.result(false)
		var err error
		ex.Logs, err = e.Logs(ctx, id)
		return ex, err
	}
	return e.read(ctx, id, true)
}

// endListener is a Repository that hears executions end in any process
// (PostgreSQL's NOTIFY); fn gets "" when some ends may have gone unheard.
type endListener interface {
	ListenExecutionEnds(ctx context.Context, fn func(id string)) bool
}

// listenedPoll is how often a watch polls when ends are heard: only ends
// missed while the listener was not yet connected wait for it.
const listenedPoll = 50 * time.Millisecond

// heardEnd ends the watch of execution id: the notification comes from
// the commit of the save that ended it, so its state needs no read. When id
// is "" the poller reads at once the states of every watched execution.
func (e *Engine) heardEnd(id string) {
	e.mu.Lock()
	if w := e.watches[id]; w != nil {
		close(w.done)
		delete(e.watches, id)
		e.mu.Unlock()
		return
	} else if id == "" {
		for _, w := range e.watches {
			w.next = time.Time{}
		}
	}
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// pollWatches reads, in one query, the states of the watched executions
// due for a look — at once after the listener reconnects (heardEnd with
// ""); otherwise every 5ms (50ms when ends are heard) for the first second
// of a watch, then less and less often, up to 200ms — and ends the watches
// of those over (or gone). It stops when nothing is watched.
func (e *Engine) pollWatches() {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-e.wake:
		}
		now := time.Now()
		var due []string
		e.mu.Lock()
		if len(e.watches) == 0 {
			e.polling = false
			e.mu.Unlock()
			return
		}
		for id, w := range e.watches {
			if !w.next.After(now) {
				due = append(due, id)
				if now.Sub(w.since) > time.Second {
					w.delay = min(2*w.delay, 200*time.Millisecond)
				}
				w.next = now.Add(w.delay)
			}
		}
		e.mu.Unlock()
		if len(due) == 0 {
			continue
		}
		states, err := e.opts.Repo.ExecutionStates(e.base, due)
		if err != nil && e.base.Err() != nil {
			// Shut down: the waits end (and read the execution themselves).
			e.mu.Lock()
			for id, w := range e.watches {
				close(w.done)
				delete(e.watches, id)
			}
			e.polling = false
			e.mu.Unlock()
			return
		} else if err != nil {
			e.log.Warn("engine: cannot read the states of awaited executions", "err", err)
			continue
		}
		e.mu.Lock()
		for _, id := range due {
			st, ok := states[id]
			if w := e.watches[id]; w != nil && (!ok || st.Terminated()) {
				close(w.done)
				delete(e.watches, id)
			}
		}
		e.mu.Unlock()
	}
}

// Execution returns an execution as it is now: from memory while this
// engine runs it, otherwise its record in the Repository joined with its
// inputs and outputs from the Bucket. Logs are not included.
func (e *Engine) Execution(ctx context.Context, id string) (*Execution, error) {
	if r := e.local(id); r != nil {
		return r.result(false), nil
	}
	return e.read(ctx, id, false)
}

// local returns the run of an execution running or recently finished here.
func (e *Engine) local(id string) *run {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.running[id]; r != nil {
		return r
	}
	return e.finished[id]
}

// read returns an execution as the Repository and the Bucket hold it, with
// its log lines when logs is set (in the same statement).
func (e *Engine) read(ctx context.Context, id string, logs bool) (*Execution, error) {
	if e.opts.Repo == nil {
		return nil, kvflow.Errorf(kvflow.ENOTFOUND, "Execution '%s' does not exist.", id)
	}
	ex, _, err := e.opts.Repo.ReadExecution(ctx, id, kvflow.ExecutionParts{Logs: logs})
	if err != nil {
		if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
			return nil, kvflow.Errorf(kvflow.ENOTFOUND, "Execution '%s' does not exist.", id)
		}
		return nil, err
	}
	if err := e.readObject(ctx, ex, !ex.State.Terminated(), nil); err != nil {
		return nil, err
	}
	return ex, nil
}

// Logs returns the log lines of an execution.
func (e *Engine) Logs(ctx context.Context, id string) ([]LogLine, error) {
	if r := e.local(id); r != nil && (e.opts.Repo == nil || !r.isDone()) {
		return r.logLines(), nil
	}
	if e.opts.Repo == nil {
		return nil, kvflow.Errorf(kvflow.ENOTFOUND, "Execution '%s' does not exist.", id)
	}
	return e.opts.Repo.Logs(ctx, id)
}

// TriggerFires counts the executions triggers created through this engine.
func (e *Engine) TriggerFires() int64 { return e.triggerFires.Load() }

// Running returns how many executions this process runs now.
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
	defer e.cancel(errServerStopped) // the heartbeat loop too
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	e.handOver()
	e.cancel(errServerStopped)
	select {
	case <-idle:
		return nil
	case <-time.After(30 * time.Second):
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Executions did not stop within 30s of being killed.")
	}
}
