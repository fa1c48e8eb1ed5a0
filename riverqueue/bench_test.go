package riverqueue_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/xid"
)

const twoTaskFlow = `id: two
namespace: bench
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: "hello {{ execution.id }}"}
  - {id: set, type: io.kestra.plugin.core.kv.Set, key: last, value: "{{ execution.id }}"}
triggers:
  - {id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: bench-key-123}
`

// kvTriggerFlow runs once per change of bench/tick.
const kvTriggerFlow = `id: onkv
namespace: bench
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: "tick v{{ trigger.version }}"}
triggers:
  - {id: tick, type: io.kvflow.kv.Trigger, key: tick, on: [SET]}
`

// scheduleFlows flows tick every second, at the same moments, so b.N ticks
// take b.N/scheduleFlows seconds.
const scheduleFlows = 5

// benchScheduleFlow is the tests' scheduleFlow, as tick<i> in bench.
func benchScheduleFlow(i int) string {
	return strings.NewReplacer("id: tick\n", fmt.Sprintf("id: tick%d\n", i), "namespace: company.team", "namespace: bench").Replace(scheduleFlow)
}

func fortyLogFlow() string {
	var b strings.Builder
	b.WriteString("id: forty\nnamespace: bench\ntasks:\n")
	for i := range 40 {
		fmt.Fprintf(&b, "  - {id: l%d, type: io.kestra.plugin.core.log.Log, message: \"line %d\"}\n", i, i)
	}
	return b.String()
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[int(float64(len(s)-1)*p)].Microseconds()) / 1000
}

// xacts reads the database's committed transactions (each autocommit
// statement is one) and rows written, from PostgreSQL's statistics.
func xacts(tb testing.TB, db *sql.DB) (commits, rows int64) {
	time.Sleep(1100 * time.Millisecond) // statistics are flushed about every second
	if _, err := db.Exec(`SELECT pg_stat_clear_snapshot()`); err != nil {
		tb.Fatal(err)
	}
	if err := db.QueryRow(`SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()`).Scan(&commits, &rows); err != nil {
		tb.Fatal(err)
	}
	return commits, rows
}

