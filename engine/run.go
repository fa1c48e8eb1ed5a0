package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/xid"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/taskrun"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/template"
)

// run is one execution in progress.
type run struct {
	e     *Engine
	flow  *Flow
	onLog func(LogLine)
	done  chan struct{}

	mu      sync.Mutex // guards exec, outputs, outSnap, dirty, changed, logs, pending, saves
	exec    *Execution
	outputs map[string]any // task id → outputs (per value, inside ForEach)
	outSnap map[string]any // immutable copy of outputs for templates; nil when stale
	dirty   bool           // the execution's own fields changed since the last save
	changed map[*TaskRun]struct{}
	logs    []LogLine
	pending []LogLine // not yet saved
	saves   int

	claim  int64                   // the worker's hold (Work); 0: not fenced
	prior  map[string]*TaskRun     // task runs of a previous worker, by runKey
	cancel context.CancelCauseFunc // stops the run (kill, lost claim)
	broken bool                    // the flow cannot run: end FAILED at once
	lost   atomic.Bool             // another worker took the execution over
	lease  atomic.Int64            // a fenced run starts tasks until then (Engine.clock)
	// handedOver: the worker stopped and released the execution to
	// another; nothing more of this run is saved.
	handedOver atomic.Bool
	saved      bool // its final save is done (guarded by saveMu)

	logMu  sync.Mutex // orders log lines and onLog calls
	saveMu sync.Mutex // one save at a time

	flowCtx map[string]any
	execCtx map[string]any
	vars    map[string]any

	// secrets are the sensitive values this run read or wrote and what its
	// templates derived from them: logs, errors, ForEach values and the
	// outputs it stores or returns are masked with them (the values and
	// outputs templates see are not).
	secrets *storage.Secrets
	// hidden holds, by task run id, what the masked record of a task run
	// leaves out. A durable run saves it sealed (see flush), so a worker
	// that takes the execution over goes on with the real values.
	hidden map[string]hiddenRun
}

// hiddenRun is a task run's real ForEach value and outputs, when its
// record shows them masked.
type hiddenRun struct {
	Value   string         `json:"value,omitempty"`
	Outputs map[string]any `json:"outputs,omitempty"`
}

func newRun(e *Engine, flow *Flow, ex *Execution, onLog func(LogLine)) *run {
	r := &run{e: e, flow: flow, exec: ex, onLog: onLog, done: make(chan struct{}), outputs: map[string]any{}, changed: map[*TaskRun]struct{}{}, secrets: &storage.Secrets{}, hidden: map[string]hiddenRun{}}
	r.flowCtx = map[string]any{"id": flow.ID, "namespace": flow.Namespace, "revision": flow.Revision}
	r.execCtx = map[string]any{"id": ex.ID, "startDate": ex.Start}
	r.vars = map[string]any{}
	for i, tr := range ex.TaskRuns {
		tr.Seq = i
	}
	return r
}

// runKey identifies a task run within an execution: its task, parent task
// run and ForEach value.
func runKey(taskID, parentID, value string) string {
	return taskID + "\x00" + parentID + "\x00" + value
}

// resume prepares a run of an execution another worker started: its task
// runs are kept, and runTask reuses them instead of running finished ones
// again. sealed is what the previous worker saved sealed: the texts to
// mask and the real values of masked task runs.
func (r *run) resume(takeover bool, sealed *sealedState) {
	if sealed != nil {
		for _, t := range sealed.Secrets {
			r.secrets.Add(t)
		}
		maps.Copy(r.hidden, sealed.Runs)
	}
	r.prior = map[string]*TaskRun{}
	prev := ""
	for _, tr := range r.exec.TaskRuns {
		value := tr.Value
		if h, ok := r.hidden[tr.ID]; ok && h.Value != "" {
			value = h.Value
		}
		r.prior[runKey(tr.TaskID, tr.ParentID, value)] = tr
		if n := len(tr.Attempts); n > 0 && tr.Attempts[n-1].State == RUNNING && tr.Attempts[n-1].Worker != "" {
			prev = tr.Attempts[n-1].Worker
		}
	}
	if takeover {
		r.logs, r.exec.Logs = r.exec.Logs, nil // stored already
		msg := "Execution taken over by worker " + r.e.opts.Worker
		if prev != "" {
			msg += ": worker " + prev + " stopped heartbeating"
		}
		r.log("", "", "WARN", msg+".")
		if sealed != nil && sealed.Problem != "" {
			r.log("", "", "WARN", sealed.Problem)
		}
	}
}

