package riverqueue_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const incrementFlow = `id: inc
namespace: company.team
tasks:
  - id: inc
    type: io.kvflow.kv.Increment
    key: counter
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "counter is {{ outputs.inc.value }}"
`

// submit creates n executions of ns/flow from 8 clients at once.
func submit(c *cluster, ns, flow string, n int) {
	c.t.Helper()
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c.execute(ns, flow, "")
			}
		}()
	}
	wg.Wait()
}

// Three worker processes and one API-only server: 300 executions of an
// Increment flow all succeed, the counter is exactly 300, and every
// execution ran on one worker, each task once.
func TestWorkers_ThreeProcesses_EachExecutionOnce(t *testing.T) {
	for _, tc := range []struct {
		backend string
		workers int
		n       int
	}{{"postgres", 3, 300}, {"embedded", 1, 60}} {
		t.Run(tc.backend, func(t *testing.T) {
			c := newCluster(t, tc.backend)
			c.start("api", "server", "--workers", "0")
			for i := range tc.workers {
				c.start(fmt.Sprintf("worker%d", i), "worker", "--workers", "4")
			}
			c.createFlow(incrementFlow)
			submit(c, "company.team", "inc", tc.n)
			list := c.waitAll("company.team", "inc", tc.n, 3*time.Minute)
			if len(list) != tc.n {
				t.Fatalf("%d executions listed, want %d", len(list), tc.n)
			}
			used := map[string]int{}
			for _, ex := range list {
				if ex.State != "SUCCESS" {
					t.Fatalf("execution %s ended %s: %s", ex.ID, ex.State, ex.Error)
				}
				full := c.execution(ex.ID)
				workers := map[string]bool{}
				for _, tr := range full.TaskRuns {
					if len(tr.Attempts) != 1 {
						t.Fatalf("execution %s task %s has %d attempts, want 1", ex.ID, tr.TaskID, len(tr.Attempts))
					}
					workers[tr.Attempts[0].Worker] = true
				}
				if len(workers) != 1 || len(full.TaskRuns) != 2 {
					t.Fatalf("execution %s ran on workers %v with %d task runs", ex.ID, workers, len(full.TaskRuns))
				}
				used[full.Worker]++
			}
			if got := c.kvNumber("company.team", "counter"); got != float64(tc.n) {
				t.Fatalf("counter = %v, want %d", got, tc.n)
			}
			if m := c.do("GET", "/metrics", "").Body; !strings.Contains(m, "kvflow_queue_depth 0") || !strings.Contains(m, "kvflow_executions_running 0") {
				t.Errorf("/metrics lacks an empty queue: %s", grepLines(m, "kvflow_queue_depth", "kvflow_executions_running"))
			}
			if len(used) != tc.workers {
				t.Errorf("executions ran on %d workers (%v), want %d", len(used), used, tc.workers)
			}
		})
	}
}

const longFlow = `id: long
namespace: company.team
tasks:
  - id: before
    type: io.kvflow.kv.Increment
    key: before
  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT4S
  - id: after
    type: io.kvflow.kv.Increment
    key: after
`

