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