// hold makes sure, before an attempt starts, that this worker still holds
// the execution: at once while the lease of its last heartbeat runs; past
// it (the process was paused, or the database out of reach), by a
// heartbeat of its own, tried again each second until the run stops. A
// worker that lost the execution stops the run, so a task another worker
// has run since never runs here again.
func (r *run) hold(ctx context.Context) error {
	if r.claim == 0 || int64(r.e.clock()) < r.lease.Load() {
		return nil
	}
	for {
		sent := r.e.clock()
		held, err := r.e.opts.Repo.Heartbeat(ctx, r.e.opts.Worker, []string{r.exec.ID})
		switch {
		case err == nil && (len(held) == 0 || held[0].Claim != r.claim):
			r.lost.Store(true)
			r.stop(errLost)
			return errLost
		case err == nil:
			r.lease.Store(r.e.leaseFrom(sent))
			return nil
		}
		r.e.log.Warn("engine: cannot renew the hold on an execution before its next task", "execution", r.exec.ID, "err", err)
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(time.Second):
		}
	}
}

// stop cancels the run with a cause (a kill, a lost claim).
func (r *run) stop(cause error) {
	r.mu.Lock()
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
}

// touch marks a task run as changed since the last save.
func (r *run) touch(tr *TaskRun) { r.changed[tr] = struct{}{} }

// scope is where in the flow a task runs: its parent task run and the
// values of the ForEach loops around it, outermost first.
type scope struct {
	parentID string
	values   []string
	execCtx  map[string]any // replaces execution in templates (errors branch)
}

func (s scope) child(parentID string) scope {
	s.parentID = parentID
	return s
}

func (s scope) iteration(parentID, value string) scope {
	s.parentID = parentID
	s.values = append(append([]string(nil), s.values...), value)
	return s
}

// execute runs the flow to its end and saves the final records.
func (r *run) execute(parent context.Context) error {
	defer r.e.forget(r)
	defer close(r.done)
	// Every template of the run, tasks' or not, obeys the execution's scope.
	parent = storage.WithScope(parent, r.exec.Scope)
	parent = storage.WithSecrets(parent, r.secrets)
	if at := r.exec.KVSnapshot; at != nil { // kvSnapshot: reads see the store as at the start
		parent = storage.WithSnapshot(parent, storage.Snapshot{At: *at, Execution: r.exec.ID})
	}
	ctx, cancel := context.WithCancelCause(parent)
	stopBase := context.AfterFunc(r.e.base, func() { cancel(context.Cause(r.e.base)) })
	defer func() {
		stopBase()
		cancel(nil)
	}()

	r.mu.Lock()
	r.cancel = cancel
	r.exec.State = RUNNING
	r.dirty = true
	r.mu.Unlock()
	stopFlusher := r.flusher()

	state := FAILED
	if !r.broken {
		state = r.renderVariables(ctx)
	}
	if state == SUCCESS {
		state = r.runTasks(ctx, r.flow.Tasks, scope{})
	}
	if state == FAILED && len(r.flow.Errors) > 0 {
		r.mu.Lock()
		ec := maps.Clone(r.execCtx)
		ec["state"] = string(FAILED)
		ec["error"] = r.exec.Error
		r.mu.Unlock()
		r.runTasks(ctx, r.flow.Errors, scope{execCtx: ec})
	}
	if state == SUCCESS || state == WARNING {
		if err := r.renderOutputs(ctx); err != nil {
			r.fail(err.Error())
			state = FAILED
		}
	}
	if r.handedOver.Load() {
		stopFlusher()
		return nil
	}
	if r.lost.Load() || errors.Is(context.Cause(ctx), errLost) {
		stopFlusher()
		r.lost.Store(true)
		r.e.log.Warn("engine: execution taken over by another worker; this run stops", "execution", r.exec.ID, "worker", r.e.opts.Worker)
		return nil
	}
	if state == KILLED {
		cause := context.Cause(ctx)
		if cause == nil {
			cause = context.Canceled
		}
		r.log("", "", "WARN", "Execution killed: "+cause.Error())
	}
	end := time.Now().UTC().Truncate(time.Microsecond)
	r.mu.Lock()
	r.exec.State, r.exec.End, r.dirty = state, &end, true
	if !state.Failed() {
		r.exec.Error = "" // a failure inside an allowFailure task
	}
	r.mu.Unlock()

	stopFlusher()
	sctx, cancelSave := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelSave()
	var errs []error
	if err := r.e.writeObject(sctx, r.result(false)); err != nil {
		errs = append(errs, err)
	}
	if err := r.flush(sctx, true); err != nil {
		errs = append(errs, err)
	}
	if !r.lost.Load() && !r.handedOver.Load() { // else the worker that ends it calls them
		// Before Wait returns: whoever waits sees the hooks' effects.
		r.e.ended(r.result(false))
	}
	return errors.Join(errs...)
}

