package riverqueue_test

import (
	"encoding/json"
	"fmt"
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
	}{{"postgres", 2, 40}, {"embedded", 1, 15}} {
		t.Run(tc.backend, func(t *testing.T) {
			c := newCluster(t, tc.backend)
			var servers []*proc
			for i := range tc.servers {
				servers = append(servers, c.start(fmt.Sprintf("server%d", i), "server", "--workers", "2"))
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
			c.start("restarted", "server", "--workers", "2")

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