// A worker killed with SIGKILL in the middle of a long task: every
// execution ends, the ones it held are taken over after the heartbeat
// timeout, their interrupted task shows a second attempt, and the tasks
// that had finished did not run again (the counters say so).
func TestWorkers_SIGKILL_TakeoverKeepsFinishedTasks(t *testing.T) {
	c := newCluster(t, "postgres")
	c.start("api", "server", "--workers", "0")
	var workers []*proc
	var metrics []string // each worker's /metrics (no API there)
	for i := range 3 {
		addr := freeAddr(t)
		metrics = append(metrics, "http://"+addr+"/metrics")
		workers = append(workers, c.start(fmt.Sprintf("worker%d", i), "worker", "--workers", "4", "--heartbeat-timeout", "2s", "--metrics-addr", addr))
	}
	c.createFlow(longFlow)
	const n = 9
	submit(c, "company.team", "long", n)
	// Wait until every execution sleeps in 'wait', so each one's 'before'
	// has finished and been saved.
	victim, _ := waitSleeping(t, c, "long", n)
	var killed *proc
	for i, w := range workers {
		if strings.Contains(w.output(), victim) {
			killed = w
			if m := scrape(t, metrics[i]); !strings.Contains(m, `kvflow_worker_executions_running{worker="`+victim+`"} `) ||
				strings.Contains(m, `kvflow_worker_executions_running{worker="`+victim+`"} 0`) {
				t.Errorf("the victim's /metrics do not show its running executions:\n%s", m)
			}
			metrics = append(metrics[:i], metrics[i+1:]...)
		}
	}
	if killed == nil {
		t.Fatalf("no worker process is %s", victim)
	}
	killed.kill9(t)

	list := c.waitAll("company.team", "long", n, 60*time.Second)
	takenOver := 0
	for _, ex := range list {
		if ex.State != "SUCCESS" {
			t.Fatalf("execution %s ended %s: %s", ex.ID, ex.State, ex.Error)
		}
		full := c.execution(ex.ID)
		for _, tr := range full.TaskRuns {
			switch {
			case tr.TaskID == "wait" && tr.Attempts[0].Worker == victim:
				takenOver++
				if len(tr.Attempts) != 2 || tr.Attempts[0].State != "KILLED" || tr.Attempts[1].State != "SUCCESS" || tr.Attempts[1].Worker == victim {
					t.Errorf("execution %s: interrupted task attempts %+v, want KILLED on %s then SUCCESS elsewhere", ex.ID, tr.Attempts, victim)
				}
				if logs := c.logs(ex.ID); !strings.Contains(logs, "taken over") || !strings.Contains(logs, "attempt 2") {
					t.Errorf("execution %s: the logs do not tell the takeover: %s", ex.ID, logs)
				}
			case tr.TaskID != "wait" && len(tr.Attempts) != 1:
				t.Errorf("execution %s: task %s ran %d times", ex.ID, tr.TaskID, len(tr.Attempts))
			}
		}
	}
	if takenOver == 0 {
		t.Fatalf("no execution was taken over from %s", victim)
	}
	takeovers := 0
	for _, u := range metrics {
		var n int
		for _, line := range strings.Split(scrape(t, u), "\n") {
			if _, err := fmt.Sscanf(line, "kvflow_takeovers_total %d", &n); err == nil {
				takeovers += n
			}
		}
	}
	if takeovers != takenOver {
		t.Errorf("the surviving workers' kvflow_takeovers_total add up to %d, want %d", takeovers, takenOver)
	}
	if b, a := c.kvNumber("company.team", "before"), c.kvNumber("company.team", "after"); b != n || a != n {
		t.Fatalf("before = %v, after = %v, want %d each: a finished task ran again or one was lost", b, a, n)
	}
	t.Logf("%d of %d executions taken over from the killed worker", takenOver, n)
}

// pausedFlow has several tasks after its sleep, long enough for two tries
// of pauseUntilTakenOver.
const pausedFlow = `id: paused
namespace: company.team
tasks:
  - {id: before, type: io.kvflow.kv.Increment, key: p_before}
  - {id: wait, type: io.kestra.plugin.core.flow.Sleep, duration: PT10S}
  - {id: after, type: io.kvflow.kv.Increment, key: p_after}
  - {id: after2, type: io.kvflow.kv.Increment, key: p_after2}
`

// A worker paused (SIGSTOP) past the heartbeat timeout while its
// executions sleep is resumed (SIGCONT) after another worker took them over
// and ran them to their end: it must not run the tasks that follow the
// sleep again, though its sleeps end at once and nothing has told it yet.
func TestWorker_PausedPastTheHeartbeatTimeout_RunsNoTaskAgain(t *testing.T) {
	for _, backend := range []string{"postgres", "embedded"} {
		t.Run(backend, func(t *testing.T) {
			c := newCluster(t, backend)
			c.start("api", "server", "--workers", "0")
			var workers []*proc
			for i := range 2 {
				workers = append(workers, c.start(fmt.Sprintf("worker%d", i), "worker", "--workers", "4", "--heartbeat-timeout", "2s"))
			}
			c.createFlow(pausedFlow)
			const n = 6
			submit(c, "company.team", "paused", n)
			victim, held := waitSleeping(t, c, "paused", n)
			var paused *proc
			for _, w := range workers {
				if strings.Contains(w.output(), victim) {
					paused = w
				}
			}
			if paused == nil {
				t.Fatalf("no worker process is %s", victim)
			}
			resume := pauseUntilTakenOver(t, c, paused, held, victim)
			defer resume()
			list := c.waitAll("company.team", "paused", n, 60*time.Second)
			resume()
			// Its sleeps are over: within a second it would run 'after'.
			// Its heartbeat and 250 ms flusher would learn of the takeover
			// within a second too, so the lease must stop it first.
			time.Sleep(3 * time.Second)
			takenOver := 0
			for _, ex := range list {
				if ex.State != "SUCCESS" {
					t.Fatalf("execution %s ended %s: %s", ex.ID, ex.State, ex.Error)
				}
				for _, tr := range c.execution(ex.ID).TaskRuns {
					if tr.TaskID == "wait" && tr.Attempts[0].Worker == victim {
						takenOver++
					}
				}
			}
			if takenOver == 0 {
				t.Fatalf("no execution was taken over from %s", victim)
			}
			for _, key := range []string{"p_before", "p_after", "p_after2"} {
				if v := c.kvNumber("company.team", key); v != n {
					t.Errorf("%s = %v, want %d: a task ran twice or never", key, v, n)
				}
			}
			if out := paused.output(); !strings.Contains(out, "taken over by another worker") {
				t.Errorf("the resumed worker does not say it stopped its runs:\n%s", out)
			}
			t.Logf("%d of %d executions taken over from the paused worker", takenOver, n)
		})
	}
}