// renderVariables renders the flow's variables once, at the start.
func (r *run) renderVariables(ctx context.Context) State {
	if len(r.flow.Variables) == 0 {
		return SUCCESS
	}
	data := template.Context{"flow": r.flowCtx, "execution": r.execCtx, "inputs": r.exec.Inputs, "labels": labelsOf(r.flow), "trigger": r.triggerVars()}
	v, err := r.e.tpl.RenderValue(ctx, map[string]any(r.flow.Variables), data)
	if err != nil {
		msg := "Variables cannot be rendered: " + kvflow.ErrorMessage(err)
		var loc *template.Location
		if errors.As(err, &loc) && loc.Path != "" {
			msg = fmt.Sprintf("Variable '%s'", loc.Path)
			if loc.Line > 0 {
				msg += fmt.Sprintf(", line %d, column %d", loc.Line, loc.Col)
			}
			msg += ": " + loc.Reason
		}
		r.log("", "", "ERROR", msg)
		r.fail(msg)
		return FAILED
	}
	r.vars, _ = v.(map[string]any)
	return SUCCESS
}

// renderOutputs renders the flow's outputs once the tasks are done.
func (r *run) renderOutputs(ctx context.Context) error {
	if len(r.flow.Outputs) == 0 {
		return nil
	}
	data := r.baseData(scope{})
	out := make(map[string]any, len(r.flow.Outputs))
	for _, o := range r.flow.Outputs {
		v, err := r.e.tpl.RenderValue(ctx, o.Value, data)
		if err != nil {
			msg := fmt.Sprintf("Output '%s': %s", o.ID, kvflow.ErrorMessage(err))
			r.log("", "", "ERROR", msg)
			return errors.New(msg)
		}
		if o.Type != "" {
			if v, err = convertInput(o.Type, v); err != nil {
				msg := fmt.Sprintf("Output '%s': %s", o.ID, err)
				r.log("", "", "ERROR", msg)
				return errors.New(msg)
			}
		}
		out[o.ID] = v
	}
	r.mu.Lock()
	r.exec.Outputs, _ = r.secrets.MaskAny(out).(map[string]any)
	r.mu.Unlock()
	return nil
}

// fail records the first reason the execution failed.
func (r *run) fail(msg string) {
	msg = r.secrets.MaskText(msg)
	r.mu.Lock()
	if r.exec.Error == "" {
		r.exec.Error = msg
	}
	r.mu.Unlock()
}

// runTasks runs tasks one after the other and stops at the first failure.
func (r *run) runTasks(ctx context.Context, tasks []*Task, sc scope) State {
	st := SUCCESS
	for _, t := range tasks {
		if t.Disabled {
			continue
		}
		if ctx.Err() != nil {
			return KILLED
		}
		s := r.runTask(ctx, t, sc)
		st = worst(st, s)
		if s.Failed() {
			return st
		}
	}
	return st
}

