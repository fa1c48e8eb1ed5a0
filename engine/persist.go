package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/seal"
	"github.com/kvflow/kvflow/template"
)

// ObjectName is where an execution's inputs and outputs are kept in the
// Bucket: _executions/<namespace as path>/<flowId>/<executionId>/execution.json,
// written when it is created and when it ends. A worker that took it over
// (claim 2 on) writes its end to execution.c<claim>.json instead, so a
// worker that lost its claim and still ends its run overwrites nothing a
// reader uses: readers take the name from the row's claim.
func ObjectName(ex *Execution) string {
	if ex.Claim > 1 {
		return plugin.ExecutionPrefix(ex.Namespace, ex.FlowID, ex.ID) + fmt.Sprintf("execution.c%08d.json", ex.Claim)
	}
	return createdName(ex)
}

// createdName is the object written when an execution is created.
func createdName(ex *Execution) string {
	return plugin.ExecutionPrefix(ex.Namespace, ex.FlowID, ex.ID) + "execution.json"
}

// executionObject is the JSON document kept in the Bucket for an execution:
// what the database must not hold.
type executionObject struct {
	Inputs   map[string]any          `json:"inputs,omitempty"`
	Outputs  map[string]any          `json:"outputs,omitempty"`
	Trigger  map[string]any          `json:"trigger,omitempty"`
	TaskRuns map[string]taskRunValue `json:"taskRuns,omitempty"`
	// Sealed is a sealedState encrypted with the store's key (saves only).
	Sealed []byte `json:"sealed,omitempty"`
}

// sealedState is what a save of a durable run keeps, sealed, besides the
// masked record: the texts to mask and the real values and outputs of the
// task runs it masks, so a worker that takes the execution over feeds the
// real ones to later tasks and masks as the first worker did.
type sealedState struct {
	Secrets []string             `json:"secrets,omitempty"`
	Runs    map[string]hiddenRun `json:"runs,omitempty"`
	Problem string               `json:"-"` // why a sealed part did not open
}

func sealAD(id string) string { return "kvflow execution " + id }

// sealState seals st for execution id; nil, with a warning, when the store
// cannot (no key): a takeover then restores the masked outputs.
func (e *Engine) sealState(id string, st sealedState) []byte {
	if e.opts.Store == nil {
		return nil
	}
	plain, err := json.Marshal(st)
	if err == nil {
		var out []byte
		if out, err = e.opts.Store.SealBytes(plain, sealAD(id)); err == nil {
			return out
		}
	}
	e.log.Warn("engine: cannot seal the real outputs of an execution; a worker that takes it over gets them masked", "execution", id, "err", err)
	return nil
}

// openState adds what sealed holds to st.
func (e *Engine) openState(id string, sealed []byte, st *sealedState) {
	var plain []byte
	var err error = seal.ErrNoKey
	if e.opts.Store != nil {
		plain, err = e.opts.Store.OpenBytes(sealed, sealAD(id))
	}
	var part sealedState
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(plain))
		dec.UseNumber()
		err = dec.Decode(&part)
	}
	if err != nil {
		st.Problem = fmt.Sprintf("The real outputs the previous worker saved cannot be read (%v): the tasks that follow see them masked (%s).", err, storage.Mask)
		return
	}
	st.Secrets = append(st.Secrets, part.Secrets...)
	if st.Runs == nil {
		st.Runs = map[string]hiddenRun{}
	}
	for id, h := range part.Runs {
		cur := st.Runs[id]
		if h.Value != "" {
			cur.Value = h.Value
		}
		if h.Outputs != nil {
			cur.Outputs = numbersIn(h.Outputs)
		}
		st.Runs[id] = cur
	}
}

type taskRunValue struct {
	Value   string         `json:"value,omitempty"`
	Outputs map[string]any `json:"outputs,omitempty"`
}

// deltaPrefix is where a running durable execution keeps the outputs of
// the task runs each save finished, one object per save, named by claim
// and save number (c<claim>-<save>.json): a worker that takes the
// execution over reads them back in that order, so a later claim's outputs
// win, and no save rewrites an older one, not even one of a lost claim.
func deltaPrefix(ex *Execution) string {
	return plugin.ExecutionPrefix(ex.Namespace, ex.FlowID, ex.ID) + "saves/"
}

// saveCreated saves the new execution, and its inputs when there are any.
func (r *run) saveCreated(ctx context.Context) error {
	repo := r.e.opts.Repo
	if repo == nil {
		return nil
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	return repo.CreateExecution(ctx, r.result(false))
}

// flusher saves states and logs every FlushInterval while the run goes on;
// the returned func stops it.
func (r *run) flusher() (stop func()) {
	if r.e.opts.Repo == nil {
		return func() {}
	}
	quit := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(r.e.opts.FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := r.flush(ctx, false); err != nil {
					r.e.log.Warn("engine: cannot save a running execution", "execution", r.exec.ID, "err", err)
				}
				cancel()
			}
		}
	}()
	return func() {
		close(quit)
		<-stopped
	}
}