// A worker paused past the heartbeat timeout in the middle of a long task
// learns at its next heartbeat after it resumes that another worker took the
// execution over, and stops that task then, not at its end.
func TestWorker_PausedPastTheHeartbeatTimeout_StopsItsTaskAtOnce(t *testing.T) {
	for _, backend := range []string{"postgres", "embedded"} {
		t.Run(backend, func(t *testing.T) {
			c := newCluster(t, backend)
			c.start("api", "server", "--workers", "0")
			paused := c.start("worker0", "worker", "--workers", "2", "--heartbeat-timeout", "2s")
			c.createFlow(strings.Replace(longFlow, "PT4S", "PT60S", 1))
			id := c.execute("company.team", "long", "").ID
			var victim string
			for deadline := time.Now().Add(20 * time.Second); victim == ""; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the execution never reached its long task")
				}
				ex := c.execution(id)
				for _, tr := range ex.TaskRuns {
					if tr.TaskID == "wait" && tr.State == "RUNNING" {
						victim = ex.Worker
					}
				}
			}
			c.start("worker1", "worker", "--workers", "2", "--heartbeat-timeout", "2s")
			pauseUntilTakenOver(t, c, paused, id, victim)()
			at := time.Now()
			for !strings.Contains(paused.output(), "taken over by another worker") {
				if time.Since(at) > 5*time.Second { // its task would run 50 s more
					t.Fatalf("the resumed worker did not stop the run it lost:\n%s", paused.output())
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("the resumed worker stopped its run %s after it resumed", time.Since(at).Round(time.Millisecond))
			if r := c.do("DELETE", "/api/v1/executions/"+id+"/kill", ""); r.Status != 202 { // no 30 s shutdown wait
				t.Fatalf("kill = %d %s", r.Status, r.Body)
			}
		})
	}
}

// waitSleeping waits until all n executions of company.team/flow run
// their task 'wait' (so the tasks before it were saved), and returns the
// worker and id of one of them.
func waitSleeping(t *testing.T, c *cluster, flow string, n int) (worker, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for sleeping := 0; sleeping < n; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d executions reached the long task", sleeping, n)
		}
		time.Sleep(50 * time.Millisecond)
		sleeping = 0
		for _, ex := range c.list("company.team", flow) {
			full := c.execution(ex.ID)
			for _, tr := range full.TaskRuns {
				if tr.TaskID == "wait" && tr.State == "RUNNING" {
					sleeping++
					worker, id = full.Worker, ex.ID
				}
			}
		}
	}
	return worker, id
}

