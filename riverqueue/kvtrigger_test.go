package riverqueue_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const kvWatchFlow = `id: on_change
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.change }} {{ trigger.key }} v{{ trigger.version }} = {{ trigger.value ?? 'none' }}"
triggers:
  - id: watch
    type: io.kvflow.kv.Trigger
    prefix: w
    on: [SET, DELETE]
`

// A KV trigger starts exactly one execution per matching change: 4
// concurrent writers make the changes while one of the servers is killed
// with SIGKILL and another started; the triggered (key, version, change)
// set equals the change feed's, with no duplicate.
func TestKVTrigger_OncePerChange_AcrossSIGKILL(t *testing.T) {
	for _, tc := range []struct {
		backend string
		servers int
		writes  int // per writer
	}{{"postgres", 2, 40}, {"embedded", 1, 15}, {"embedded", 2, 15}} {
		// Two embedded servers share one SQLite file: one holds its journal,
		// the other commits without it, both counting their commits.
		t.Run(fmt.Sprintf("%s_%dservers", tc.backend, tc.servers), func(t *testing.T) {
			c := newCluster(t, tc.backend)
			var servers []*proc
			for i := range tc.servers {
				servers = append(servers, c.start(fmt.Sprintf("server%d", i), "server", "--workers", "2", "--heartbeat-timeout", "3s"))
			}
			c.createFlow(kvWatchFlow)
			time.Sleep(300 * time.Millisecond) // the trigger loops read the new flow
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range tc.writes {
						key := fmt.Sprintf("w%d-%d", w, i%5)
						if r := c.do("PUT", "/api/v1/namespaces/company.team/kv/"+key, fmt.Sprint(i), "Content-Type: application/json"); r.Status != 200 {
							t.Errorf("PUT %s: %d %s", key, r.Status, r.Body)
							return
						}
						if i%7 == 6 {
							c.do("DELETE", "/api/v1/namespaces/company.team/kv/"+key, "")
						}
						c.do("PUT", "/api/v1/namespaces/company.team/kv/other", "1", "Content-Type: application/json") // no match
					}
				}()
			}
			victim := servers[len(servers)-1]
			if len(servers) > 1 {
				time.Sleep(time.Second)
				victim.kill9(t) // mid-way, while the others go on
				wg.Wait()
			} else {
				wg.Wait()
				victim.kill9(t) // with changes read and not yet fired
				c.api = ""
			}
			c.start("restarted", "server", "--workers", "2", "--heartbeat-timeout", "3s")

			var changes []struct {
				Key     string `json:"key"`
				Change  string `json:"change"`
				Version int64  `json:"version"`
			}
			r := c.do("GET", "/api/v1/namespaces/company.team/kv/changes?since=0&limit=1000", "")
			if r.Status != 200 || json.Unmarshal([]byte(r.Body), &changes) != nil {
				t.Fatalf("changes: %d %s", r.Status, r.Body)
			}
			want := map[string]bool{}
			for _, ch := range changes {
				if ch.Key != "other" && (ch.Change == "SET" || ch.Change == "DELETE") {
					want[fmt.Sprintf("%s %s v%d", ch.Change, ch.Key, ch.Version)] = true
				}
			}
			list := c.waitAll("company.team", "on_change", len(want), 90*time.Second)
			got := map[string]bool{}
			for _, ex := range list {
				full := c.execution(ex.ID)
				if full.State != "SUCCESS" || full.Trigger == nil {
					t.Fatalf("execution %s: %s, trigger %+v", ex.ID, full.State, full.Trigger)
				}
				v := full.Trigger.Variables
				k := fmt.Sprintf("%v %v v%v", v["change"], v["key"], v["version"])
				if got[k] {
					t.Errorf("change %s started two executions", k)
				}
				got[k] = true
				if v["change"] == "SET" && v["value"] == nil {
					t.Errorf("change %s has no trigger.value", k)
				}
			}
			for k := range want {
				if !got[k] {
					t.Errorf("change %s started no execution", k)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d executions for %d matching changes", len(got), len(want))
			}
		})
	}
}