// flush saves what changed since the last save, in one transaction: the
// execution's fields, the task runs that changed and the new log lines.
// A durable run first writes the outputs of the task runs that changed to
// a new object (not on the final save: the execution's object has them).
// A save refused because another worker took the execution over stops
// the run.
func (r *run) flush(ctx context.Context, final bool) error {
	repo := r.e.opts.Repo
	if repo == nil {
		return nil
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	return r.flushLocked(ctx, final)
}

// flushLocked is flush, with saveMu held.
func (r *run) flushLocked(ctx context.Context, final bool) error {
	repo := r.e.opts.Repo
	if r.handedOver.Load() || r.lost.Load() {
		// Handed over, or lost (another worker took it): nothing more of
		// this run is saved. A lost run's last changes (its interrupted
		// attempt) would pass the claim's fence until the new holder claims.
		return nil
	}
	r.mu.Lock()
	if !r.dirty && len(r.changed) == 0 && len(r.pending) == 0 {
		r.mu.Unlock()
		return nil
	}
	head := *r.exec
	head.TaskRuns, head.Logs = nil, nil
	save := kvflow.ExecutionSave{Execution: &head, Logs: r.pending, Claim: r.claim}
	var values map[string]taskRunValue
	var hidden map[string]hiddenRun
	changed := r.changed
	for tr := range changed {
		save.TaskRuns = append(save.TaskRuns, cloneTaskRun(tr))
		if r.claim != 0 && !final && (tr.Value != "" || len(tr.Outputs) > 0) {
			if values == nil {
				values = map[string]taskRunValue{}
			}
			values[tr.ID] = taskRunValue{Value: tr.Value, Outputs: tr.Outputs}
			if h, ok := r.hidden[tr.ID]; ok {
				if hidden == nil {
					hidden = map[string]hiddenRun{}
				}
				hidden[tr.ID] = h
			}
		}
	}
	sort.Slice(save.TaskRuns, func(i, j int) bool { return save.TaskRuns[i].Seq < save.TaskRuns[j].Seq })
	r.changed, r.pending, r.dirty = map[*TaskRun]struct{}{}, nil, false
	r.saves++
	name := fmt.Sprintf("%sc%08d-%08d.json", deltaPrefix(r.exec), r.claim, r.saves)
	r.mu.Unlock()

	restore := func() {
		r.mu.Lock()
		for tr := range changed {
			r.changed[tr] = struct{}{}
		}
		r.pending = append(save.Logs, r.pending...)
		r.dirty = true
		r.mu.Unlock()
	}
	if len(values) > 0 {
		obj := executionObject{TaskRuns: values}
		if len(hidden) > 0 {
			obj.Sealed = r.e.sealState(r.exec.ID, sealedState{Secrets: r.secrets.Texts(), Runs: hidden})
		}
		if err := r.e.putObject(ctx, name, r.exec.ID, obj); err != nil {
			restore()
			return err
		}
	}
	if err := repo.SaveExecution(ctx, save); err != nil {
		if r.claim != 0 && kvflow.ErrorCode(err) == kvflow.ECONFLICT {
			r.lost.Store(true)
			r.stop(errLost)
			return err
		}
		restore()
		return err
	}
	r.saved = r.saved || final
	return nil
}

// handOver saves the run's progress (the task runs still running stay
// RUNNING), then stops saving and releases the execution, so that another
// worker takes it over as from a worker that died: finished task runs
// kept, interrupted ones run again. A worker stopping does it to its
// durable runs instead of killing them.
func (r *run) handOver(ctx context.Context) error {
	r.saveMu.Lock()
	if r.saved { // it ended meanwhile
		r.saveMu.Unlock()
		return nil
	}
	r.log("", "", "WARN", fmt.Sprintf("Worker '%s' is stopping: the execution is handed over to another worker.", r.e.opts.Worker))
	err := r.flushLocked(ctx, false)
	if err == nil {
		r.handedOver.Store(true)
	}
	r.saveMu.Unlock()
	if err != nil {
		return err
	}
	return r.e.opts.Repo.ReleaseExecution(ctx, r.exec.ID, r.claim)
}

// writeObject stores an execution's inputs, outputs, trigger variables
// and task run outputs in the Bucket, when it has any.
func (e *Engine) writeObject(ctx context.Context, ex *Execution) error {
	if e.opts.Repo == nil || e.bucket == nil {
		return nil
	}
	obj := executionObject{Inputs: ex.Inputs, Outputs: ex.Outputs}
	if ex.Trigger != nil {
		obj.Trigger = ex.Trigger.Variables
	}
	for _, tr := range ex.TaskRuns {
		if tr.Value == "" && len(tr.Outputs) == 0 {
			continue
		}
		if obj.TaskRuns == nil {
			obj.TaskRuns = map[string]taskRunValue{}
		}
		obj.TaskRuns[tr.ID] = taskRunValue{Value: tr.Value, Outputs: tr.Outputs}
	}
	if len(obj.Inputs) == 0 && len(obj.Outputs) == 0 && len(obj.TaskRuns) == 0 && len(obj.Trigger) == 0 {
		return nil // nothing the database must not hold
	}
	return e.putObject(ctx, ObjectName(ex), ex.ID, obj)
}

func (e *Engine) putObject(ctx context.Context, name, id string, obj executionObject) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return kvflow.Errorf(kvflow.EINVALID, "The outputs of execution '%s' cannot be encoded as JSON: %v.", id, err)
	}
	if err := e.bucket.Put(ctx, name, bytes.NewReader(body), int64(len(body))); err != nil {
		if kvflow.ErrorCode(err) == kvflow.EINTERNAL {
			return &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: fmt.Sprintf("Cannot save the outputs of execution '%s': the object store is unreachable: %v.", id, err), Err: err}
		}
		return err
	}
	return nil
}

