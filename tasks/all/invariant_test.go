package all_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// markerFlow sends the marker through every task property and template
// function that can fail on a value. Each task may fail: the flow goes on.
const markerFlow = `
id: i5
namespace: company.team
inputs:
  - {id: m, type: STRING}
  - {id: doc, type: STRING}
  - {id: broken, type: STRING}
tasks:
  - {id: set_text, type: io.kestra.plugin.core.kv.Set, key: text, value: "{{ inputs.m }}"}
  - {id: as_number, type: io.kestra.plugin.core.kv.Set, key: n, value: "{{ inputs.m }}", kvType: NUMBER, allowFailure: true}
  - {id: as_boolean, type: io.kestra.plugin.core.kv.Set, key: n, value: "{{ inputs.m }}", kvType: BOOLEAN, allowFailure: true}
  - {id: as_datetime, type: io.kestra.plugin.core.kv.Set, key: n, value: "{{ inputs.m }}", kvType: DATETIME, allowFailure: true}
  - {id: as_date, type: io.kestra.plugin.core.kv.Set, key: n, value: "{{ inputs.m }}", kvType: DATE, allowFailure: true}
  - {id: as_duration, type: io.kestra.plugin.core.kv.Set, key: n, value: "{{ inputs.m }}", kvType: DURATION, allowFailure: true}
  - {id: as_json, type: io.kestra.plugin.core.kv.Set, key: n, value: "{{ inputs.m }}", kvType: JSON, allowFailure: true}
  - {id: broken_as_json, type: io.kestra.plugin.core.kv.Set, key: n, value: "{{ inputs.broken }}", kvType: JSON, allowFailure: true}
  - {id: map_as_number, type: io.kestra.plugin.core.kv.Set, key: n, value: "{{ fromJson(inputs.doc) }}", kvType: NUMBER, allowFailure: true}
  - {id: overwrite, type: io.kestra.plugin.core.kv.Set, key: n, value: v, overwrite: "{{ inputs.m }}", allowFailure: true}
  - {id: from_json, type: io.kestra.plugin.core.log.Log, message: "{{ fromJson(inputs.m) }}", allowFailure: true}
  - {id: json, type: io.kestra.plugin.core.log.Log, message: "{{ json(inputs.broken) }}", allowFailure: true}
  - {id: return_json, type: io.kestra.plugin.core.debug.Return, format: "{{ json(inputs.m) }}", allowFailure: true}
  - {id: increment_by, type: io.kvflow.kv.Increment, key: c, by: "{{ inputs.m }}", allowFailure: true}
  - {id: increment_text, type: io.kvflow.kv.Increment, key: text, allowFailure: true}
  - {id: get_missing, type: io.kestra.plugin.core.kv.Get, key: text, errorOnMissing: "{{ inputs.m }}", allowFailure: true}
  - {id: delete_missing, type: io.kestra.plugin.core.kv.Delete, key: text, errorOnMissing: "{{ inputs.m }}", allowFailure: true}
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ inputs.m }}"
    allowFailure: true
    tasks: [{id: inner, type: io.kestra.plugin.core.log.Log, message: hi}]
  - id: each_broken
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ inputs.broken }}"
    allowFailure: true
    tasks: [{id: inner2, type: io.kestra.plugin.core.log.Log, message: hi}]
  - {id: concurrency, type: io.kestra.plugin.core.flow.Parallel, concurrency: "{{ inputs.m }}", allowFailure: true, tasks: [{id: p, type: io.kestra.plugin.core.log.Log, message: hi}]}
  - {id: last, type: io.kestra.plugin.core.kv.Set, key: n, value: "{{ inputs.m }}", kvType: NUMBER}
errors:
  - {id: alert, type: io.kestra.plugin.core.log.Log, message: "failed: {{ execution.error }}"}
`

// Invariant I5 through error messages: a value that makes tasks and template
// functions fail reaches task_runs.error, execution_logs.message and
// executions.error only as a type, a size and a hash prefix. Every table of
// both databases is dumped and searched for the marker.
func TestInvariant5_ErrorMessagesNeverQuoteAValue(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			const marker = "MARKER-5e2d9a"
			ctx := context.Background()
			e := engine.New(engine.Options{Store: p.Store, Repo: p.DB})
			t.Cleanup(func() { e.Shutdown(context.Background()) })
			flow, err := engine.Parse("i5.yaml", []byte(markerFlow), plugin.Default)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := e.Run(ctx, flow, map[string]any{
				"m":      marker,
				"doc":    `{"secret": "` + marker + `"}`,
				"broken": `{"secret": "` + marker + `", `,
			}, engine.RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ex.State != engine.FAILED {
				t.Fatalf("state = %s, want FAILED (the last task fails)", ex.State)
			}
			failed := map[string]string{}
			for _, tr := range ex.TaskRuns {
				if tr.Error != "" {
					failed[tr.TaskID] = tr.Error
				}
			}
			for _, id := range []string{"as_number", "as_boolean", "as_datetime", "as_date", "as_duration", "as_json", "broken_as_json",
				"map_as_number", "overwrite", "from_json", "json", "return_json", "increment_by", "increment_text",
				"get_missing", "delete_missing", "each", "each_broken", "concurrency", "last"} {
				if failed[id] == "" {
					t.Errorf("task %s did not fail, so it proves nothing", id)
				}
			}
			// Inputs of the wrong type are refused with the same care.
			intFlow, err := engine.Parse("int.yaml", []byte("id: ints\nnamespace: company.team\ninputs: [{id: n, type: INT}, {id: j, type: JSON}, {id: d, type: DATETIME}]\ntasks: [{id: l, type: io.kestra.plugin.core.log.Log, message: x}]\n"), plugin.Default)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Run(ctx, intFlow, map[string]any{"n": marker, "j": "{" + marker, "d": marker}, engine.RunOptions{})
			if err == nil || strings.Contains(err.Error(), marker) {
				t.Errorf("inputs of the wrong type: %v", err)
			}

			dump := p.Dump(t)
			if strings.Contains(dump, marker) {
				for _, line := range strings.Split(dump, "\n") {
					if strings.Contains(line, marker) {
						t.Errorf("the marker reached the database: %s", line)
					}
				}
			}
			for _, want := range []string{"is not a valid NUMBER", "sha256:", "fromJson", "Cannot increment"} {
				if !strings.Contains(dump, want) {
					t.Errorf("the dump lacks %q: the errors were not stored, so it proves nothing\n%s", want, dump)
				}
			}
		})
	}
}
