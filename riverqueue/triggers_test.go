package riverqueue_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

const scheduleFlow = `id: tick
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "tick {{ trigger.date }}"
triggers:
  - id: every_second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
`

// tickDates returns the trigger.date of every execution of the tick flow,
// failing on a duplicate.
func tickDates(c *cluster) map[string]bool {
	c.t.Helper()
	dates := map[string]bool{}
	for _, ex := range c.list("company.team", "tick") {
		full := c.execution(ex.ID)
		if full.Trigger == nil || full.Trigger.ID != "every_second" {
			c.t.Fatalf("execution %s has trigger %+v", ex.ID, full.Trigger)
		}
		d, _ := full.Trigger.Variables["date"].(string)
		if d == "" || dates[d] {
			c.t.Fatalf("tick %q fired twice or has no date", d)
		}
		dates[d] = true
	}
	return dates
}

// A schedule every second on three server processes for a few seconds
// fires once per tick; stopped for 5 s, the restarted servers run one
// catch-up execution for the ticks missed, not a burst.
func TestSchedule_ThreeServers_OncePerTick_OneCatchUp(t *testing.T) {
	for _, backend := range []string{"postgres", "embedded"} {
		t.Run(backend, func(t *testing.T) {
			c := newCluster(t, backend)
			c.start("api", "server", "--workers", "0") // reads; runs no schedule
			var servers []*proc
			for i := range 3 {
				servers = append(servers, c.start("server"+string(rune('0'+i)), "server", "--workers", "2"))
			}
			c.createFlow(scheduleFlow)
			time.Sleep(6 * time.Second)
			for _, s := range servers {
				s.stop(t)
			}
			stopped := time.Now().UTC()
			c.waitAll("company.team", "tick", 1, 10*time.Second)
			before := tickDates(c)
			if len(before) < 3 || len(before) > 7 {
				t.Fatalf("%d ticks fired in about 6 s, want about 5", len(before))
			}
			time.Sleep(5 * time.Second)
			// Restart just after a tick, so the servers are up before the next one:
			// the catch-up is then a missed tick, not one due after the restart.
			now := time.Now()
			time.Sleep(now.Truncate(time.Second).Add(time.Second + 20*time.Millisecond).Sub(now))
			restarted := time.Now().UTC()
			for i := range 3 {
				c.start("again"+string(rune('0'+i)), "server", "--workers", "2")
			}
			time.Sleep(2500 * time.Millisecond)
			after := tickDates(c)
			missed := 0
			for d := range after {
				tm, err := time.Parse(time.RFC3339Nano, d)
				if err != nil {
					t.Fatal(err)
				}
				if !before[d] && tm.After(stopped) && tm.Before(restarted) {
					missed++
				}
			}
			if missed != 1 {
				t.Fatalf("%d executions for the ticks missed while stopped, want 1 catch-up", missed)
			}
		})
	}
}

const chainFlows = `id: a
namespace: company.team
inputs:
  - {id: fail, type: BOOLEAN, defaults: false}
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.fail }}"
    then:
      - {id: boom, type: io.kestra.plugin.core.kv.Get, key: missing, errorOnMissing: true}
outputs:
  - {id: answer, value: "42"}
`

const chainB = `id: b
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "after {{ trigger.executionId }} {{ trigger.state }} {{ trigger.outputs.answer }}"
triggers:
  - id: after_a
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: company.team, flowId: a}
      - {type: io.kestra.plugin.core.condition.ExecutionStatus, in: [SUCCESS]}
`

const hookFlow = `id: hook
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{% set src = trigger.headers['x-source'] %}got {{ trigger.body.name }} via {{ src[0] }}"
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cr3t-key-123
`

