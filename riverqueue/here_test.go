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
