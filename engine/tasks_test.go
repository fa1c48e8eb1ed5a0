package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// Test-only task types, registered in a registry of their own so the tests
// do not depend on the built-in tasks.

// echo returns its value (rendered, typed) as the output value, and logs it.
type echo struct {
	Value plugin.Property[any] `yaml:"value" required:"true"`
}

func (t *echo) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	v, err := t.Value.Get(ctx, rc, nil)
	if err != nil {
		return nil, err
	}
	rc.Log(ctx, slog.LevelInfo, fmt.Sprintf("echo %v", v))
	return plugin.Outputs{"value": v}, nil
}

// flaky fails its first `failures` attempts, then succeeds.
type flaky struct {
	Failures plugin.Property[int] `yaml:"failures"`
}

func (t *flaky) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	n, err := t.Failures.Get(ctx, rc, 1<<30)
	if err != nil {
		return nil, err
	}
	attempt := rc.Data["taskrun"].(map[string]any)["attemptsCount"].(int)
	if attempt <= n {
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Attempt %d failed on purpose.", attempt)
	}
	return plugin.Outputs{"attempts": attempt}, nil
}

// sleep waits for duration; with ignoreContext it does not stop when its
// context ends.
type sleep struct {
	Duration      plugin.Property[time.Duration] `yaml:"duration" required:"true"`
	IgnoreContext bool                           `yaml:"ignoreContext"`
}

func (t *sleep) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	d, err := t.Duration.Get(ctx, rc, 0)
	if err != nil {
		return nil, err
	}
	if t.IgnoreContext {
		time.Sleep(d)
		return plugin.Outputs{"slept": true}, nil
	}
	select {
	case <-time.After(d):
		return plugin.Outputs{"slept": true}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// gauge counts how many of its runs overlap, per group.
type gauge struct {
	Group plugin.Property[string] `yaml:"group" required:"true"`
}

var gauges sync.Map // group → *gaugeState

type gaugeState struct {
	now, max atomic.Int64
}

func gaugeOf(group string) *gaugeState {
	g, _ := gauges.LoadOrStore(group, &gaugeState{})
	return g.(*gaugeState)
}

func (t *gauge) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	group, err := t.Group.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	g := gaugeOf(group)
	n := g.now.Add(1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(40 * time.Millisecond)
	g.now.Add(-1)
	return plugin.Outputs{}, nil
}

// boom panics.
type boom struct{}

func (*boom) Run(context.Context, *plugin.RunContext) (plugin.Outputs, error) { panic("kaboom") }

// kvSet is a small Set for load-time checks: key required, a typed ttl.
type kvSet struct {
	Key       plugin.Property[string]        `yaml:"key" required:"true"`
	Value     plugin.Property[any]           `yaml:"value" required:"true"`
	Namespace plugin.Property[string]        `yaml:"namespace"`
	TTL       plugin.Property[time.Duration] `yaml:"ttl"`
	Overwrite plugin.Property[bool]          `yaml:"overwrite"`
}

func (t *kvSet) Validate() error {
	if k, ok := t.Key.Raw().(string); ok && !t.Key.IsTemplate() {
		if err := storage.ValidateKey(k); err != nil {
			return kvflow.Errorf(kvflow.EINVALID, "key: %s", kvflow.ErrorMessage(err))
		}
	}
	return nil
}

func (t *kvSet) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	key, err := t.Key.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	v, err := t.Value.Get(ctx, rc, nil)
	if err != nil {
		return nil, err
	}
	ns, err := t.Namespace.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	if ns, err = rc.TargetNamespace(ns); err != nil {
		return nil, err
	}
	ttl, err := t.TTL.Get(ctx, rc, 0)
	if err != nil {
		return nil, err
	}
	val, err := storage.FromGo(v)
	if err != nil {
		return nil, err
	}
	if _, err := rc.Store.Set(ctx, ns, key, val, storage.SetOptions{TTL: ttl}); err != nil {
		return nil, err
	}
	return plugin.Outputs{}, nil
}

// kvGet reads a key: output value.
type kvGet struct {
	Key plugin.Property[string] `yaml:"key" required:"true"`
}

func (t *kvGet) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	key, err := t.Key.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	_, v, err := rc.Store.Get(ctx, rc.Namespace, key)
	if err != nil {
		return nil, err
	}
	return plugin.Outputs{"value": v.JSONValue()}, nil
}

// file stores its content with PutFile: output uri.
type file struct {
	Name    plugin.Property[string] `yaml:"name" required:"true"`
	Content plugin.Property[string] `yaml:"content" required:"true"`
}

func (t *file) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	name, err := t.Name.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	content, err := t.Content.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	uri, err := rc.PutFile(ctx, name, strings.NewReader(content))
	if err != nil {
		return nil, err
	}
	return plugin.Outputs{"uri": uri}, nil
}

// multi fails Validate with two errors at once.
type multi struct {
	A plugin.Property[int] `yaml:"a"`
	B plugin.Property[int] `yaml:"b"`
}

func (t *multi) Validate() error {
	var errs []error
	if a, ok := t.A.Raw().(int); ok && a > 10 {
		errs = append(errs, kvflow.Errorf(kvflow.EINVALID, "a: must be 10 or less, not %d", a))
	}
	if b, ok := t.B.Raw().(int); ok && b > 10 {
		errs = append(errs, kvflow.Errorf(kvflow.EINVALID, "b: must be 10 or less, not %d", b))
	}
	return errors.Join(errs...)
}

func (t *multi) Run(context.Context, *plugin.RunContext) (plugin.Outputs, error) { return nil, nil }

func testRegistry() *plugin.Registry {
	reg := plugin.NewRegistry()
	for _, d := range []plugin.Definition{
		{Type: "test.Echo", New: func() plugin.Task { return &echo{} }},
		{Type: "test.Flaky", New: func() plugin.Task { return &flaky{} }},
		{Type: "test.Sleep", New: func() plugin.Task { return &sleep{} }},
		{Type: "test.Gauge", New: func() plugin.Task { return &gauge{} }},
		{Type: "test.Boom", New: func() plugin.Task { return &boom{} }},
		{Type: "test.kv.Set", New: func() plugin.Task { return &kvSet{} }},
		{Type: "test.kv.Get", New: func() plugin.Task { return &kvGet{} }},
		{Type: "test.File", New: func() plugin.Task { return &file{} }},
		{Type: "test.Multi", New: func() plugin.Task { return &multi{} }},
	} {
		reg.MustRegister(d)
	}
	return reg
}
