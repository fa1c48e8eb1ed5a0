package storage_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/app"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/fs"
	"github.com/kvflow/kvflow/storage/s3/s3test"
	"github.com/kvflow/kvflow/storage/sqldb"
	"github.com/kvflow/kvflow/storage/sqldb/sqldbtest"
	"github.com/kvflow/kvflow/storage/storagetest"
)

func TestMain(m *testing.M) {
	if os.Getenv("KVFLOW_CRASH_DB") != "" {
		crashChild()
		return
	}
	os.Exit(testsvc.Main(m))
}

func TestStore_SQLiteAndDir(t *testing.T) {
	storagetest.StoreAcceptance(t, testpair.Opener(testpair.Local))
}

func TestStore_PostgresAndMinIO(t *testing.T) {
	storagetest.StoreAcceptance(t, testpair.Opener(testpair.Service))
}

// crashChild writes in a loop until it is killed: the parent's victim.
func crashChild() {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, os.Getenv("KVFLOW_CRASH_DB"))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	b, err := app.OpenBucket(ctx, os.Getenv("KVFLOW_CRASH_STORAGE"))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	s := storage.New(db, b, storage.Options{})
	for i := 0; ; i++ {
		key := fmt.Sprintf("k%d", i%10)
		v := strings.Repeat(fmt.Sprintf("%d|", i), 1+i%5000)
		if i%7 == 0 {
			_, err = s.SetStream(ctx, "crash.test", key, strings.NewReader(v), storage.SetOptions{})
		} else {
			_, err = s.Set(ctx, "crash.test", key, storage.String(v), storage.SetOptions{})
		}
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if i == 20 {
			fmt.Println("ready")
		}
	}
}

func TestCrash_KillDuringWriteLoop_OnlyOrphansRemain(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, db, storage string }{
		{"sqlite+dir", "sqlite://" + filepath.Join(dir, "kv.db"), "file://" + filepath.Join(dir, "objects")},
		{"postgres+minio", testsvc.PostgresURL(t), testsvc.S3URL(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for round := 0; round < 3; round++ {
				killChildMidWrite(t, tc.db, tc.storage, time.Duration(50+round*150)*time.Millisecond)
			}
			ctx := context.Background()
			db := sqldbtest.OpenURL(t, tc.db)
			b, err := app.OpenBucket(ctx, tc.storage)
			if err != nil {
				t.Fatal(err)
			}
			s := storage.New(db, b, storage.Options{CacheSize: -1})
			keys, err := s.Keys(ctx, "crash.test", "")
			if err != nil || len(keys) != 10 {
				t.Fatalf("keys after crashes = %v, %v", keys, err)
			}
			for _, k := range keys {
				e, v, err := s.Get(ctx, "crash.test", k)
				if err != nil {
					t.Fatalf("Get %s after kill -9: %v (dangling or torn)", k, err)
				}
				parts := strings.Split(v.V.(string), "|")
				if e.Type != storage.STRING || len(parts) < 2 || strings.Count(v.V.(string), parts[0]+"|") != len(parts)-1 {
					t.Fatalf("Get %s: malformed value %.60q", k, v.V)
				}
			}
			// History keeps replaced values; keep only the live ones.
			if _, _, err := s.PruneHistory(ctx, storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil {
				t.Fatal(err)
			}
			// The child's reserved names are dated up to 30 s ahead: a grace
			// of minus a minute collects what it left under them too.
			if _, err := s.CollectGarbage(ctx, -time.Minute); err != nil {
				t.Fatal(err)
			}
			count := func() (n int) {
				b.Iter(ctx, "", func(string, time.Time) error { n++; return nil })
				return n
			}
			// Every write records an intent while it uploads, so garbage
			// collection finds what a crash left, except on a local directory
			// a file created in the instant before its intent committed: at
			// most one per crash, found by the full sweep.
			leftover := 0
			if strings.HasPrefix(tc.storage, "file:") {
				leftover = 3
			}
			if n := count(); n < len(keys) || n > len(keys)+leftover {
				t.Errorf("%d objects after garbage collection, want one per key (%d) and at most %d more", n, len(keys), leftover)
			}
			if _, err := s.SweepOrphans(ctx, 0); err != nil {
				t.Fatal(err)
			}
			if n := count(); n != len(keys) {
				t.Errorf("%d objects after the full sweep, want one per key (%d)", n, len(keys))
			}
		})
	}
}

func killChildMidWrite(t *testing.T, db, storageURL string, after time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KVFLOW_CRASH_DB="+db, "KVFLOW_CRASH_STORAGE="+storageURL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("crash child: %q", line)
	}
	time.Sleep(after)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