// parallel calls fn(0..n-1), at most limit at a time (0 or more than
// MaxParallel: MaxParallel). After a failure no further call starts.
func (r *run) parallel(ctx context.Context, n, limit int, fn func(i int) State) State {
	if limit <= 0 || limit > r.e.opts.MaxParallel {
		limit = r.e.opts.MaxParallel
	}
	st := SUCCESS
	if limit == 1 || n == 1 {
		for i := 0; i < n; i++ {
			if ctx.Err() != nil {
				return worst(st, KILLED)
			}
			s := fn(i)
			st = worst(st, s)
			if s.Failed() {
				return st
			}
		}
		return st
	}
	var (
		mu   sync.Mutex
		stop bool
		wg   sync.WaitGroup
		sem  = make(chan struct{}, limit)
	)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		mu.Lock()
		halt := stop
		mu.Unlock()
		if halt || ctx.Err() != nil {
			<-sem
			if !halt {
				mu.Lock()
				st = worst(st, KILLED)
				mu.Unlock()
			}
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			s := fn(i)
			mu.Lock()
			st = worst(st, s)
			if s.Failed() {
				stop = true
			}
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	return st
}

// runTask runs one task (and, for a flowable one, those inside) as one task run.
func (r *run) runTask(ctx context.Context, t *Task, sc scope) State {
	tr, resumed := r.newTaskRun(t, sc)
	if resumed && tr.State.Terminated() {
		// Finished on a previous worker: never run again.
		r.restoreOutputs(t, tr, sc)
		if tr.State == FAILED && tr.Error != "" {
			r.fail(tr.Error)
		}
		return tr.State
	}
	var st State
	var err error
	if isFlowable(t) {
		fctx := ctx
		if t.Timeout > 0 {
			var cancel context.CancelFunc
			fctx, cancel = context.WithTimeout(ctx, t.Timeout)
			defer cancel()
		}
		st, err = r.runFlowable(fctx, t, tr, sc)
		if ctx.Err() == nil && fctx.Err() != nil {
			st, err = FAILED, timeoutError(t)
		}
	} else {
		st, err = r.runLeaf(ctx, t, tr, sc)
	}
	msg := ""
	if err != nil {
		msg = taskMessage(t, err)
		if st == KILLED {
			msg = ""
		}
	}
	if st == FAILED && msg != "" {
		r.log(t.ID, tr.ID, "ERROR", msg)
	}
	if st == FAILED && t.AllowFailure {
		st = WARNING
		r.log(t.ID, tr.ID, "WARN", fmt.Sprintf("Task '%s' failed; the flow goes on as allowFailure is set.", t.ID))
	} else if st == FAILED && msg != "" {
		r.fail(msg)
	}
	r.endTaskRun(tr, st, msg)
	return st
}

func isFlowable(t *Task) bool {
	_, ok := flowables[t.Type]
	return ok
}

// runLeaf runs a task's attempts: one, or more under a retry policy.
func (r *run) runLeaf(ctx context.Context, t *Task, tr *TaskRun, sc scope) (State, error) {
	max := 1
	var interval, maxDur time.Duration
	if t.Retry != nil {
		max, interval, maxDur = t.Retry.MaxAttempts, t.Retry.Interval, t.Retry.MaxDuration
	}
	start := time.Now()
	first := 1
	r.mu.Lock()
	if k := len(tr.Attempts); k > 0 {
		// Resumed: the last attempt was interrupted with its worker.
		a := &tr.Attempts[k-1]
		if a.State == RUNNING {
			end := now()
			a.State, a.End = KILLED, &end
			r.touch(tr)
		}
		first, max = k+1, max+k
	}
	r.mu.Unlock()
	if first > 1 {
		r.log(t.ID, tr.ID, "WARN", fmt.Sprintf("Task '%s' was interrupted with its worker: attempt %d runs on worker %s.", t.ID, first, r.e.opts.Worker))
	}
	for n := first; ; n++ {
		if err := r.hold(ctx); err != nil {
			return KILLED, err
		}
		r.startAttempt(tr)
		out, err := r.attempt(ctx, t, tr, sc, n)
		if err == nil {
			r.endAttempt(tr, SUCCESS)
			r.setOutputs(t, tr, sc, out)
			if n > 1 && t.Retry != nil && t.Retry.WarningOnRetry {
				return WARNING, nil
			}
			return SUCCESS, nil
		}
		if ctx.Err() != nil {
			r.endAttempt(tr, KILLED)
			return KILLED, err
		}
		r.endAttempt(tr, FAILED)
		if n >= max || (maxDur > 0 && time.Since(start)+interval > maxDur) {
			return FAILED, err
		}
		r.log(t.ID, tr.ID, "WARN", fmt.Sprintf("Attempt %d failed, retrying in %s: %s", n, storage.FormatDuration(interval), taskMessage(t, err)))
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return KILLED, ctx.Err()
		}
	}
}