// pauseUntilTakenOver pauses p (SIGSTOP), whose worker victim holds
// execution id, until another worker holds it, and returns what resumes p
// (SIGCONT; once). On the embedded default a process paused inside a write
// transaction holds SQLite's lock, so no one takes anything over until it
// resumes: then it is resumed for a moment and paused again.
func pauseUntilTakenOver(t *testing.T, c *cluster, p *proc, id, victim string) (resume func()) {
	t.Helper()
	paused := false
	resume = func() {
		if paused {
			paused = false
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	for range 4 {
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		paused = true
		for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if c.execution(id).Worker != victim {
				return resume
			}
		}
		t.Logf("execution %s not taken over in 6 s: the paused worker may hold SQLite's lock; resumed and paused again", id)
		resume()
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("execution %s was never taken over from the paused worker %s", id, victim)
	return nil
}

// freeAddr is a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape reads a /metrics page.
func scrape(t *testing.T, url string) string {
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// Kill through the API stops the execution on the worker that holds it.
func TestKill_StopsOnTheHoldingWorker(t *testing.T) {
	for _, backend := range []string{"postgres", "embedded"} {
		t.Run(backend, func(t *testing.T) {
			c := newCluster(t, backend)
			c.start("api", "server", "--workers", "0")
			c.start("worker", "worker", "--workers", "2")
			c.createFlow(strings.Replace(longFlow, "PT4S", "PT60S", 1))
			ex := c.execute("company.team", "long", "")
			deadline := time.Now().Add(20 * time.Second)
			for c.execution(ex.ID).State != "RUNNING" && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			start := time.Now()
			if r := c.do("DELETE", "/api/v1/executions/"+ex.ID+"/kill", ""); r.Status != 202 {
				t.Fatalf("kill = %d %s", r.Status, r.Body)
			}
			var end execution
			for {
				end = c.execution(ex.ID)
				if end.State != "RUNNING" || time.Since(start) > 10*time.Second {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if end.State != "KILLED" {
				t.Fatalf("after kill: state %s", end.State)
			}
			t.Logf("killed in %s", time.Since(start))
			if r := c.do("DELETE", "/api/v1/executions/"+ex.ID+"/kill", ""); r.Status != 409 {
				t.Fatalf("second kill = %d %s, want 409", r.Status, r.Body)
			}
			if r := c.do("DELETE", "/api/v1/executions/nope/kill", ""); r.Status != 404 {
				t.Fatalf("kill of a missing execution = %d %s, want 404", r.Status, r.Body)
			}
		})
	}
}

func grepLines(text string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// A server that runs the executions it creates itself (their jobs held
// back) is killed with SIGKILL while they sleep: a worker takes every one
// over after the heartbeat timeout, and the tasks that had finished do not
// run again.
func TestServer_SIGKILL_ExecutionsItRanHereTakenOver(t *testing.T) {
	c := newCluster(t, "postgres")
	c.start("api", "server", "--workers", "0")
	runner := c.start("runner", "server", "--workers", "4", "--heartbeat-timeout", "2s")
	c.start("worker", "worker", "--workers", "4", "--heartbeat-timeout", "2s")
	c.createFlow(longFlow)
	const n = 4
	addr := runner.cmd.Args[len(runner.cmd.Args)-1]
	for range n {
		res, err := http.Post("http://"+addr+"/api/v1/executions/company.team/long", "application/json", strings.NewReader("{}"))
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("execute on the runner: %v %v", res, err)
		}
		res.Body.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		sleeping := 0
		for _, ex := range c.list("company.team", "long") {
			for _, tr := range c.execution(ex.ID).TaskRuns {
				if tr.TaskID == "wait" && tr.State == "RUNNING" && strings.Contains(runner.output(), tr.Attempts[0].Worker) {
					sleeping++
				}
			}
		}
		if sleeping == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d executions sleep on the server that created them", sleeping, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	runner.kill9(t)
	for _, ex := range c.waitAll("company.team", "long", n, 60*time.Second) {
		if ex.State != "SUCCESS" {
			t.Fatalf("execution %s ended %s: %s", ex.ID, ex.State, ex.Error)
		}
		if logs := c.logs(ex.ID); !strings.Contains(logs, "taken over") {
			t.Errorf("execution %s: the logs do not tell the takeover: %s", ex.ID, logs)
		}
	}
	if b, a := c.kvNumber("company.team", "before"), c.kvNumber("company.team", "after"); b != n || a != n {
		t.Fatalf("before = %v, after = %v, want %d each: a finished task ran again or one was lost", b, a, n)
	}
}

// handOverFlow is longFlow sleeping as long as the KV entry hold says.
var handOverFlow = strings.Replace(longFlow, "duration: PT4S", `duration: "{{ kv('hold') }}"`, 1)

// A worker stopped with SIGTERM while its executions sleep hands them over
// after its --shutdown-timeout instead of killing them: another worker
// takes each over at once, long before the heartbeat timeout would let
// it, the interrupted task runs again there and the finished ones do not.
func TestWorkers_SIGTERM_HandsRunningExecutionsOver(t *testing.T) {
	for _, backend := range []string{"postgres", "embedded"} {
		t.Run(backend, func(t *testing.T) {
			c := newCluster(t, backend)
			c.start("api", "server", "--workers", "0")
			if r := c.do("PUT", "/api/v1/namespaces/company.team/kv/hold", `"PT60S"`, "Content-Type: application/json"); r.Status != 200 {
				t.Fatalf("PUT hold = %d %s", r.Status, r.Body)
			}
			first := c.start("first", "worker", "--workers", "4", "--heartbeat-timeout", "60s", "--shutdown-timeout", "1s")
			c.createFlow(handOverFlow)
			const n = 3
			submit(c, "company.team", "long", n)
			holder, _ := waitSleeping(t, c, "long", n)
			if r := c.do("PUT", "/api/v1/namespaces/company.team/kv/hold", `"PT0.2S"`, "Content-Type: application/json"); r.Status != 200 {
				t.Fatalf("PUT hold = %d %s", r.Status, r.Body)
			}
			c.start("second", "worker", "--workers", "4", "--heartbeat-timeout", "60s")
			stopped := time.Now()
			first.stop(t)
			if out := first.output(); !strings.Contains(out, "handed over") {
				t.Errorf("the stopped worker does not say it handed executions over:\n%s", out)
			}
			list := c.waitAll("company.team", "long", n, 40*time.Second)
			took := time.Since(stopped)
			if took > 30*time.Second {
				t.Errorf("the executions ended %s after SIGTERM: not handed over, only taken over after the heartbeat timeout", took)
			}
			for _, ex := range list {
				if ex.State != "SUCCESS" {
					t.Fatalf("execution %s ended %s: %s", ex.ID, ex.State, ex.Error)
				}
				full := c.execution(ex.ID)
				for _, tr := range full.TaskRuns {
					switch {
					case tr.TaskID == "wait":
						if len(tr.Attempts) != 2 || tr.Attempts[0].Worker != holder || tr.Attempts[1].State != "SUCCESS" || tr.Attempts[1].Worker == holder {
							t.Errorf("execution %s: interrupted task attempts %+v, want one on %s then SUCCESS elsewhere", ex.ID, tr.Attempts, holder)
						}
					case len(tr.Attempts) != 1:
						t.Errorf("execution %s: task %s ran %d times", ex.ID, tr.TaskID, len(tr.Attempts))
					}
				}
				if logs := c.logs(ex.ID); !strings.Contains(logs, "handed over to another worker") || !strings.Contains(logs, "taken over") {
					t.Errorf("execution %s: the logs do not tell the hand-over: %s", ex.ID, logs)
				}
			}
			if b, a := c.kvNumber("company.team", "before"), c.kvNumber("company.team", "after"); b != n || a != n {
				t.Fatalf("before = %v, after = %v, want %d each: a finished task ran again or one was lost", b, a, n)
			}
			t.Logf("%d executions handed over and ended %s after SIGTERM", n, took.Round(time.Millisecond))
		})
	}
}

// A database URL with parameters only lib/pq knows (binary_parameters, as
// for PgBouncer) starts a worker whose River listener (pgx) works: they are
// left out of the listener's connection, which the server would refuse.
func TestWorker_LibpqOnlyURLParameters_ListenerStillConnects(t *testing.T) {
	c := newCluster(t, "postgres")
	for i, kv := range c.env {
		if strings.HasPrefix(kv, "KVFLOW_DATABASE_URL=") {
			sep := "?"
			if strings.Contains(kv, "?") {
				sep = "&"
			}
			c.env[i] = kv + sep + "binary_parameters=yes&disable_prepared_binary_result=yes"
		}
	}
	c.start("api", "server", "--workers", "0")
	w := c.start("worker", "worker", "--workers", "2")
	c.createFlow(incrementFlow)
	for i := range 3 {
		if ex := c.execute("company.team", "inc", "?wait=true"); ex.State != "SUCCESS" {
			t.Fatalf("execution %d ended %s: %s", i, ex.State, ex.Error)
		}
	}
	for _, line := range strings.Split(w.output(), "\n") { // the start-up line shows the URL
		if (strings.Contains(line, "WARN") || strings.Contains(line, "ERROR")) && (strings.Contains(line, "listener") || strings.Contains(line, "binary_parameters")) {
			t.Errorf("the worker's listener failed: %s", line)
		}
	}
}

// Processes started at the same moment on a new database migrate it one
// after the other (sqldb.DB.Exclusive). A server and two workers started
// together used to lose one of them in every run of this test: on SQLite to
// SQLITE_BUSY or a collision in River's migrations ("table river_migration
// already exists"), on PostgreSQL to "type schema_migrations already exists".
func TestStartTogether_OnANewDatabase_AllRun(t *testing.T) {
	for _, backend := range []string{"embedded", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			for range 4 {
				c := newCluster(t, backend)
				c.startTogether([]string{"server", "--workers", "0"}, []string{"worker"}, []string{"worker"})
				c.createFlow(incrementFlow)
				if ex := c.execute("company.team", "inc", "?wait=true"); ex.State != "SUCCESS" {
					t.Fatalf("execution on the new database: %s", ex.State)
				}
			}
		})
	}
}
