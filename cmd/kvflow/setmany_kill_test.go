package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/fs"
	"github.com/kvflow/kvflow/storage/s3/s3test"
	"github.com/kvflow/kvflow/storage/sqldb/sqldbtest"
)

// A real `kvflow kv set-many` process writing a large batch is SIGKILLed
// at several points: while its value objects upload (early, half way) and
// once every object is up (in or just after the metadata transaction).
// Every time the namespace then holds all of the batch or none of it.
func TestSetManyProcess_KilledMidBatch_AllOrNothing(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kvflow")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const n = 3000
	batch := make([]map[string]any, n)
	for i := range batch {
		batch[i] = map[string]any{"key": fmt.Sprintf("k%05d", i), "value": strings.Repeat(fmt.Sprintf("%05d|", i), 200)}
	}
	file := filepath.Join(t.TempDir(), "batch.json")
	data, _ := json.Marshal(batch)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}

	// Each pair: the environment the process runs with, and the same store opened here.
	type setup struct {
		env   []string
		store *storage.Store
		objs  storage.Bucket
	}
	pairs := map[string]func(t *testing.T) setup{
		"sqlite+dir": func(t *testing.T) setup {
			dir := t.TempDir()
			db := sqldbtest.OpenURL(t, "sqlite://"+filepath.ToSlash(filepath.Join(dir, "kvflow.db")))
			b, err := fs.New(filepath.Join(dir, "storage"))
			if err != nil {
				t.Fatal(err)
			}
			return setup{[]string{"KVFLOW_DATA_DIR=" + dir, "KVFLOW_DATABASE_URL=", "KVFLOW_STORAGE_URL="}, storage.New(db, b, storage.Options{CacheSize: -1}), b}
		},
		"postgres+minio": func(t *testing.T) setup {
			dbURL, s3URL := testsvc.PostgresURL(t), testsvc.S3URL(t)
			b := s3test.Open(t, s3URL)
			return setup{[]string{"KVFLOW_DATA_DIR=" + t.TempDir(), "KVFLOW_DATABASE_URL=" + dbURL, "KVFLOW_STORAGE_URL=" + s3URL},
				storage.New(sqldbtest.OpenURL(t, dbURL), b, storage.Options{CacheSize: -1}), b}
		},
	}
	for name, open := range pairs {
		t.Run(name, func(t *testing.T) {
			midBatch := 0
			var s setup
			// Kill once this many objects are up: the first, half, all of them.
			for _, killAt := range []int{1, n / 2, n} {
				s = open(t)
				ctx := context.Background()
				cmd := exec.Command(bin, "kv", "set-many", "kill.test", file)
				cmd.Env = append(os.Environ(), "KVFLOW_CONFIG=", "XDG_CONFIG_HOME="+t.TempDir(), "KVFLOW_SERVER=", "KVFLOW_API_TOKEN=")
				cmd.Env = append(cmd.Env, s.env...)
				var out strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				exited := make(chan error, 1)
				go func() { exited <- cmd.Wait() }()
				uploaded, finished := 0, false
				deadline := time.Now().Add(3 * time.Minute)
			poll:
				for {
					select {
					case <-exited:
						finished = true
						break poll
					default:
					}
					uploaded = countObjects(t, s.objs)
					if uploaded >= killAt {
						cmd.Process.Signal(syscall.SIGKILL)
						<-exited
						break
					}
					if time.Now().After(deadline) {
						cmd.Process.Kill()
						t.Fatalf("kill at %d objects: only %d uploaded after 3 minutes\n%s", killAt, uploaded, out.String())
					}
					time.Sleep(5 * time.Millisecond)
				}
				keys, err := s.store.Keys(ctx, "kill.test", "")
				if err != nil {
					t.Fatal(err)
				}
				if len(keys) != 0 && len(keys) != n {
					t.Fatalf("killed with %d of %d objects up: %d keys visible, want all or none", uploaded, n, len(keys))
				}
				if len(keys) == 0 && uploaded > 0 && uploaded < n {
					midBatch++
				}
				t.Logf("kill at ≥%d objects: %d uploaded when killed (process finished first: %v), %d keys visible", killAt, uploaded, finished, len(keys))
			}
			// Run again on the last killed store: the whole batch lands.
			cmd := exec.Command(bin, "kv", "set-many", "kill.test", file)
			cmd.Env = append(append(os.Environ(), "KVFLOW_CONFIG=", "XDG_CONFIG_HOME="+t.TempDir(), "KVFLOW_SERVER=", "KVFLOW_API_TOKEN="), s.env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("set-many after the kills: %v\n%s", err, out)
			}
			if keys, err := s.store.Keys(context.Background(), "kill.test", ""); err != nil || len(keys) != n {
				t.Errorf("after a full run: %d keys, %v; want %d", len(keys), err, n)
			}
			if midBatch == 0 {
				t.Errorf("no kill landed while objects were uploading: the test did not exercise a batch killed midway")
			}
		})
	}
}

func countObjects(t *testing.T, b storage.Bucket) int {
	t.Helper()
	n := 0
	err := b.Iter(context.Background(), "kill/", func(string, time.Time) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}