// Flow triggers chain A → B on SUCCESS only; a webhook starts an execution
// with its body and headers, and a wrong key is a plain 404; concurrency
// QUEUE runs one at a time, CANCEL and FAIL end the extra ones.
func TestTriggers_FlowWebhookConcurrency(t *testing.T) {
	for _, backend := range []string{"postgres", "embedded"} {
		t.Run(backend, func(t *testing.T) {
			c := newCluster(t, backend)
			c.start("server", "server", "--workers", "4", "--token", "tok")
			auth := "Authorization: Bearer tok"
			for _, src := range []string{chainFlows, chainB, hookFlow} {
				if r := c.do("POST", "/api/v1/flows", src, "Content-Type: application/x-yaml", auth); r.Status != 201 {
					t.Fatalf("create flow: %d %s", r.Status, r.Body)
				}
			}
			time.Sleep(1100 * time.Millisecond) // the trigger loops read flows every second
			get := func(path string) response { return c.do("GET", path, "", auth) }
			run := func(flow, body string) execution {
				r := c.do("POST", "/api/v1/executions/company.team/"+flow+"?wait=true", body, "Content-Type: application/json", auth)
				var ex execution
				if r.Status != 200 || json.Unmarshal([]byte(r.Body), &ex) != nil {
					t.Fatalf("run %s: %d %s", flow, r.Status, r.Body)
				}
				return ex
			}
			ok := run("a", `{}`)
			bad := run("a", `{"fail": true}`)
			if ok.State != "SUCCESS" || bad.State != "FAILED" {
				t.Fatalf("a ended %s and %s", ok.State, bad.State)
			}
			var bs []execution
			deadline := time.Now().Add(15 * time.Second)
			for {
				r := get("/api/v1/executions?namespace=company.team&flowId=b")
				json.Unmarshal([]byte(r.Body), &bs)
				if (len(bs) == 1 && bs[0].State == "SUCCESS") || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(bs) != 1 || bs[0].State != "SUCCESS" {
				t.Fatalf("b executions: %+v, want one SUCCESS (after a's SUCCESS only)", bs)
			}
			if logs := get("/api/v1/executions/" + bs[0].ID + "/logs").Body; !strings.Contains(logs, "after "+ok.ID+" SUCCESS 42") {
				t.Fatalf("b's logs: %s", logs)
			}

			// Webhook: no token needed, the key is the secret.
			r := c.do("POST", "/api/v1/executions/webhook/company.team/hook/s3cr3t-key-123", `{"name": "Ada"}`, "Content-Type: application/json", "X-Source: test")
			var hx execution
			if r.Status != 200 || json.Unmarshal([]byte(r.Body), &hx) != nil {
				t.Fatalf("webhook = %d %s", r.Status, r.Body)
			}
			for _, bad := range []string{"/hook/wrong-key-123", "/nope/s3cr3t-key-123"} {
				if r := c.do("POST", "/api/v1/executions/webhook/company.team"+bad, `{}`); r.Status != 404 || !strings.Contains(r.Body, "No webhook at this address") {
					t.Fatalf("webhook %s = %d %s, want the same 404", bad, r.Status, r.Body)
				}
			}
			deadline = time.Now().Add(10 * time.Second)
			for {
				r := get("/api/v1/executions/" + hx.ID)
				json.Unmarshal([]byte(r.Body), &hx)
				if hx.State == "SUCCESS" || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if logs := get("/api/v1/executions/" + hx.ID + "/logs").Body; hx.State != "SUCCESS" || !strings.Contains(logs, "got Ada via test") {
				t.Fatalf("webhook execution %s: %s", hx.State, logs)
			}

			// Concurrency.
			for _, behavior := range []string{"QUEUE", "CANCEL", "FAIL"} {
				id := "conc_" + strings.ToLower(behavior)
				src := "id: " + id + "\nnamespace: company.team\nconcurrency: {limit: 1, behavior: " + behavior + "}\ntasks:\n" +
					"  - {id: w, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.4S}\n"
				if r := c.do("POST", "/api/v1/flows", src, "Content-Type: application/x-yaml", auth); r.Status != 201 {
					t.Fatalf("create %s: %d %s", id, r.Status, r.Body)
				}
				for range 3 {
					if r := c.do("POST", "/api/v1/executions/company.team/"+id, "", auth); r.Status != 200 {
						t.Fatalf("execute %s: %d %s", id, r.Status, r.Body)
					}
				}
				var list []execution
				deadline := time.Now().Add(20 * time.Second)
				for {
					json.Unmarshal([]byte(get("/api/v1/executions?namespace=company.team&flowId="+id).Body), &list)
					over := 0
					for _, ex := range list {
						if ex.State != "CREATED" && ex.State != "RUNNING" {
							over++
						}
					}
					if over == 3 || time.Now().After(deadline) {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				states := map[string]int{}
				var spans [][2]time.Time
				for _, ex := range list {
					states[ex.State]++
					var full struct {
						TaskRuns []struct {
							Start time.Time  `json:"startDate"`
							End   *time.Time `json:"endDate"`
						} `json:"taskRuns"`
					}
					json.Unmarshal([]byte(get("/api/v1/executions/"+ex.ID).Body), &full)
					if ex.State == "SUCCESS" && len(full.TaskRuns) == 1 && full.TaskRuns[0].End != nil {
						spans = append(spans, [2]time.Time{full.TaskRuns[0].Start, *full.TaskRuns[0].End})
					}
				}
				switch behavior {
				case "QUEUE":
					if states["SUCCESS"] != 3 {
						t.Fatalf("QUEUE: states %v, want 3 SUCCESS", states)
					}
					for i := range spans {
						for j := range spans {
							if i != j && spans[i][0].Before(spans[j][1]) && spans[j][0].Before(spans[i][1]) {
								t.Fatalf("QUEUE with limit 1: runs overlap: %v and %v", spans[i], spans[j])
							}
						}
					}
				case "CANCEL":
					if states["SUCCESS"] != 1 || states["KILLED"] != 2 {
						t.Fatalf("CANCEL: states %v, want 1 SUCCESS and 2 KILLED (all three created while the first ran)", states)
					}
				case "FAIL":
					if states["SUCCESS"] != 1 || states["FAILED"] != 2 {
						t.Fatalf("FAIL: states %v, want 1 SUCCESS and 2 FAILED", states)
					}
				}
			}
		})
	}
}

// queueFlow appends its input to a KV string: with limit 1 and QUEUE the
// read-modify-write is safe, and the string shows the order of the runs.
const queueFlow = `id: fifo
namespace: company.team
concurrency: {limit: 1, behavior: QUEUE}
inputs:
  - {id: i, type: INT}
tasks:
  - id: append
    type: io.kestra.plugin.core.kv.Set
    key: order
    value: "{{ kv('order', default='') }}{{ inputs.i }},"
`

// Executions a QUEUE limit holds back run in the order they were created,
// as Kestra's queue runs them, whichever of two processes' workers fetches
// their jobs first.
func TestConcurrency_Queue_RunsInCreationOrder(t *testing.T) {
	for _, backend := range []string{"postgres", "embedded"} {
		t.Run(backend, func(t *testing.T) {
			c := newCluster(t, backend)
			c.start("server", "server", "--workers", "4")
			c.start("worker", "worker", "--workers", "4")
			c.createFlow(queueFlow)
			const n = 12
			var want strings.Builder
			for i := 1; i <= n; i++ {
				r := c.do("POST", "/api/v1/executions/company.team/fifo", fmt.Sprintf(`{"i": %d}`, i), "Content-Type: application/json")
				if r.Status != 200 {
					t.Fatalf("execute %d: %d %s", i, r.Status, r.Body)
				}
				fmt.Fprintf(&want, "%d,", i)
			}
			for _, ex := range c.waitAll("company.team", "fifo", n, 60*time.Second) {
				if ex.State != "SUCCESS" {
					t.Fatalf("execution %s: %s %s", ex.ID, ex.State, c.logs(ex.ID))
				}
			}
			r := c.do("GET", "/api/v1/namespaces/company.team/kv/order", "")
			var got struct{ Value string }
			if r.Status != 200 || json.Unmarshal([]byte(r.Body), &got) != nil {
				t.Fatalf("kv order: %d %s", r.Status, r.Body)
			}
			if got.Value != want.String() {
				t.Fatalf("runs in order %q, want creation order %q", got.Value, want.String())
			}
		})
	}
}