// readObject fills an execution read from the Repository with its inputs,
// outputs, trigger variables and ForEach values from the Bucket; with
// saves, also those the saves of a running execution wrote, and with
// sealed, what they sealed. A missing object (an execution without inputs
// that has not ended yet) is not an error.
func (e *Engine) readObject(ctx context.Context, ex *Execution, saves bool, sealed *sealedState) error {
	if e.bucket == nil {
		return nil
	}
	base := createdName(ex)
	if ex.State.Terminated() && ex.Claim > 1 {
		obj, err := e.getObject(ctx, ObjectName(ex), ex.ID)
		if err != nil || obj != nil {
			if obj != nil {
				e.apply(ex, obj, sealed)
			}
			return err
		}
		// Ended with no record of its last worker (killed, or stopped by
		// its concurrency limit, after a takeover): its saves have it.
		saves = true
	}
	var names []string
	if saves {
		err := e.bucket.Iter(ctx, deltaPrefix(ex), func(name string, _ time.Time) error {
			names = append(names, name)
			return nil
		})
		if err != nil {
			return err
		}
		sort.Strings(names)
	}
	for _, name := range append([]string{base}, names...) {
		obj, err := e.getObject(ctx, name, ex.ID)
		if err != nil {
			return err
		} else if obj != nil {
			e.apply(ex, obj, sealed)
		}
	}
	return nil
}

// apply fills ex with what obj holds.
func (e *Engine) apply(ex *Execution, obj *executionObject, sealed *sealedState) {
	if obj.Inputs != nil {
		ex.Inputs = numbersIn(obj.Inputs)
	}
	if obj.Outputs != nil {
		ex.Outputs = numbersIn(obj.Outputs)
	}
	if obj.Trigger != nil && ex.Trigger != nil {
		ex.Trigger.Variables = numbersIn(obj.Trigger)
	}
	for _, tr := range ex.TaskRuns {
		if v, ok := obj.TaskRuns[tr.ID]; ok {
			tr.Value, tr.Outputs = v.Value, numbersIn(v.Outputs)
		}
	}
	if sealed != nil && obj.Sealed != nil {
		e.openState(ex.ID, obj.Sealed, sealed)
	}
}

func (e *Engine) getObject(ctx context.Context, name, id string) (*executionObject, error) {
	rc, err := e.bucket.Get(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	var obj executionObject
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, kvflow.Errorf(kvflow.EINTERNAL, "The stored outputs of execution '%s' are not valid JSON: %v.", id, err)
	}
	return &obj, nil
}

func numbersIn(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return jsonNumbers(m).(map[string]any)
}

// taskHandler turns a task's slog records into the execution's log lines.
type taskHandler struct {
	r         *run
	taskID    string
	taskRunID string
	attrs     string // preformatted " key=value" pairs
	group     string
}

func (h *taskHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *taskHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	b.WriteString(h.attrs)
	rec.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.group, a)
		return true
	})
	h.r.log(h.taskID, h.taskRunID, levelName(rec.Level), b.String())
	return nil
}

func (h *taskHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		writeAttr(&b, h.group, a)
	}
	c.attrs = b.String()
	return &c
}

func (h *taskHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = h.group + name + "."
	return &c
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, x := range a.Value.Group() {
			writeAttr(b, g, x)
		}
		return
	}
	b.WriteString(" ")
	b.WriteString(group)
	b.WriteString(a.Key)
	b.WriteString("=")
	s := template.Text(a.Value.Any())
	if strings.ContainsAny(s, " \t\n\"=") || s == "" {
		s = fmt.Sprintf("%q", s)
	}
	b.WriteString(s)
}

// levelName maps slog levels to Kestra's names.
func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "TRACE"
	case l < slog.LevelInfo:
		return "DEBUG"
	case l < slog.LevelWarn:
		return "INFO"
	case l < slog.LevelError:
		return "WARN"
	}
	return "ERROR"
}
