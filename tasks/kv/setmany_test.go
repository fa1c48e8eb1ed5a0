package kv_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/tasks/kv"
)

func TestSetMany_ListAndMap_AllOrNothing(t *testing.T) {
	for name, pair := range map[string]pairFunc{"sqlite+dir": testpair.Local, "postgres+minio": testpair.Service} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, pair)
			out, err := e.run(flowNS, kv.SetManyType, `
entries:
  - {key: a, value: 1, ttl: 3600}
  - {key: b, value: "{{ inputs.obj }}"}
  - {key: c, value: "2024-07-15", type: DATE, description: day}
ttl: PT5M`)
			if err != nil || !reflect.DeepEqual(out["keys"], []any{"a", "b", "c"}) {
				t.Fatalf("SetMany list = %v, %v", out, err)
			}
			ea, _ := e.store.Stat(context.Background(), flowNS, "a")
			eb, _ := e.store.Stat(context.Background(), flowNS, "b")
			if ea == nil || !ea.Expires.Equal(startTime.Add(time.Hour)) || eb == nil || !eb.Expires.Equal(startTime.Add(5*time.Minute)) || eb.Type != "JSON" {
				t.Errorf("entries after SetMany: a %+v, b %+v", ea, eb)
			}
			if _, err := e.run(flowNS, kv.SetManyType, "entries: {m1: 12345678901234567890, m2: text}"); err != nil {
				t.Fatalf("SetMany map: %v", err)
			}
			if _, v, err := e.store.Get(context.Background(), flowNS, "m1"); err != nil || v.Text() != "12345678901234567890" {
				t.Errorf("m1 = %v, %v", v.V, err)
			}
			_, err = e.run(flowNS, kv.SetManyType, `
entries:
  - {key: x1, value: 1}
  - {key: "{{ inputs.badkey }}", value: 2}`)
			if kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "Entry 1 (key 'a/b')") {
				t.Fatalf("SetMany with a bad key = %v", err)
			}
			if _, err := e.store.Stat(context.Background(), flowNS, "x1"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
				t.Errorf("x1 after a refused batch: %v", err)
			}
		})
	}
	if _, errs := decode(t, kv.SetManyType, "entries: [{key: a}]"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "'value'") {
		t.Errorf("entries without a value = %v, want one load error naming value", errs)
	}
}

func TestGet_DefaultValue_ForMissingAndExpired(t *testing.T) {
	e := newEnv(t, testpair.Local)
	out, err := e.run(flowNS, kv.GetType, "key: nope\nerrorOnMissing: true\ndefaultValue: 42")
	if err != nil || out["value"] != 42 && out["value"] != int64(42) {
		t.Fatalf("Get with defaultValue = %#v, %v", out["value"], err)
	}
	e.put(flowNS, "short", storage.String("x"), time.Minute)
	e.clock.Add(time.Minute)
	out, err = e.run(flowNS, kv.GetType, "key: short\ndefaultValue: '{{ inputs.key }}'")
	if err != nil || out["value"] != "from_input" {
		t.Fatalf("Get expired with defaultValue = %#v, %v", out["value"], err)
	}
}

func TestSet_TTLInWholeSeconds(t *testing.T) {
	e := newEnv(t, testpair.Local)
	for key, ttl := range map[string]string{"lit": "3600", "str": "'3600'", "tpl": "'{{ 1800 + 1800 }}'"} {
		if _, err := e.run(flowNS, kv.SetType, "key: "+key+"\nvalue: x\nttl: "+ttl); err != nil {
			t.Fatalf("Set with ttl %s: %v", ttl, err)
		}
		if got, err := e.store.Stat(context.Background(), flowNS, key); err != nil || got.Expires == nil || !got.Expires.Equal(startTime.Add(time.Hour)) {
			t.Errorf("ttl %s: entry %+v, %v; want expiry in an hour", ttl, got, err)
		}
	}
	if _, errs := decode(t, kv.SetType, "key: k\nvalue: x\nttl: 0"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "positive") {
		t.Errorf("ttl: 0 = %v, want one load error", errs)
	}
}
