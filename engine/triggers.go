package engine

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// Triggers runs the schedule and flow triggers of a worker process. Every
// worker process runs them; a tick or an ended execution fires once
// however many do, as the execution it creates has a unique trigger key
// (schedule:<ns>/<flow>/<trigger>@<tick>, flow:<ns>/<flow>/<trigger>/<execution>)
// and the database refuses the second.
type Triggers struct {
	e     *Engine
	repo  Repository
	log   *slog.Logger
	stop  context.CancelFunc
	done  chan struct{}
	loops sync.WaitGroup // kvLoop and endLoop

	mu       sync.Mutex
	flows    map[string]*Flow     // ns/id → parsed flow with triggers
	loaded   time.Time            // when flows was read
	next     map[string]time.Time // schedule key → its next tick
	firedMu  sync.Mutex
	fired    map[string]time.Time // ends this process fired → when, until endLoop marks them handled
	inflight sync.WaitGroup
}

// reloadEvery is how often the loops read the flows again.
const reloadEvery = time.Second

// StartTriggers starts the trigger loops on eng.
func StartTriggers(eng *Engine, repo Repository, logger *slog.Logger) *Triggers {
	ctx, cancel := context.WithCancel(context.Background())
	t := &Triggers{e: eng, repo: repo, log: logger, stop: cancel, done: make(chan struct{}), flows: map[string]*Flow{}, next: map[string]time.Time{}, fired: map[string]time.Time{}}
	eng.OnEnd(func(ex *Execution) {
		t.inflight.Add(1)
		go func() {
			defer t.inflight.Done()
			if t.flowEnded(ctx, ex) == nil { // else logged, and endLoop tries again
				t.firedMu.Lock()
				t.fired[ex.ID] = time.Now()
				t.firedMu.Unlock()
			}
		}()
	})
	go t.scheduleLoop(ctx)
	t.loops.Add(2)
	go t.kvLoop(ctx)
	go t.endLoop(ctx)
	return t
}

// Stop ends the loops and waits for them.
func (t *Triggers) Stop() {
	t.stop()
	<-t.done
	t.loops.Wait()
	t.inflight.Wait()
}

// reload reads the flows that have schedule or flow triggers, when older
// than reloadEvery (or always with force).
func (t *Triggers) reload(ctx context.Context, force bool) map[string]*Flow {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !force && time.Since(t.loaded) < reloadEvery {
		return t.flows
	}
	recs, err := t.repo.ListFlows(ctx, "")
	if err != nil {
		if ctx.Err() == nil { // not the loops stopping
			t.log.Warn("triggers: cannot read flows", "err", err)
		}
		return t.flows
	}
	flows := map[string]*Flow{}
	for _, rec := range recs {
		if !slices.Contains(rec.Triggers, ScheduleTrigger) && !slices.Contains(rec.Triggers, FlowTrigger) && !slices.Contains(rec.Triggers, KVTrigger) {
			continue
		}
		key := rec.Namespace + "/" + rec.ID
		if old := t.flows[key]; old != nil && old.Revision == rec.Revision {
			flows[key] = old
			continue
		}
		f, err := Parse(key+".yaml", []byte(rec.Source), t.e.reg)
		if err != nil {
			continue // the flow no longer loads; its executions say so
		}
		f.Revision, f.Scope, f.Saved = rec.Revision, rec.Scope, rec.Updated // its runs keep the deployer's scope
		flows[key] = f
	}
	t.flows, t.loaded = flows, time.Now()
	return flows
}