func TestFaults_ObjectStoreDown_SetFailsMetadataUnchanged_Recovers(t *testing.T) {
	m := testsvc.NewMinIO(t)
	ctx := context.Background()
	db := sqldbtest.OpenURL(t, testsvc.PostgresURL(t))
	s := storage.New(db, s3test.Open(t, m.S3URL()), storage.Options{CacheSize: -1})
	before, err := s.Set(ctx, "faults", "k", storage.String("v1"), storage.SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Set(ctx, "faults", "k", storage.String("v2"), storage.SetOptions{})
	if kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE || !strings.Contains(err.Error(), "object store is unreachable") {
		t.Fatalf("Set with MinIO down = %v, want EUNAVAILABLE saying the object store is unreachable", err)
	}
	if e, err := s.Stat(ctx, "faults", "k"); err != nil || e.Version != before.Version || e.Object != before.Object {
		t.Fatalf("metadata changed by a failed write: %+v, %v", e, err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	e, err := eventually(func() (*storage.Entry, error) {
		return s.Set(ctx, "faults", "k", storage.String("v2"), storage.SetOptions{})
	})
	if err != nil || e.Version != 2 {
		t.Fatalf("Set after MinIO is back: %+v, %v", e, err)
	}
	if _, v, err := s.Get(ctx, "faults", "k"); err != nil || v.V != "v2" {
		t.Fatalf("Get after recovery: %v, %v", v.V, err)
	}
}

func TestFaults_DatabaseDown_SetFailsNothingStored_Recovers(t *testing.T) {
	pg := testsvc.NewPostgres(t)
	ctx := context.Background()
	dir := t.TempDir()
	b, err := app.OpenBucket(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	s := storage.New(sqldbtest.OpenURL(t, pg.URL()), b, storage.Options{CacheSize: -1})
	if _, err := s.Set(ctx, "faults", "k", storage.String("v1"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Set(ctx, "faults", "k", storage.String("v2"), storage.SetOptions{})
	if kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE || !strings.Contains(err.Error(), "database is unreachable") {
		t.Fatalf("Set with PostgreSQL down = %v, want EUNAVAILABLE saying the database is unreachable", err)
	}
	objects := 0
	b.Iter(ctx, "", func(string, time.Time) error { objects++; return nil })
	if objects != 1 {
		t.Errorf("%d objects after a failed write, want 1 (the failed write's object removed)", objects)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := eventually(func() (*storage.Entry, error) { return s.Stat(ctx, "faults", "k") }); err != nil {
		t.Fatalf("Stat after PostgreSQL is back: %v", err)
	}
	if e, v, err := s.Get(ctx, "faults", "k"); err != nil || v.V != "v1" || e.Version != 1 {
		t.Fatalf("value after the failed write = %v version %d, %v; want v1 version 1", v.V, e.Version, err)
	}
	if e, err := s.Set(ctx, "faults", "k", storage.String("v2"), storage.SetOptions{}); err != nil || e.Version != 2 {
		t.Fatalf("Set after recovery: %+v, %v", e, err)
	}
}

// eventually retries an operation for a few seconds while it reports an
// unreachable service: pooled connections to a restarted server fail once.
func eventually[T any](op func() (T, error)) (T, error) {
	var v T
	var err error
	for i := 0; i < 50; i++ {
		if v, err = op(); kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE {
			return v, err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return v, err
}

// An object whose write intent is younger than the grace period is never
// collected, even when its Last-Modified is older (a multipart upload's is its
// start); once the intent is stale, its object goes and its write can no
// longer commit.
func TestCollectGarbage_WriteIntentProtectsAnOldLookingObject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := sqldbtest.OpenURL(t, "sqlite://"+filepath.Join(dir, "kv.db"))
	b, err := fs.New(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	s := storage.New(db, b, storage.Options{})
	old := time.Now().Add(-time.Hour)
	upload := func(name string) {
		t.Helper()
		if err := b.Put(ctx, name, strings.NewReader(`"x"`), 3); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(dir, "objects", filepath.FromSlash(name)), old, old); err != nil {
			t.Fatal(err)
		}
	}
	live := storage.Intent{Namespace: "company.team", Object: storage.ObjectName("company.team")}
	if err := db.AddIntents(ctx, time.Now(), []storage.Intent{live}); err != nil {
		t.Fatal(err)
	}
	upload(live.Object)
	if n, err := s.CollectGarbage(ctx, 5*time.Minute); err != nil || n != 0 {
		t.Fatalf("GC removed %d, %v; want the in-flight object kept", n, err)
	}
	if n, err := s.SweepOrphans(ctx, 5*time.Minute); err != nil || n != 0 {
		t.Fatalf("SweepOrphans removed %d, %v; want the in-flight object kept", n, err)
	}

	stale := storage.Intent{Namespace: "company.team", Object: storage.ObjectName("company.team")}
	if err := db.AddIntents(ctx, old, []storage.Intent{stale}); err != nil {
		t.Fatal(err)
	}
	upload(stale.Object)
	if n, err := s.CollectGarbage(ctx, 5*time.Minute); err != nil || n != 1 {
		t.Fatalf("GC removed %d, %v; want the stale intent's object", n, err)
	}
	if _, err := b.Get(ctx, stale.Object); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("stale intent's object: %v, want it gone", err)
	}
	e := &storage.Entry{Namespace: "company.team", Key: "stale", Type: storage.STRING, Object: stale.Object, Size: 3, Updated: time.Now()}
	if err := db.PutEntry(ctx, e, storage.PutCondition{}); !errors.Is(err, storage.ErrIntentGone) {
		t.Fatalf("PutEntry after its intent was collected: %v, want ErrIntentGone", err)
	}
	if _, err := db.GetEntry(ctx, "company.team", "stale"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("entry after a refused write: %v, want not found", err)
	}

	// A committed stream leaves no intent; the in-flight one is still there.
	if _, err := s.SetStream(ctx, "company.team", "s", strings.NewReader("streamed"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if left, err := db.TakeStaleIntents(ctx, time.Now().Add(time.Hour), 10); err != nil || len(left) != 1 || left[0] != live.Object {
		t.Errorf("intents left: %v, %v; want only %s", left, err, live.Object)
	}
}