// DefaultTaskTimeout bounds a task that sets no timeout of its own.
var DefaultTaskTimeout = time.Hour

// taskTimeout is t's timeout, or DefaultTaskTimeout.
func taskTimeout(t *Task) time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return DefaultTaskTimeout
}

// attempt runs a task once, within its timeout (DefaultTaskTimeout when it
// sets none). A task that ignores its context is left behind when the
// timeout passes.
func (r *run) attempt(ctx context.Context, t *Task, tr *TaskRun, sc scope, n int) (plugin.Outputs, error) {
	// What the task stores is recorded in the KV history as written by it.
	ctx = storage.WithWriter(ctx, storage.ExecutionWriter(r.exec.ID, r.exec.Namespace, r.exec.FlowID, t.ID))
	actx, cancel := context.WithTimeout(ctx, taskTimeout(t))
	defer cancel()
	rc := r.runContext(t, tr, sc, n)
	type result struct {
		out plugin.Outputs
		err error
	}
	ch := make(chan result, 1)
	go func() {
		out, err := taskrun.Call(actx, t.Impl, rc)
		ch <- result{out, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
			return nil, timeoutError(t)
		}
		return res.out, res.err
	case <-actx.Done():
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, timeoutError(t)
	}
}

func timeoutError(t *Task) error {
	return kvflow.Errorf(kvflow.ETIMEOUT, "Task '%s' timed out after %s.", t.ID, storage.FormatDuration(taskTimeout(t)))
}

// taskMessage is a failure's message, naming the task.
func taskMessage(t *Task, err error) string {
	var ke *kvflow.Error
	msg := err.Error()
	if errors.As(err, &ke) {
		msg = ke.Error()
	}
	if !strings.HasPrefix(msg, "Task '"+t.ID+"'") {
		msg = fmt.Sprintf("Task '%s': %s", t.ID, msg)
	}
	return msg
}

// runFlowable runs a Sequential, Parallel, If or ForEach.
func (r *run) runFlowable(ctx context.Context, t *Task, tr *TaskRun, sc scope) (State, error) {
	rc := r.runContext(t, tr, sc, 1)
	inner := sc.child(tr.ID)
	switch x := t.Impl.(type) {
	case *Sequential:
		return r.runTasks(ctx, x.Tasks, inner), nil
	case *Parallel:
		limit, err := x.Concurrency.Get(ctx, rc, 0)
		if err != nil {
			return FAILED, err
		}
		return r.parallel(ctx, len(x.Tasks), limit, func(i int) State {
			if x.Tasks[i].Disabled {
				return SUCCESS
			}
			return r.runTask(ctx, x.Tasks[i], inner)
		}), nil
	case *If:
		cond, err := x.Condition.Get(ctx, rc, nil)
		if err != nil {
			return FAILED, err
		}
		ok := truthy(cond)
		r.setOutputs(t, tr, sc, plugin.Outputs{"condition": ok})
		if ok {
			return r.runTasks(ctx, x.Then, inner), nil
		}
		return r.runTasks(ctx, x.Else, inner), nil
	case *ForEach:
		raw, err := x.Values.Get(ctx, rc, nil)
		if err != nil {
			return FAILED, err
		}
		list, err := forEachValues(raw)
		if err != nil {
			return FAILED, kvflow.Errorf(kvflow.EINVALID, "Task '%s', property 'values': %s.", t.ID, strings.TrimSuffix(kvflow.ErrorMessage(err), "."))
		}
		limit, err := x.ConcurrencyLimit.Get(ctx, rc, 1)
		if err != nil {
			return FAILED, err
		}
		if limit < 0 {
			return FAILED, kvflow.Errorf(kvflow.EINVALID, "Task '%s', property 'concurrencyLimit': must be 0 (no limit) or more, not %d.", t.ID, limit)
		}
		values := make([]string, len(list))
		for i, v := range list {
			values[i] = template.Text(v)
		}
		return r.parallel(ctx, len(values), limit, func(i int) State {
			return r.runTasks(ctx, x.Tasks, sc.iteration(tr.ID, values[i]))
		}), nil
	}
	return FAILED, kvflow.Errorf(kvflow.EINTERNAL, "Task '%s' of type %s is not a flowable task.", t.ID, t.Type)
}

