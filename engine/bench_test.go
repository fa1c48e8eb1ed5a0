package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	_ "github.com/kvflow/kvflow/tasks/all"
)

// benchEngine is an engine with the built-in tasks on SQLite + a directory,
// recording executions and logs as kvflow run does.
func benchEngine(b *testing.B) (*engine.Engine, testpair.Pair) {
	p := testpair.Local(b, storage.Options{})
	e := engine.New(engine.Options{Store: p.Store, Bucket: p.Bucket, Repo: p.DB})
	b.Cleanup(func() { e.Shutdown(context.Background()) })
	return e, p
}

func benchFlow(b *testing.B, src string) *engine.Flow {
	f, err := engine.Parse("bench.yaml", []byte(src), plugin.Default)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// Engine overhead per task: a flow of 100 Log tasks, each rendering a
// template, with its execution, task runs and logs saved.
func BenchmarkEngine_100LogTasks(b *testing.B) {
	var src strings.Builder
	src.WriteString("id: logs\nnamespace: bench\ntasks:\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&src, "  - id: log%d\n    type: io.kestra.plugin.core.log.Log\n    message: \"line %d of {{ flow.id }}\"\n", i, i)
	}
	e, _ := benchEngine(b)
	flow := benchFlow(b, src.String())
	ctx := context.Background()
	for b.Loop() {
		ex, err := e.Run(ctx, flow, nil, engine.RunOptions{})
		if err != nil || ex.State != engine.SUCCESS {
			b.Fatalf("%v %v", ex.State, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/100, "µs/task")
}

// Engine overhead per task with KV work: a flow of 100 Set/Get pairs,
// against the storage floor of the same 100 Set and Get calls made directly
// on the Store in the same run. overhead-µs/task is (flow − floor) / 200.
func BenchmarkEngine_100SetGetPairs(b *testing.B) {
	var src strings.Builder
	src.WriteString("id: setget\nnamespace: bench\ntasks:\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&src, "  - id: set%d\n    type: io.kestra.plugin.core.kv.Set\n    key: k%d\n    value: \"{{ flow.id }}-%d\"\n", i, i, i)
		fmt.Fprintf(&src, "  - id: get%d\n    type: io.kestra.plugin.core.kv.Get\n    key: k%d\n", i, i)
	}
	e, p := benchEngine(b)
	flow := benchFlow(b, src.String())
	ctx := context.Background()
	var inFlow, floor time.Duration
	for b.Loop() {
		start := time.Now()
		ex, err := e.Run(ctx, flow, nil, engine.RunOptions{})
		if err != nil || ex.State != engine.SUCCESS {
			b.Fatalf("%v %v %s", ex.State, err, ex.Error)
		}
		inFlow += time.Since(start)

		start = time.Now()
		for i := 0; i < 100; i++ {
			key := fmt.Sprintf("k%d", i)
			if _, err := p.Store.Set(ctx, "bench", key, storage.String(fmt.Sprintf("setget-%d", i)), storage.SetOptions{}); err != nil {
				b.Fatal(err)
			}
			if _, _, err := p.Store.Get(ctx, "bench", key); err != nil {
				b.Fatal(err)
			}
		}
		floor += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(float64(inFlow.Microseconds())/n/200, "flow-µs/task")
	b.ReportMetric(float64(floor.Microseconds())/n/200, "floor-µs/task")
	b.ReportMetric(float64((inFlow-floor).Microseconds())/n/200, "overhead-µs/task")
}

// Parsing a flow of 100 tasks.
func BenchmarkParse_100Tasks(b *testing.B) {
	var src strings.Builder
	src.WriteString("id: parse\nnamespace: bench\ntasks:\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&src, "  - id: set%d\n    type: io.kestra.plugin.core.kv.Set\n    key: k%d\n    value: \"{{ flow.id }}\"\n    ttl: PT5M\n", i, i)
	}
	data := []byte(src.String())
	for b.Loop() {
		if _, err := engine.Parse("bench.yaml", data, plugin.Default); err != nil {
			b.Fatal(err)
		}
	}
}