func (t *Triggers) scheduleLoop(ctx context.Context) {
	defer close(t.done)
	for {
		flows := t.reload(ctx, false)
		now := time.Now()
		wake := now.Add(reloadEvery)
		live := map[string]bool{}
		for _, f := range flows {
			for _, tr := range f.Triggers {
				s, ok := tr.Spec.(*Schedule)
				if !ok || tr.Disabled || s.sched == nil {
					continue
				}
				key := fmt.Sprintf("schedule:%s/%s/%s/%s@", f.Namespace, f.ID, tr.ID, s.Cron)
				live[key] = true
				next, ok := t.next[key]
				if !ok {
					next = t.firstTick(ctx, key, s, f.Saved, now)
				}
				if !next.After(now) {
					// Each tick once, in order (the loop comes back at once
					// for the next), unless the first is due for longer than
					// lateWindow (no process ran): then only the latest due,
					// never a burst.
					tick := next
					if now.Sub(next) > lateWindow {
						for n := s.Next(tick); !n.After(now); n = s.Next(n) {
							tick = n
						}
					}
					t.fire(ctx, f, tr, key, tick, map[string]any{"date": tick.In(s.Location).Format(time.RFC3339Nano)})
					next = s.Next(tick)
				}
				t.next[key] = next
				if next.Before(wake) {
					wake = next
				}
			}
		}
		for key := range t.next {
			if !live[key] {
				delete(t.next, key)
			}
		}
		timer := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// lateWindow is how late a tick may be found due and still fire in turn:
// a tick the loops saw late (they read flows once a second) is not missed.
const lateWindow = 3 * reloadEvery

// firstTick is where a schedule starts in this process: after the last
// tick any process fired; for a schedule that never fired, at its flow's
// save (saved), so a tick between the save and the loops' first read of
// the flow still fires. A tick missed while every process was down runs
// once (LAST), or not at all (NONE).
func (t *Triggers) firstTick(ctx context.Context, key string, s *Schedule, saved, now time.Time) time.Time {
	last, err := t.repo.LastTriggerKey(ctx, key)
	if err != nil {
		return s.Next(now)
	}
	from := saved
	if last != "" {
		var us int64
		if _, err := fmt.Sscanf(last[len(key):], "%d", &us); err != nil {
			return s.Next(now)
		}
		from = time.UnixMicro(us)
	} else if from.IsZero() {
		return s.Next(now)
	}
	next := s.Next(from)
	if next.After(now) || s.RecoverLast || now.Sub(next) <= lateWindow {
		return next // the loop fires it, or the latest due when it is older than lateWindow
	}
	return s.Next(now)
}

// fire creates one execution for a trigger; a duplicate (another process
// fired the same tick or end) is not an error.
func (t *Triggers) fire(ctx context.Context, f *Flow, tr *Trigger, keyPrefix string, tick time.Time, vars map[string]any) {
	info := &kvflow.TriggerInfo{ID: tr.ID, Type: tr.Type, Variables: vars, Key: fmt.Sprintf("%s%020d", keyPrefix, tick.UnixMicro())}
	_ = t.start(ctx, f, tr, info) // logged; the next tick tries again
}

func (t *Triggers) start(ctx context.Context, f *Flow, tr *Trigger, info *kvflow.TriggerInfo) error {
	_, err := t.e.StartTriggered(ctx, f, tr.Inputs, info)
	switch {
	case err == nil:
	case kvflow.ErrorCode(err) == kvflow.ECONFLICT:
		// Fired already, by this process or another.
	case ctx.Err() != nil:
		return err
	default:
		t.log.Warn("triggers: cannot start an execution", "flow", f.Namespace+"/"+f.ID, "trigger", tr.ID, "err", err)
		if retry(err) {
			return err
		}
	}
	return nil
}

// retry reports whether a trigger's start that failed with err may succeed
// later (the database or object store out of reach). One that cannot, such
// as an input whose template fails on these variables, is reported and
// passed over: tried again, it would hold up the trigger for good.
func retry(err error) bool {
	code := kvflow.ErrorCode(err)
	return code == kvflow.EUNAVAILABLE || code == kvflow.EINTERNAL
}

// flowEnded fires the Flow triggers an ended execution matches; an error
// when one could not be started.
func (t *Triggers) flowEnded(ctx context.Context, ex *Execution) error {
	var first error
	for _, f := range t.reload(ctx, false) {
		for _, tr := range f.Triggers {
			if !firesOn(f, tr, ex) {
				continue
			}
			vars := map[string]any{"executionId": ex.ID, "namespace": ex.Namespace, "flowId": ex.FlowID, "state": string(ex.State), "outputs": ex.Outputs}
			if vars["outputs"] == nil {
				vars["outputs"] = map[string]any{}
			}
			key := fmt.Sprintf("flow:%s/%s/%s/%s", f.Namespace, f.ID, tr.ID, ex.ID)
			if err := t.start(ctx, f, tr, &kvflow.TriggerInfo{ID: tr.ID, Type: tr.Type, Variables: vars, Key: key}); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// endGrace is how long the process that ended an execution has to fire
// its Flow triggers before endLoop does it.
const endGrace = 2 * time.Second

// endLoop fires the Flow triggers of ends that no process handled (their
// worker died between saving the end and firing, or the execution was
// killed before it ran) and marks ends handled in batches. Firing twice is
// harmless: the trigger key makes the second start a conflict.
func (t *Triggers) endLoop(ctx context.Context) {
	defer t.loops.Done()
	tick := time.NewTicker(reloadEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for t.sweepEnds(ctx) {
		}
	}
}

// sweepEnds handles one batch of pending ends; true when it was full.
func (t *Triggers) sweepEnds(ctx context.Context) bool {
	const batch = 500
	ends, err := t.repo.PendingEnds(ctx, time.Now().Add(-endGrace), batch)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("triggers: cannot read ended executions", "err", err)
		}
		return false
	}
	flows := t.reload(ctx, false)
	var handled []string
	for _, end := range ends {
		t.firedMu.Lock()
		_, done := t.fired[end.ID]
		t.firedMu.Unlock()
		if !done && matchesFlowTrigger(flows, end) {
			ex, err := t.e.Execution(ctx, end.ID) // with its outputs
			if err == nil {
				err = t.flowEnded(ctx, ex)
			}
			if err != nil && kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
				continue // tried again at the next tick
			}
		}
		handled = append(handled, end.ID)
	}
	if err := t.repo.EndsHandled(ctx, handled); err != nil {
		if ctx.Err() == nil {
			t.log.Warn("triggers: cannot mark ended executions handled", "err", err)
		}
		return false
	}
	t.firedMu.Lock()
	for _, id := range handled {
		delete(t.fired, id)
	}
	for id, at := range t.fired { // handled by another process meanwhile
		if time.Since(at) > time.Minute {
			delete(t.fired, id)
		}
	}
	t.firedMu.Unlock()
	return len(ends) == batch && len(handled) > 0
}

// matchesFlowTrigger reports whether an end fires any Flow trigger.
func matchesFlowTrigger(flows map[string]*Flow, ex *Execution) bool {
	for _, f := range flows {
		for _, tr := range f.Triggers {
			if firesOn(f, tr, ex) {
				return true
			}
		}
	}
	return false
}

// firesOn reports whether tr, a trigger of f, fires on the end of ex: a
// Flow trigger whose conditions match, never on f's own executions (as
// Kestra's, no recursion), and only on an execution in the scope of whoever
// deployed f, since its state and outputs become trigger variables.
func firesOn(f *Flow, tr *Trigger, ex *Execution) bool {
	spec, ok := tr.Spec.(*FlowSpec)
	return ok && !tr.Disabled && (ex.Namespace != f.Namespace || ex.FlowID != f.ID) &&
		f.Scope.Contains(ex.Namespace) && spec.Matches(ex)
}

// CheckTriggerAccess reports, as field errors, the triggers of f that reach
// where a flow deployed by a caller of scope may not: a KV trigger's
// namespace (under the access policy, as for kv()), a Flow trigger
// condition's namespace outside scope. Such a trigger would never fire.
// A nil Engine checks with no access policy.
func (e *Engine) CheckTriggerAccess(f *Flow, scope storage.Scope) error {
	access := storage.Access{Scope: scope}
	if e != nil {
		access.Policy = e.opts.Policy
	}
	var list ValidationErrors
	add := func(tr *Trigger, field, msg string) {
		list = append(list, kvflow.FieldError{File: f.File, Line: tr.Line, Field: field, Message: msg + " The trigger would never fire."})
	}
	for i, tr := range f.Triggers {
		switch spec := tr.Spec.(type) {
		case *KVSpec:
			ns := cmp.Or(spec.Namespace, f.Namespace)
			if err := access.Check(f.Namespace, ns); err != nil {
				add(tr, fmt.Sprintf("triggers[%d].namespace", i), kvflow.ErrorMessage(err))
			}
		case *FlowSpec:
			for j, c := range spec.Conditions {
				if c.Namespace != "" && !c.Prefix && !scope.Contains(c.Namespace) {
					add(tr, fmt.Sprintf("triggers[%d].conditions[%d].namespace", i, j),
						fmt.Sprintf("Namespace '%s' is outside the scope of whoever deploys this flow (%s).", c.Namespace, scope))
				}
			}
		}
	}
	if len(list) == 0 {
		return nil
	}
	return list
}