// runContext is what a task sees when it runs.
func (r *run) runContext(t *Task, tr *TaskRun, sc scope, attempt int) *plugin.RunContext {
	data := r.baseData(sc)
	taskrun := map[string]any{"id": tr.ID, "taskId": t.ID, "startDate": tr.Start, "attemptsCount": attempt}
	if sc.parentID != "" {
		taskrun["parentId"] = sc.parentID
	}
	if n := len(sc.values); n > 0 {
		taskrun["value"] = sc.values[n-1]
		if n > 1 {
			parents := make([]any, 0, n-1)
			for i := n - 2; i >= 0; i-- {
				parents = append(parents, map[string]any{"taskrun": map[string]any{"value": sc.values[i]}})
			}
			data["parent"] = parents[0]
			data["parents"] = parents
		}
	}
	data["taskrun"] = taskrun
	data["task"] = map[string]any{"id": t.ID, "type": t.Type}
	return &plugin.RunContext{
		Namespace: r.flow.Namespace, FlowID: r.flow.ID, ExecutionID: r.exec.ID, TaskID: t.ID, TaskRunID: tr.ID,
		Store: r.e.opts.Store, Bucket: r.e.bucket, Templates: r.e.tpl, Data: data,
		Access:     storage.Access{Policy: r.e.opts.Policy, Scope: r.exec.Scope},
		HTTPClient: r.e.opts.HTTPClient,
		Logger:     slog.New(&taskHandler{r: r, taskID: t.ID, taskRunID: tr.ID}),
	}
}

// baseData is the template context shared by every task of the run.
func (r *run) baseData(sc scope) template.Context {
	ec := r.execCtx
	if sc.execCtx != nil {
		ec = sc.execCtx
	}
	return template.Context{
		"flow":      r.flowCtx,
		"execution": ec,
		"inputs":    r.exec.Inputs,
		"vars":      r.vars,
		"labels":    labelsOf(r.flow),
		"outputs":   r.outputsSnapshot(),
		"trigger":   r.triggerVars(),
	}
}

// triggerVars are the trigger's variables (trigger.date, trigger.body…).
func (r *run) triggerVars() map[string]any {
	if t := r.exec.Trigger; t != nil && t.Variables != nil {
		return t.Variables
	}
	return map[string]any{}
}

func labelsOf(f *Flow) map[string]any {
	out := make(map[string]any, len(f.Labels))
	for k, v := range f.Labels {
		out[k] = v
	}
	return out
}

// outputsSnapshot returns the outputs so far; the map is never changed
// afterwards, so templates can read it while other tasks run.
func (r *run) outputsSnapshot() map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.outSnap == nil {
		r.outSnap = maps.Clone(r.outputs)
	}
	return r.outSnap
}

// setOutputs records a task run's outputs: outputs.<taskId>, or
// outputs.<taskId>[value]... inside ForEach loops. Maps already handed to
// templates are copied, never changed.
func (r *run) setOutputs(t *Task, tr *TaskRun, sc scope, out plugin.Outputs) {
	m := map[string]any(out)
	if m == nil {
		m = map[string]any{}
	}
	stored, _ := r.secrets.MaskAny(m).(map[string]any)
	r.mu.Lock()
	defer r.mu.Unlock()
	tr.Outputs = stored
	if !reflect.DeepEqual(stored, m) {
		h := r.hidden[tr.ID]
		h.Outputs = m
		r.hidden[tr.ID] = h
	}
	r.touch(tr)
	if len(m) == 0 {
		return // a task without outputs has no outputs.<taskId>
	}
	r.outputs[t.ID] = withValue(r.outputs[t.ID], sc.values, m)
	r.outSnap = nil
}

