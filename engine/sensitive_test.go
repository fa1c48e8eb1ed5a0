package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
)

// sensitivePair is a store with an encryption key, holding the sensitive
// STRING pw = marker and the sensitive JSON list = [marker-a, marker-b].
func sensitivePair(t *testing.T, marker string) testpair.Pair {
	t.Helper()
	p := testpair.Local(t, storage.Options{Keys: storagetest.TestKeys(t)})
	set := func(key string, v storage.Value, sensitive bool) {
		t.Helper()
		if _, err := p.Store.Set(context.Background(), "company.team", key, v, storage.SetOptions{Sensitive: sensitive}); err != nil {
			t.Fatal(err)
		}
	}
	set("pw", storage.String(marker), true)
	list, err := storage.FromGo([]any{marker + "-a", marker + "-b"})
	if err != nil {
		t.Fatal(err)
	}
	set("list", list, true)
	return p
}

// kvText reads a key's value as text.
func kvText(t *testing.T, p testpair.Pair, key string) string {
	t.Helper()
	_, v, err := p.Store.Get(context.Background(), "company.team", key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return v.Text()
}

// noMarkerInObjects fails the test when an execution object in the bucket
// holds marker.
func noMarkerInObjects(t *testing.T, p testpair.Pair, marker string) {
	t.Helper()
	ctx := context.Background()
	n := 0
	err := p.Bucket.Iter(ctx, "_executions/", func(name string, _ time.Time) error {
		rc, err := p.Bucket.Get(ctx, name)
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("object %s holds the sensitive value: %s", name, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no execution object was written")
	}
}

// A ForEach over a sensitive list: each task run records its value as
// ******, logs and outputs are masked (the flow output keyed by the values
// too), and the tasks inside still see the real values.
func TestRun_ForEachOverSensitiveValues_RecordedMasked(t *testing.T) {
	const marker = "mArKeR-each-31"
	p := sensitivePair(t, marker)
	e := engineOn(t, p)
	ex := run(t, e, `
id: loop
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ kv('list') }}"
    tasks:
      - id: inner
        type: test.Echo
        value: "item {{ taskrun.value }}"
      - id: keep
        type: test.kv.Set
        key: last
        value: "{{ taskrun.value }}"
outputs:
  - id: all
    value: "{{ outputs.inner }}"
`, nil)
	wantState(t, ex, engine.SUCCESS)
	inner := runs(ex, "inner")
	if len(inner) != 2 {
		t.Fatalf("%d inner runs, want 2", len(inner))
	}
	for _, tr := range inner {
		if tr.Value != storage.Mask || tr.Outputs["value"] != "item "+storage.Mask {
			t.Errorf("inner run: value %q outputs %v, want both masked", tr.Value, tr.Outputs)
		}
	}
	if got := kvText(t, p, "last"); got != marker+"-b" {
		t.Errorf("last = %q: the tasks inside did not see the real value", got)
	}
	logs := logText(ex)
	if !strings.Contains(logs, "echo item "+storage.Mask) {
		t.Errorf("logs do not show the masked item:\n%s", logs)
	}
	stored, err := e.Execution(context.Background(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := json.Marshal([]any{ex, stored, logs})
	if bytes.Contains(all, []byte(marker)) {
		t.Errorf("the execution shows the sensitive value: %s", all)
	}
	noMarkerInObjects(t, p, marker)
}

// A sensitive value read through a task's output and changed by a filter,
// a set tag or an expression is masked, as kv('pw') | upper is: in logs,
// outputs and stored objects. Other outputs are not masked.
func TestRun_SensitiveOutputThroughFilters_Masked(t *testing.T) {
	const marker = "mArKeR-out-47"
	p := sensitivePair(t, marker)
	e := engineOn(t, p)
	ex := run(t, e, `
id: derived
namespace: company.team
tasks:
  - {id: get, type: test.kv.Get, key: pw}
  - {id: plain, type: test.Echo, value: "plain text"}
  - {id: up, type: test.Echo, value: "up={{ outputs.get.value | upper }}"}
  - {id: title, type: test.Echo, value: "{% set p = outputs.get.value %}{{ p | title }}"}
  - {id: low, type: test.Echo, value: "{{ outputs['get']['value'] ~ '!' | lower }}"}
  - {id: other, type: test.Echo, value: "{{ outputs.plain.value | upper }}"}
`, nil)
	wantState(t, ex, engine.SUCCESS)
	for id, want := range map[string]string{"up": "up=" + storage.Mask, "title": storage.Mask, "low": storage.Mask, "other": "PLAIN TEXT"} {
		if got := runs(ex, id)[0].Outputs["value"]; got != want {
			t.Errorf("outputs.%s.value = %q, want %q", id, got, want)
		}
	}
	stored, err := e.Execution(context.Background(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := json.Marshal([]any{ex, stored, logText(ex)})
	for _, derived := range []string{strings.ToUpper(marker), strings.ToLower(marker), "Marker-Out-47"} {
		if bytes.Contains(bytes.ToLower(all), []byte(strings.ToLower(derived))) {
			t.Errorf("the execution shows %q: %s", derived, all)
		}
	}
	noMarkerInObjects(t, p, strings.ToUpper(marker))
}

// A worker that takes over an execution whose first worker went silent
// goes on with the real outputs and ForEach values (saved sealed), masks
// as the first worker did, and never runs a finished task again; nothing
// it or the first worker stored holds the value in clear.
func TestWork_TakeoverAfterSensitiveOutputs_FeedsRealValuesAndMasks(t *testing.T) {
	const marker = "mArKeR-takeover-52"
	ctx := context.Background()
	p := sensitivePair(t, marker)
	if _, err := p.Store.Set(ctx, "company.team", "hold", storage.String("PT60S"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	// a goes silent for b after 30ms; a itself heartbeats every second.
	a := engineOn(t, p, func(o *engine.Options) {
		o.Worker, o.HeartbeatTimeout, o.FlushInterval = "a", 3*time.Second, 20*time.Millisecond
	})
	t.Cleanup(func() { // a, still asleep in its lost run, stops at once
		stopped, stop := context.WithCancel(ctx)
		stop()
		a.Shutdown(stopped)
	})
	b := engineOn(t, p, func(o *engine.Options) {
		o.Worker, o.HeartbeatTimeout, o.FlushInterval = "b", 30*time.Millisecond, 20*time.Millisecond
	})
	ex := createStored(t, p, `id: takeover
namespace: company.team
tasks:
  - id: get
    type: test.kv.Get
    key: pw
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ kv('list') }}"
    tasks:
      - id: inner
        type: test.Echo
        value: "item {{ taskrun.value }}"
      - id: hold
        type: test.Sleep
        duration: "{{ kv('hold') }}"
  - id: use
    type: test.kv.Set
    key: copy
    value: "{{ outputs.get.value }}"
  - id: item
    type: test.kv.Set
    key: item
    value: "{{ outputs.inner[outputs.get.value ~ '-a'].value }}"
  - id: say
    type: test.Echo
    value: "{{ outputs.get.value }}"
`)
	go a.Work(ctx, ex.ID)

	// Wait until a sleeps in the first value's hold: get and inner are saved.
	deadline := time.Now().Add(20 * time.Second)
	for !holding(t, p, ex.ID) {
		if time.Now().After(deadline) {
			t.Fatal("the first worker never reached the hold task")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := p.Store.Set(ctx, "company.team", "hold", storage.String("PT0.01S"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		if err := b.Work(ctx, ex.ID); err != nil {
			t.Fatalf("b: %v", err)
		}
		cur, err := p.DB.GetExecution(ctx, ex.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.State.Terminated() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b never took the execution over (state %s, worker %s)", cur.State, cur.Worker)
		}
		time.Sleep(20 * time.Millisecond)
	}

	got, err := b.Execution(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := b.Logs(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Logs = logs
	wantState(t, got, engine.SUCCESS)
	if got.Worker != "b" {
		t.Errorf("worker = %q, want b", got.Worker)
	}
	// The real values reached the tasks after the takeover.
	if v := kvText(t, p, "copy"); v != marker {
		t.Errorf("copy = %q, want the real value: the restored output was not the real one", v)
	}
	if v := kvText(t, p, "item"); v != "item "+marker+"-a" {
		t.Errorf("item = %q, want the real output of the first value's inner run", v)
	}
	// Finished task runs did not run again, so the resumed ForEach matched
	// the first value's runs by their real value.
	for _, id := range []string{"get", "inner", "use", "item", "say"} {
		for _, tr := range runs(got, id) {
			if len(tr.Attempts) != 1 {
				t.Errorf("task %s (value %q) ran %d times", id, tr.Value, len(tr.Attempts))
			}
		}
	}
	if n := len(runs(got, "inner")); n != 2 {
		t.Errorf("%d inner runs, want 2", n)
	}
	hold := runs(got, "hold")
	if len(hold) != 2 || !equalStates(attemptStates(hold[0]), engine.KILLED, engine.SUCCESS) || hold[0].Attempts[1].Worker != "b" {
		t.Errorf("hold runs %+v, want the first interrupted on a and run again on b", hold)
	}
	for _, tr := range append(runs(got, "inner"), runs(got, "get")...) {
		if tr.Value != "" && tr.Value != storage.Mask {
			t.Errorf("task run %s value %q, want %s", tr.TaskID, tr.Value, storage.Mask)
		}
	}
	// b masks the value it never read itself: the mask set came over too.
	text := logText(got)
	if !strings.Contains(text, "echo "+storage.Mask) || !strings.Contains(text, "taken over by worker b") {
		t.Errorf("logs:\n%s", text)
	}
	all, _ := json.Marshal(got)
	if bytes.Contains(all, []byte(marker)) {
		t.Errorf("the execution shows the sensitive value: %s", all)
	}
	noMarkerInObjects(t, p, marker)
}

// holding reports whether execution id's first hold task run is running.
func holding(t *testing.T, p testpair.Pair, id string) bool {
	t.Helper()
	ex, err := p.DB.GetExecution(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range ex.TaskRuns {
		if tr.TaskID == "hold" && tr.State == engine.RUNNING {
			return true
		}
	}
	return false
}

func equalStates(got []engine.State, want ...engine.State) bool {
	return fmt.Sprint(got) == fmt.Sprint(want)
}
