package kv_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/tasks/kv"
)

func TestPut_MergeEntriesReplaceAndMissing(t *testing.T) {
	e := newEnv(t, testpair.Local)
	// Created when missing, from a map.
	out, err := e.run(flowNS, kv.PutType, "key: cfg\nvalue: {name: John, address: {city: Paris, zip: '75001'}}")
	if err != nil || out["version"] != int64(1) {
		t.Fatalf("Put creating = %v, %v", out, err)
	}
	// A map deep-merges; entries set fields by dotted path.
	mustOK(t, func() error {
		_, err := e.run(flowNS, kv.PutType, "key: cfg\nvalue: {address: {city: Lyon}}")
		return err
	}())
	mustOK(t, func() error {
		_, err := e.run(flowNS, kv.PutType, "key: cfg\nvalue:\n  - {key: address.country, value: FR}\n  - {key: age, value: 12345678901234567890}")
		return err
	}())
	en, v := e.mustGet(flowNS, "cfg")
	if want := `{"address":{"city":"Lyon","country":"FR","zip":"75001"},"age":12345678901234567890,"name":"John"}`; v.Text() != want || en.Version != 3 {
		t.Errorf("after merges: %s (version %d), want %s", v.Text(), en.Version, want)
	}
	// A template rendering a map merges too.
	mustOK(t, func() error { _, err := e.run(flowNS, kv.PutType, "key: cfg\nvalue: '{{ inputs.obj }}'"); return err }())
	if _, v := e.mustGet(flowNS, "cfg"); !strings.Contains(v.Text(), `"country":"FR"`) || !strings.Contains(v.Text(), `"city":"Paris"`) {
		t.Errorf("after merging a rendered map: %s", v.Text())
	}
	// A string is replaced, keeping its description; field updates on it are refused.
	if _, err := e.store.Set(t.Context(), flowNS, "s", storage.String("old"), storage.SetOptions{Description: "keep"}); err != nil {
		t.Fatal(err)
	}
	mustOK(t, func() error { _, err := e.run(flowNS, kv.PutType, "key: s\nvalue: [{value: new}]"); return err }())
	if en, v := e.mustGet(flowNS, "s"); v.V != "new" || en.Description != "keep" {
		t.Errorf("replaced string = %v (%q)", v.V, en.Description)
	}
	_, err = e.run(flowNS, kv.PutType, "key: s\nvalue: [{key: a, value: 1}]")
	wantErr(t, err, kvflow.ECONFLICT, "STRING", "JSON object")
	_, err = e.run(flowNS, kv.PutType, "key: nope\nvalue: {a: 1}\nerrorOnMissing: true")
	wantErr(t, err, kvflow.ENOTFOUND, "errorOnMissing")
	// Bad entry lists are load errors.
	for _, bad := range []string{"key: k\nvalue: [{value: 1}, {value: 2}]", "key: k\nvalue: [{key: a, value: 1}, {key: a, value: 2}]", "key: k\nvalue: [{key: a, value: 1}, {key: a.b, value: 2}]"} {
		if _, errs := decode(t, kv.PutType, bad); len(errs) != 1 || !strings.Contains(errs[0].Error(), "value") {
			t.Errorf("%q: load errors %v, want one naming value", bad, errs)
		}
	}
}

func TestPut_ConcurrentRunsOnDistinctFields_AllLand(t *testing.T) {
	for name, pair := range map[string]pairFunc{"sqlite+dir": testpair.Local, "postgres+minio": testpair.Service} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, pair)
			const n = 8
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					task, _ := decode(t, kv.PutType, fmt.Sprintf("key: shared\nvalue: [{key: fields.f%d, value: %d}]", i, i))
					if _, err := task.Run(t.Context(), e.rc(flowNS)); err != nil {
						t.Errorf("Put f%d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			_, v := e.mustGet(flowNS, "shared")
			fields, _ := v.V.(map[string]any)["fields"].(map[string]any)
			for i := 0; i < n; i++ {
				if fields[fmt.Sprintf("f%d", i)] != int64(i) {
					t.Errorf("field f%d = %v after %d concurrent Puts; value %s", i, fields[fmt.Sprintf("f%d", i)], n, v.Text())
				}
			}
		})
	}
}