func withValue(cur any, path []string, leaf map[string]any) any {
	if len(path) == 0 {
		return leaf
	}
	old, _ := cur.(map[string]any)
	m := make(map[string]any, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[path[0]] = withValue(old[path[0]], path[1:], leaf)
	return m
}

// restoreOutputs puts back the outputs of a task run a previous worker
// finished: the real ones when its record masks them.
func (r *run) restoreOutputs(t *Task, tr *TaskRun, sc scope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := tr.Outputs
	if h := r.hidden[tr.ID]; h.Outputs != nil {
		out = h.Outputs
	}
	if len(out) == 0 {
		return
	}
	r.outputs[t.ID] = withValue(r.outputs[t.ID], sc.values, out)
	r.outSnap = nil
}

// newTaskRun starts a task run, or returns the one a previous worker
// started for the same task, parent and value (resumed).
func (r *run) newTaskRun(t *Task, sc scope) (tr *TaskRun, resumed bool) {
	value := ""
	if n := len(sc.values); n > 0 {
		value = sc.values[n-1]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev := r.prior[runKey(t.ID, sc.parentID, value)]; prev != nil {
		return prev, true
	}
	// A ForEach value from a sensitive one is recorded masked.
	tr = &TaskRun{ID: xid.New().String(), TaskID: t.ID, ParentID: sc.parentID, Value: r.secrets.MaskText(value), State: RUNNING, Start: now(), Seq: len(r.exec.TaskRuns)}
	if tr.Value != value {
		r.hidden[tr.ID] = hiddenRun{Value: value}
	}
	r.exec.TaskRuns = append(r.exec.TaskRuns, tr)
	r.touch(tr)
	return tr, false
}

func (r *run) endTaskRun(tr *TaskRun, st State, msg string) {
	msg = r.secrets.MaskText(msg)
	end := now()
	r.mu.Lock()
	tr.State, tr.End, tr.Error = st, &end, msg
	r.touch(tr)
	r.mu.Unlock()
}

func (r *run) startAttempt(tr *TaskRun) {
	r.mu.Lock()
	tr.Attempts = append(tr.Attempts, Attempt{State: RUNNING, Start: now(), Worker: r.worker()})
	r.touch(tr)
	r.mu.Unlock()
}

func (r *run) endAttempt(tr *TaskRun, st State) {
	end := now()
	r.mu.Lock()
	a := &tr.Attempts[len(tr.Attempts)-1]
	a.State, a.End = st, &end
	r.touch(tr)
	r.mu.Unlock()
}

// worker names this process in attempts of durable runs.
func (r *run) worker() string {
	if r.claim != 0 {
		return r.e.opts.Worker
	}
	return ""
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// result returns a copy of the execution, with its logs when asked.
func (r *run) result(withLogs bool) *Execution {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := clone(r.exec)
	if withLogs {
		c.Logs = append([]LogLine(nil), r.logs...)
	}
	return c
}

// ended reports whether the run has set its end state (its final save
// may be under way).
func (r *run) ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exec.State.Terminated()
}

func (r *run) isDone() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *run) logLines() []LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]LogLine(nil), r.logs...)
}

// log adds a line to the execution's logs.
func (r *run) log(taskID, taskRunID, level, msg string) {
	msg = r.secrets.MaskText(msg)
	line := LogLine{ExecutionID: r.exec.ID, TaskID: taskID, TaskRunID: taskRunID, Time: time.Now().UTC(), Level: level, Message: msg}
	r.logMu.Lock()
	defer r.logMu.Unlock()
	r.mu.Lock()
	r.logs = append(r.logs, line)
	r.pending = append(r.pending, line)
	r.mu.Unlock()
	if r.onLog != nil {
		r.onLog(line)
	}
}