// BenchmarkDurable measures issue 10's figures on PostgreSQL + MinIO
// against a floor in the same run (the rows an execution needs, written
// directly in one transaction), in four layouts: "1proc", one server running
// the executions it creates; "3server", three such servers, the clients
// spread over them; "1worker" and "3proc", an API-only server and one or
// three worker processes, every execution going through the queue.
// Run: go test ./riverqueue -run '^$' -bench Durable -benchtime 100x
func BenchmarkDurable(b *testing.B) {
	for _, layout := range []string{"1proc", "3server", "1worker", "3proc"} {
		b.Run(layout, func(b *testing.B) { // each layout's processes stop at its end
			c := newCluster(b, "postgres")
			switch layout {
			case "1proc":
				c.start("server", "server", "--workers", "8")
			case "3server":
				for i := range 3 {
					c.start(fmt.Sprintf("server%d", i), "server", "--workers", "4")
				}
			default:
				c.start("api", "server", "--workers", "0")
				workers := 3
				if layout == "1worker" {
					workers = 1
				}
				for i := range workers {
					c.start(fmt.Sprintf("worker%d", i), "worker", "--workers", fmt.Sprint(12/workers))
				}
			}
			c.createFlow(twoTaskFlow)
			c.createFlow(fortyLogFlow())
			c.createFlow(kvTriggerFlow)
			db, err := sql.Open("postgres", c.db)
			if err != nil {
				b.Fatal(err)
			}
			// Requests go to the servers in turn; client i of several keeps to
			// server i mod the number of servers.
			var turn atomic.Int64
			next := func() *cluster { return c.at(c.apis[int(turn.Add(1))%len(c.apis)]) }
			runAt := func(at *cluster, flow string) time.Duration {
				start := time.Now()
				if ex := at.execute("bench", flow, "?wait=true"); ex.State != "SUCCESS" {
					b.Fatalf("%s ended %s", flow, ex.State)
				}
				return time.Since(start)
			}
			run := func(flow string) time.Duration { return runAt(next(), flow) }
			for range 20 { // warm up
				run("two")
			}
			if layout == "1proc" {
				b.Run("floor_2task_direct", func(b *testing.B) {
					var lat []time.Duration
					for b.Loop() {
						start := time.Now()
						id := xid.New().String()
						tx, err := db.Begin()
						if err != nil {
							b.Fatal(err)
						}
						now := time.Now().UnixMicro()
						_, err = tx.Exec(`INSERT INTO executions (id, namespace, flow_id, state, started_at) VALUES ($1, 'bench', 'floor', 'CREATED', $2)`, id, now)
						if err == nil {
							_, err = tx.Exec(`INSERT INTO task_runs (id, execution_id, seq, task_id, state, started_at) VALUES ($1, $2, 0, 'log', 'SUCCESS', $3), ($4, $2, 1, 'set', 'SUCCESS', $3)`, xid.New().String(), id, now, xid.New().String())
						}
						if err == nil {
							_, err = tx.Exec(`INSERT INTO execution_logs (execution_id, task_id, task_run_id, time, level, message) VALUES ($1, 'log', '', $2, 'INFO', 'hello')`, id, now)
						}
						if err == nil {
							_, err = tx.Exec(`UPDATE executions SET state = 'SUCCESS', ended_at = $2 WHERE id = $1`, id, now)
						}
						if err != nil {
							b.Fatal(err)
						}
						if err := tx.Commit(); err != nil {
							b.Fatal(err)
						}
						lat = append(lat, time.Since(start))
					}
					b.ReportMetric(pct(lat, 0.5), "p50-ms")
					b.ReportMetric(pct(lat, 0.99), "p99-ms")
				})
			}
			b.Run("2task_1client", func(b *testing.B) {
				c0, r0 := xacts(b, db)
				var lat []time.Duration
				n := 0
				for b.Loop() {
					lat = append(lat, run("two"))
					n++
				}
				c1, r1 := xacts(b, db)
				b.ReportMetric(pct(lat, 0.5), "p50-ms")
				b.ReportMetric(pct(lat, 0.99), "p99-ms")
				// The pollers' own transactions are counted too: an upper bound.
				b.ReportMetric(float64(c1-c0)/float64(n), "xacts/exec")
				b.ReportMetric(float64(r1-r0)/float64(n), "rows/exec")
			})
			b.Run("2task_8clients", func(b *testing.B) {
				var mu sync.Mutex
				var lat []time.Duration
				clients := func(n int, record bool) time.Duration {
					jobs := make(chan struct{}, n)
					for range n {
						jobs <- struct{}{}
					}
					close(jobs)
					start := time.Now()
					var wg sync.WaitGroup
					for i := range 8 {
						wg.Add(1)
						at := c.at(c.apis[i%len(c.apis)])
						go func() {
							defer wg.Done()
							for range jobs {
								d := runAt(at, "two")
								if record {
									mu.Lock()
									lat = append(lat, d)
									mu.Unlock()
								}
							}
						}()
					}
					wg.Wait()
					return time.Since(start)
				}
				// Warmed up by 8 clients first: the processes' connection pools
				// grow to the load (each new PostgreSQL connection forks a
				// backend), which otherwise weighs on a short run.
				clients(200, false)
				b.ResetTimer()
				took := clients(b.N, true)
				b.ReportMetric(float64(b.N)/took.Minutes(), "exec/min")
				b.ReportMetric(pct(lat, 0.5), "p50-ms")
				b.ReportMetric(pct(lat, 0.99), "p99-ms")
			})
			b.Run("40log_1client", func(b *testing.B) {
				var lat []time.Duration
				for b.Loop() {
					lat = append(lat, run("forty"))
				}
				b.ReportMetric(pct(lat, 0.5), "p50-ms")
				b.ReportMetric(pct(lat, 0.99), "p99-ms")
			})
			b.Run("webhook_to_running", func(b *testing.B) {
				var lat []time.Duration
				for b.Loop() {
					sent := time.Now()
					r := c.do("POST", "/api/v1/executions/webhook/bench/two/bench-key-123", `{"n": 1}`, "Content-Type: application/json")
					var ex execution
					if r.Status != 200 || json.Unmarshal([]byte(r.Body), &ex) != nil {
						b.Fatalf("webhook: %d %s", r.Status, r.Body)
					}
					lat = append(lat, firstTaskStart(b, c, ex.ID).Sub(sent))
				}
				b.ReportMetric(pct(lat, 0.5), "p50-ms")
				b.ReportMetric(pct(lat, 0.99), "p99-ms")
			})
			b.Run("kv_set_to_running", func(b *testing.B) {
				var lat []time.Duration
				seen := len(c.list("bench", "onkv"))
				for b.Loop() {
					if r := c.do("PUT", "/api/v1/namespaces/bench/kv/tick", `1`, "Content-Type: application/json"); r.Status != 200 {
						b.Fatalf("PUT tick: %d %s", r.Status, r.Body)
					}
					acked := time.Now()
					var list []execution
					for list = c.list("bench", "onkv"); len(list) == seen; list = c.list("bench", "onkv") {
						time.Sleep(2 * time.Millisecond)
					}
					if len(list) != seen+1 {
						b.Fatalf("%d executions for one change", len(list)-seen)
					}
					seen++
					lat = append(lat, max(0, firstTaskStart(b, c, list[0].ID).Sub(acked)))
				}
				b.ReportMetric(pct(lat, 0.5), "p50-ms")
				b.ReportMetric(pct(lat, 0.99), "p99-ms")
			})
			// Last: the schedules tick on until the layout's processes stop
			// (through every -count).
			seen := map[string]bool{} // executions of the schedules measured
			b.Run("schedule_to_running", func(b *testing.B) {
				if len(seen) == 0 {
					for i := range scheduleFlows {
						c.createFlow(benchScheduleFlow(i))
					}
				}
				var lat []time.Duration
				var queue []string
				for b.Loop() {
					for len(queue) == 0 {
						for i := range scheduleFlows {
							for _, ex := range c.list("bench", fmt.Sprintf("tick%d", i)) {
								if !seen[ex.ID] {
									seen[ex.ID] = true
									queue = append(queue, ex.ID)
								}
							}
						}
						time.Sleep(20 * time.Millisecond)
					}
					id := queue[0]
					queue = queue[1:]
					start := firstTaskStart(b, c, id)
					var date string
					if tr := c.execution(id).Trigger; tr != nil {
						date, _ = tr.Variables["date"].(string)
					}
					tick, err := time.Parse(time.RFC3339Nano, date)
					if err != nil {
						b.Fatalf("execution %s: trigger.date %q: %v", id, date, err)
					}
					lat = append(lat, start.Sub(tick))
				}
				b.ReportMetric(pct(lat, 0.5), "p50-ms")
				b.ReportMetric(pct(lat, 0.99), "p99-ms")
			})
			db.Close()
		})
	}
}

// firstTaskStart waits for an execution's success and returns when its
// first task started: when it was RUNNING.
func firstTaskStart(b *testing.B, c *cluster, id string) time.Time {
	var full struct {
		State    string `json:"state"`
		TaskRuns []struct {
			Start time.Time `json:"startDate"`
		} `json:"taskRuns"`
	}
	for {
		json.Unmarshal([]byte(c.do("GET", "/api/v1/executions/"+id, "").Body), &full)
		if full.State == "SUCCESS" {
			return full.TaskRuns[0].Start
		}
		if full.State == "FAILED" || full.State == "KILLED" {
			b.Fatalf("execution %s ended %s", id, full.State)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
