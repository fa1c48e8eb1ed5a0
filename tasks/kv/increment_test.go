package kv_test

import (
	"github.com/kvflow/kvflow/internal/testpair"
	"strings"
	"sync"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/tasks/kv"
)

func TestIncrement_ConcurrentRunsLoseNothing(t *testing.T) {
	e := newEnv(t, testpair.Local)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				task, _ := decode(t, kv.IncrementType, "key: hits")
				if _, err := task.Run(t.Context(), e.rc(flowNS)); err != nil {
					t.Errorf("Increment: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	out, err := e.run(flowNS, kv.IncrementType, "key: hits\nby: '{{ inputs.count }}'")
	if err != nil || out["value"] != int64(82) {
		t.Fatalf("after 40 increments and +42: %v, %v; want 82", out["value"], err)
	}
}

func TestIncrement_BadInput_NamesTheProperty(t *testing.T) {
	if _, errs := decode(t, kv.IncrementType, "key: hits\nby: lots"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "NUMBER") {
		t.Errorf("by: lots = %v, want one error about a NUMBER", errs)
	}
	e := newEnv(t, testpair.Local)
	e.run(flowNS, kv.SetType, "key: name\nvalue: text")
	if _, err := e.run(flowNS, kv.IncrementType, "key: name"); kvflow.ErrorCode(err) != kvflow.ECONFLICT {
		t.Errorf("Increment of a STRING = %v, want ECONFLICT", err)
	}
}
