package engine_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// A schedule's first tick after its flow's save fires even when the
// trigger loops read the flow only after that tick (they read flows once a
// second; here they start 1.5 s after the save), and every tick after it
// fires once, in order.
func TestSchedule_FirstTickAfterTheSave_FiresThoughSeenLate(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			const src = `id: tick
namespace: company.team
tasks:
  - {id: echo, type: test.Echo, value: "{{ trigger.date }}"}
triggers:
  - {id: every_second, type: io.kestra.plugin.core.trigger.Schedule, cron: "* * * * * *", withSeconds: true}
`
			rec, err := p.DB.SaveFlow(ctx, kvflow.FlowRecord{Namespace: "company.team", ID: "tick", Source: src, Triggers: []string{engine.ScheduleTrigger}})
			if err != nil {
				t.Fatal(err)
			}
			first := rec.Updated.Truncate(time.Second).Add(time.Second)
			time.Sleep(1500 * time.Millisecond)
			e := engineOn(t, p)
			trig := engine.StartTriggers(e, p.DB, slog.New(slog.DiscardHandler))
			defer trig.Stop()

			var dates []time.Time
			for _, v := range echoed(t, p, e, "tick", 3, 15*time.Second) {
				d, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					t.Fatal(err)
				}
				dates = append(dates, d)
			}
			if len(dates) < 3 {
				t.Fatalf("ticks fired: %v", dates)
			}
			slices.SortFunc(dates, time.Time.Compare)
			if !dates[0].Equal(first) {
				t.Errorf("the first tick fired is %s; want %s, the first after the save at %s", dates[0], first, rec.Updated)
			}
			for i := 1; i < len(dates); i++ {
				if d := dates[i].Sub(dates[i-1]); d != time.Second {
					t.Errorf("ticks %s and %s fired one after the other: a tick was skipped or fired twice", dates[i-1], dates[i])
				}
			}
		})
	}
}
