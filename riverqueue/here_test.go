package riverqueue_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/riverqueue"
	"github.com/kvflow/kvflow/storage"
)

// recorder is a Runner that notes the executions the queue hands it.
type recorder struct {
	mu      sync.Mutex
	got     map[string]time.Time
	timeout time.Duration
}

func (r *recorder) Work(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[id] = time.Now()
	return nil
}

func (r *recorder) HeartbeatTimeout() time.Duration { return r.timeout }

func (r *recorder) when(id string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.got[id]
	return t, ok
}

// An execution created to run here by a process that died before running
// it has no job: it is silent, so a worker takes it over after the
// heartbeat timeout, not before.
func TestQueue_SubmitHere_TakenOverWhenItsProcessDies(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			q, err := riverqueue.Open(ctx, p.DB, riverqueue.Config{Workers: 2, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			rec := &recorder{got: map[string]time.Time{}, timeout: time.Second}
			if err := q.Start(ctx, rec); err != nil {
				t.Fatal(err)
			}
			ex := &kvflow.Execution{ID: "orphaned", Worker: "a-dead-worker", Namespace: "company.team", FlowID: "f", FlowRevision: 1,
				State: kvflow.CREATED, Start: time.Now(), Labels: map[string]string{}}
			submitted := time.Now()
			if err := q.SubmitHere(ctx, ex, nil); err != nil {
				t.Fatal(err)
			}
			got, err := p.DB.GetExecution(ctx, ex.ID)
			if err != nil || got.Worker != "a-dead-worker" {
				t.Fatalf("execution created as %+v, %v; want claimed by its worker", got, err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				if at, ok := rec.when(ex.ID); ok {
					if at.Sub(submitted) < time.Second {
						t.Fatalf("handed out after %s, before the heartbeat timeout of 1s", at.Sub(submitted))
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("an execution whose process died was not taken over 30s later")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// hanger is a Runner that takes a job and never claims its execution: a
// worker that died between River's fetch and the claim.
type hanger struct {
	took    chan string
	release chan struct{}
}

func (h *hanger) Work(_ context.Context, id string) error {
	h.took <- id
	<-h.release
	return nil
}

func (h *hanger) HeartbeatTimeout() time.Duration { return time.Second }

// A job fetched by a worker that never claimed its execution is offered
// again once it has run for the heartbeat timeout (River's rescuer, which
// runs every 30s), and another worker gets it: the execution is not left
// CREATED forever.
func TestQueue_JobOfAWorkerThatDiedBeforeClaiming_IsOfferedAgain(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			quiet := slog.New(slog.DiscardHandler)
			dead, err := riverqueue.Open(ctx, p.DB, riverqueue.Config{Workers: 1, HeartbeatTimeout: time.Second, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			h := &hanger{took: make(chan string, 4), release: make(chan struct{})}
			defer func() { close(h.release); dead.Close() }()
			if err := dead.Start(ctx, h); err != nil {
				t.Fatal(err)
			}
			ex := &kvflow.Execution{ID: "fetched-then-dead", Namespace: "company.team", FlowID: "f", FlowRevision: 1,
				State: kvflow.CREATED, Start: time.Now(), Labels: map[string]string{}}
			if err := dead.Submit(ctx, ex, nil); err != nil {
				t.Fatal(err)
			}
			select {
			case <-h.took:
			case <-time.After(30 * time.Second):
				t.Fatal("the first worker never took the job")
			}
			live, err := riverqueue.Open(ctx, p.DB, riverqueue.Config{Workers: 2, HeartbeatTimeout: time.Second, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer live.Close()
			rec := &recorder{got: map[string]time.Time{}, timeout: time.Second}
			if err := live.Start(ctx, rec); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(100 * time.Second)
			for {
				if _, ok := rec.when(ex.ID); ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the job of a worker that died before claiming was not offered again within 100s")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// claimer is a Runner that claims the execution as the engine does, holds
// it (heartbeating) until release is closed, then saves it SUCCESS under its
// claim. It counts won and refused claims. Its heartbeat timeout (the
// reaper's and its claims') is claimerTimeout, longer than its queues'
// (River's rescue, 1s), so that rescued jobs are offered again while a
// heartbeat held up on a loaded machine (SQLite under -race) does not yet
// count as a dead holder.
type claimer struct {
	db      kvflow.ExecutionRepository
	worker  string
	release chan struct{}

	mu      sync.Mutex
	won     map[string]int
	refused int
}

func (c *claimer) Work(ctx context.Context, id string) error {
	claim, err := c.db.ClaimExecution(ctx, id, c.worker, time.Now().Add(-claimerTimeout), 0, false)
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		c.mu.Lock()
		c.refused++
		c.mu.Unlock()
		return nil
	} else if err != nil {
		return err
	}
	c.mu.Lock()
	c.won[id]++
	c.mu.Unlock()
	for alive := true; alive; {
		select {
		case <-c.release:
			alive = false
		case <-time.After(200 * time.Millisecond):
			if _, err := c.db.Heartbeat(ctx, c.worker, []string{id}); err != nil {
				return err
			}
		}
	}
	end := time.Now()
	ex := &kvflow.Execution{ID: id, State: kvflow.SUCCESS, End: &end}
	return c.db.SaveExecution(ctx, kvflow.ExecutionSave{Execution: ex, Claim: claim.Claim})
}

const claimerTimeout = 5 * time.Second

func (c *claimer) HeartbeatTimeout() time.Duration { return claimerTimeout }

func (c *claimer) counts() (won map[string]int, refused int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	won = map[string]int{}
	for id, n := range c.won {
		won[id] = n
	}
	return won, c.refused
}

// Executions held by live workers past the heartbeat timeout get their jobs
// offered again by River's rescuer, to two worker processes' queues racing
// for them: every offer's claim is refused while the holder heartbeats, so
// each execution runs exactly once and ends SUCCESS under its one claim.
func TestQueue_RescuedJobsOfLiveExecutions_RaceButNeverRunTwice(t *testing.T) {
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			quiet := slog.New(slog.DiscardHandler)
			release := make(chan struct{})
			var runners []*claimer
			for _, name := range []string{"worker-a", "worker-b"} {
				q, err := riverqueue.Open(ctx, p.DB, riverqueue.Config{Workers: 8, HeartbeatTimeout: time.Second, Logger: quiet})
				if err != nil {
					t.Fatal(err)
				}
				r := &claimer{db: p.DB, worker: name, release: release, won: map[string]int{}}
				defer q.Close()
				if err := q.Start(ctx, r); err != nil {
					t.Fatal(err)
				}
				runners = append(runners, r)
			}
			defer func() {
				select {
				case <-release:
				default:
					close(release)
				}
			}()
			q, err := riverqueue.Open(ctx, p.DB, riverqueue.Config{Logger: quiet}) // an API node
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			const n = 6
			ids := make([]string, n)
			for i := range ids {
				ids[i] = "held-" + string(rune('a'+i))
				ex := &kvflow.Execution{ID: ids[i], Namespace: "company.team", FlowID: "f", FlowRevision: 1,
					State: kvflow.CREATED, Start: time.Now(), Labels: map[string]string{}}
				if err := q.Submit(ctx, ex, nil); err != nil {
					t.Fatal(err)
				}
			}
			// Hold every run until the rescuer has offered jobs again and
			// their claims were refused (River's rescuer looks every 30s).
			total := func() (won map[string]int, refused int) {
				won = map[string]int{}
				for _, r := range runners {
					w, f := r.counts()
					for id, c := range w {
						won[id] += c
					}
					refused += f
				}
				return won, refused
			}
			deadline := time.Now().Add(90 * time.Second)
			for {
				won, refused := total()
				twice := false
				for _, c := range won {
					twice = twice || c > 1
				}
				if len(won) == n && (refused >= n || twice) { // twice: the assertions below say which
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 90s: %d of %d executions claimed, %d rescued offers refused; want all claimed and at least %d refused", len(won), n, refused, n)
				}
				time.Sleep(100 * time.Millisecond)
			}
			close(release)
			for _, id := range ids {
				var ex *kvflow.Execution
				for wait := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					if ex, err = p.DB.GetExecution(ctx, id); err != nil {
						t.Fatal(err)
					}
					if ex.State == kvflow.SUCCESS || time.Now().After(wait) {
						break
					}
				}
				if ex.State != kvflow.SUCCESS {
					t.Errorf("%s ended %s, want SUCCESS saved under its one claim", id, ex.State)
				}
			}
			won, refused := total()
			for _, id := range ids {
				if won[id] != 1 {
					t.Errorf("%s claimed %d times, want exactly 1 (%d offers refused in all)", id, won[id], refused)
				}
			}
		})
	}
}