// An idle store costs the KV triggers one statement a poll, however many
// triggers there are: each poll reads the feeds' heads at once and reads a
// feed only when it moved, once for the triggers at one position. With 20
// triggers (two namespaces) an idle server made 911 transactions a second
// when each trigger read its feed every poll, and a change 10 more (one
// per trigger on its namespace). A trigger out of
// its flow's reach is reported once. A change then still fires every
// trigger that matches it, and only those.
// kvPollForTest is engine.kvPoll: how often the KV triggers poll.
const kvPollForTest = 50 * time.Millisecond

func TestKVTrigger_FeedsReadOncePerPoll(t *testing.T) {
	c := newCluster(t, "postgres")
	// Out of its flow's reach: refused, with one warning, not one a poll.
	// The API refuses to deploy it; the operator's flows directory does not.
	flows := t.TempDir()
	if err := os.WriteFile(filepath.Join(flows, "refused.yaml"), []byte(`id: refused
namespace: company.team
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: "{{ trigger.key }}"}
triggers:
  - {id: watch, type: io.kvflow.kv.Trigger, namespace: company.ops}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	server := c.start("server", "server", "--workers", "4", "--flows", flows)
	for i := range 20 {
		ns := []string{"company.team", "company"}[i%2]
		c.createFlow(fmt.Sprintf(`id: idle%d
namespace: company.team
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: "{{ trigger.key }}"}
triggers:
  - {id: watch, type: io.kvflow.kv.Trigger, namespace: %s, key: k%d}
`, i, ns, i%4))
	}
	db, err := sql.Open("postgres", c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	time.Sleep(2 * time.Second) // the loops read the flows and start their feeds
	before, _ := xacts(t, db)
	start := time.Now()
	time.Sleep(4 * time.Second)
	after, _ := xacts(t, db)
	rate := float64(after-before) / time.Since(start).Seconds()
	t.Logf("idle: %.0f transactions/s with 20 KV triggers", rate)
	// One head read a poll (20/s), plus River's and the other loops'.
	if rate > 120 {
		t.Errorf("idle server with 20 KV triggers: %.0f transactions/s; want the feeds read once a poll (under 120/s)", rate)
	}

	if n := strings.Count(server.output(), "KV trigger refused"); n != 1 {
		t.Errorf("the refused trigger was reported %d times; want once", n)
	}

	// Changes no trigger matches, one per poll or so: the 10 triggers on
	// company read each new change once between them.
	const writes = 100
	before, _ = xacts(t, db)
	start = time.Now()
	for i := range writes {
		if r := c.do("PUT", "/api/v1/namespaces/company/kv/nobody", fmt.Sprint(i), "Content-Type: application/json"); r.Status != 200 {
			t.Fatalf("PUT: %d %s", r.Status, r.Body)
		}
		time.Sleep(kvPollForTest)
	}
	after, _ = xacts(t, db)
	extra := (float64(after-before) - rate*time.Since(start).Seconds()) / writes
	t.Logf("%.1f transactions per unmatched change beyond the idle rate", extra)
	if extra > 5 {
		t.Errorf("%.1f transactions per change no trigger matches, beyond the idle rate; want its write and one feed read for the 10 triggers on its namespace (under 5)", extra)
	}

	// k1 in company: the triggers of flows 1, 5, 9, 13 and 17 match.
	if r := c.do("PUT", "/api/v1/namespaces/company/kv/k1", "1", "Content-Type: application/json"); r.Status != 200 {
		t.Fatalf("PUT: %d %s", r.Status, r.Body)
	}
	for i := 1; i < 20; i += 4 {
		if list := c.waitAll("company.team", fmt.Sprintf("idle%d", i), 1, 30*time.Second); len(list) != 1 {
			t.Errorf("flow idle%d: %d executions; want 1", i, len(list))
		}
	}
	for i := range 20 {
		if n := len(c.list("company.team", fmt.Sprintf("idle%d", i))); i%4 != 1 && n != 0 {
			t.Errorf("flow idle%d: %d executions; want none (its key did not change)", i, n)
		}
	}
}
