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
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/template"
)

// ObjectName is where an execution's inputs and outputs are kept in the
// Bucket: _executions/<namespace as path>/<flowId>/<executionId>/execution.json.
func ObjectName(ex *Execution) string {
	return plugin.ExecutionPrefix(ex.Namespace, ex.FlowID, ex.ID) + "execution.json"
}

// executionObject is the JSON document kept in the Bucket for an execution:
// what the database must not hold.
type executionObject struct {
	Inputs   map[string]any          `json:"inputs,omitempty"`
	Outputs  map[string]any          `json:"outputs,omitempty"`
	TaskRuns map[string]taskRunValue `json:"taskRuns,omitempty"`
}

type taskRunValue struct {
	Value   string         `json:"value,omitempty"`
	Outputs map[string]any `json:"outputs,omitempty"`
}

// saveCreated saves the new execution, and its inputs when there are any.
func (r *run) saveCreated(ctx context.Context) error {
	repo := r.e.opts.Repo
	if repo == nil {
		return nil
	}
	if len(r.exec.Inputs) > 0 {
		if err := r.writeObject(ctx); err != nil {
			return err
		}
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	return repo.SaveExecution(ctx, r.result(false))
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
				if err := r.flush(ctx); err != nil {
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

// flush saves what changed since the last save: the execution with its
// task runs, and new log lines.
func (r *run) flush(ctx context.Context) error {
	repo := r.e.opts.Repo
	if repo == nil {
		return nil
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.mu.Lock()
	var snap *Execution
	if r.dirty {
		snap = r.exec.clone()
		r.dirty = false
	}
	logs := r.pending
	r.pending = nil
	r.mu.Unlock()

	var errs []error
	if snap != nil {
		if err := repo.SaveExecution(ctx, snap); err != nil {
			r.mu.Lock()
			r.dirty = true
			r.mu.Unlock()
			errs = append(errs, err)
		}
	}
	if len(logs) > 0 {
		if err := repo.AppendLogs(ctx, logs); err != nil {
			r.mu.Lock()
			r.pending = append(logs, r.pending...)
			r.mu.Unlock()
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeObject stores the execution's inputs and outputs in the Bucket.
func (r *run) writeObject(ctx context.Context) error {
	if r.e.opts.Repo == nil || r.e.bucket == nil {
		return nil
	}
	r.mu.Lock()
	obj := executionObject{Inputs: r.exec.Inputs, Outputs: r.exec.Outputs}
	for _, tr := range r.exec.TaskRuns {
		if tr.Value == "" && len(tr.Outputs) == 0 {
			continue
		}
		if obj.TaskRuns == nil {
			obj.TaskRuns = map[string]taskRunValue{}
		}
		obj.TaskRuns[tr.ID] = taskRunValue{Value: tr.Value, Outputs: tr.Outputs}
	}
	name := ObjectName(r.exec)
	if len(obj.Inputs) == 0 && len(obj.Outputs) == 0 && len(obj.TaskRuns) == 0 {
		r.mu.Unlock()
		return nil // nothing the database must not hold
	}
	body, err := json.Marshal(obj)
	r.mu.Unlock()
	if err != nil {
		return kvflow.Errorf(kvflow.EINVALID, "The outputs of execution '%s' cannot be encoded as JSON: %v.", r.exec.ID, err)
	}
	if err := r.e.bucket.Put(ctx, name, bytes.NewReader(body), int64(len(body))); err != nil {
		if kvflow.ErrorCode(err) == kvflow.EINTERNAL {
			return &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: fmt.Sprintf("Cannot save the outputs of execution '%s': the object store is unreachable: %v.", r.exec.ID, err), Err: err}
		}
		return err
	}
	return nil
}

// readObject fills an execution read from the Repository with its inputs,
// outputs and ForEach values from the Bucket. A missing object (an
// execution without inputs that has not ended yet) is not an error.
func (e *Engine) readObject(ctx context.Context, ex *Execution) error {
	if e.bucket == nil {
		return nil
	}
	rc, err := e.bucket.Get(ctx, ObjectName(ex))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	var obj executionObject
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return kvflow.Errorf(kvflow.EINTERNAL, "The stored outputs of execution '%s' are not valid JSON: %v.", ex.ID, err)
	}
	ex.Inputs = numbersIn(obj.Inputs)
	ex.Outputs = numbersIn(obj.Outputs)
	for _, tr := range ex.TaskRuns {
		if v, ok := obj.TaskRuns[tr.ID]; ok {
			tr.Value, tr.Outputs = v.Value, numbersIn(v.Outputs)
		}
	}
	return nil
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
