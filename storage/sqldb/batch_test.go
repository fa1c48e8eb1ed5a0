package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

func openSQLite(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "kv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// entry is an entry of namespace ns whose object's write intent is recorded,
// as the store does before it writes the metadata.
func entry(t *testing.T, db *DB, key string) *storage.Entry {
	t.Helper()
	e := &storage.Entry{Namespace: "ns", Key: key, Type: storage.STRING, Object: storage.ObjectName("ns"),
		Size: 1, Hash: "h", Updated: time.Now()}
	if err := db.AddIntents(context.Background(), time.Now(), []storage.Intent{{Namespace: e.Namespace, Object: e.Object}}); err != nil {
		t.Fatal(err)
	}
	return e
}

// holdCommitter keeps the committer busy until release is closed, so that the
// writes queued meanwhile are committed as one batch.
func holdCommitter(t *testing.T, db *DB) (release chan struct{}, done chan error) {
	release, done, started := make(chan struct{}), make(chan error, 1), make(chan struct{})
	go func() {
		done <- db.batch.write(context.Background(), func(ctx context.Context, tx *sqlx.Tx) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	return release, done
}

// A write that fails inside a batch is rolled back to its savepoint alone,
// however much it changed: each write here rewrites 600 stored rows, past the
// 64 KiB at which SQLite would spill the savepoints' journal to a file (the
// committer keeps it in memory).
func TestGroupCommit_OneBatch_FailingWriteFailsAlone(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	if err := db.batch.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		for r := range 600 { // about 160 KiB of rows
			if _, err := tx.ExecContext(ctx, `INSERT INTO kv_entries (namespace, key, type, object, version, size, hash, created_at, updated_at)
				VALUES ('ns', ?, 'STRING', ?, 1, 1, ?, 0, 0)`, fmt.Sprintf("seed-%03d", r), fmt.Sprintf("os%03d", r), "s00-"+strings.Repeat("s", 200)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	release, held := holdCommitter(t, db)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.batch.write(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
				if _, err := tx.ExecContext(ctx, `UPDATE kv_entries SET hash = ? WHERE key LIKE 'seed-%'`, fmt.Sprintf("w%02d-%s", i, strings.Repeat("h", 200))); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO kv_entries (namespace, key, type, object, version, size, hash, created_at, updated_at)
					VALUES ('ns', ?, 'STRING', ?, 1, 1, 'h', 0, 0)`, fmt.Sprintf("k%02d", i), fmt.Sprintf("o%02d", i)); err != nil {
					return err
				}
				if i%4 == 0 { // its insert and update are rolled back, the others' are kept
					return boom
				}
				return nil
			})
		}()
	}
	for db.batch.queued() < len(errs) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		_, gerr := db.GetEntry(ctx, "ns", fmt.Sprintf("k%02d", i))
		if i%4 == 0 {
			if !errors.Is(err, boom) || kvflow.ErrorCode(gerr) != kvflow.ENOTFOUND {
				t.Errorf("k%02d: write = %v, stored = %v; want boom and nothing stored", i, err, gerr)
			}
		} else if err != nil || gerr != nil {
			t.Errorf("k%02d: write = %v, get = %v; want stored", i, err, gerr)
		}
	}
	var hashes []string
	if err := db.X.Select(&hashes, `SELECT DISTINCT substr(hash, 1, 3) FROM kv_entries WHERE key LIKE 'seed-%'`); err != nil {
		t.Fatal(err)
	}
	last := -1
	if len(hashes) == 1 {
		fmt.Sscanf(hashes[0], "w%02d", &last)
	}
	if last < 0 || last%4 == 0 {
		t.Errorf("the seed rows hold %v: want one writer's update, from a write that did not fail", hashes)
	}
}

func TestGroupCommit_TwoCreatesOfOneKeyInOneBatch_OneWins(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	errs := make([]error, 8)
	es := make([]*storage.Entry, len(errs))
	for i := range es {
		es[i] = entry(t, db, "same")
	}
	release, held := holdCommitter(t, db)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.PutEntry(ctx, es[i], storage.PutCondition{NoOverwrite: true})
		}()
	}
	for db.batch.queued() < len(errs) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	<-held
	won := 0
	for _, err := range errs {
		switch kvflow.ErrorCode(err) {
		case "":
			won++
		case kvflow.ECONFLICT:
		default:
			t.Errorf("create: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d creates won, want 1: %v", won, errs)
	}
}

func TestGroupCommit_CanceledBeforeItsBatch_NotWritten(t *testing.T) {
	db := openSQLite(t)
	late := entry(t, db, "late")
	release, held := holdCommitter(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- db.PutEntry(ctx, late, storage.PutCondition{}) }()
	for db.batch.queued() < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	close(release)
	<-held
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("write = %v, want context.Canceled", err)
	}
	if _, err := db.GetEntry(context.Background(), "ns", "late"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("get = %v, want not found", err)
	}
}

func TestGroupCommit_Closed_RefusesWrites(t *testing.T) {
	db := openSQLite(t)
	x := entry(t, db, "x")
	db.batch.close()
	err := db.PutEntry(context.Background(), x, storage.PutCondition{})
	if kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE {
		t.Errorf("write after close = %v, want EUNAVAILABLE", err)
	}
}

// TestSQLite_CommitsAreSynced checks every pooled connection commits with
// synchronous=FULL: in WAL mode NORMAL does not sync a commit, so an
// acknowledged write could be lost to a power cut.
func TestSQLite_CommitsAreSynced(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	conns := make([]*sqlx.Conn, 3)
	for i := range conns {
		c, err := db.X.Connx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
		var mode int
		if err := c.GetContext(ctx, &mode, "PRAGMA synchronous"); err != nil {
			t.Fatal(err)
		}
		if mode != 2 {
			t.Fatalf("connection %d: PRAGMA synchronous = %d, want 2 (FULL)", i, mode)
		}
	}
}

// The committer leaves SQLite's checkpoints to walLoop, which restarts a long
// WAL between batches: under racing writers the WAL stays short, where no
// restart would leave it holding every page written.
func TestGroupCommit_SteadyWrites_WALStaysShort(t *testing.T) {
	defer func(n int) { walRestartFrames = n }(walRestartFrames)
	walRestartFrames = 64
	path := filepath.Join(t.TempDir(), "kv.db")
	db := openJournaled(t, path)
	defer db.Close()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				if err := db.PutEntry(context.Background(), entry(t, db, fmt.Sprintf("w%d-%d", w, i)), storage.PutCondition{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// 4,000 statements (2,000 intents, 2,000 entries with their versions and
	// changes) write thousands of pages: 16 MiB is a few hundred.
	if st.Size() > 16<<20 {
		t.Fatalf("WAL is %d bytes after 2,000 writes, want it restarted (under 16 MiB)", st.Size())
	}
	var n int
	if err := db.X.Get(&n, `SELECT count(*) FROM kv_entries`); err != nil || n != 2000 {
		t.Fatalf("%d entries (%v), want 2000", n, err)
	}
}

// A reader that stays on the WAL keeps it from starting over, and the
// committer does not wait for it: writes go on at their pace.
func TestGroupCommit_LongReader_WritesDoNotWait(t *testing.T) {
	was := walRestartFrames
	t.Cleanup(func() { walRestartFrames = was }) // after the store's close, which openSQLite registers next
	walRestartFrames = 16
	db := openSQLite(t)
	ctx := context.Background()
	if err := db.PutEntry(ctx, entry(t, db, "first"), storage.PutCondition{}); err != nil {
		t.Fatal(err)
	}
	reader, err := db.X.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback()
	var n int
	if err := reader.Get(&n, `SELECT count(*) FROM kv_entries`); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		start := time.Now()
		if err := db.PutEntry(ctx, entry(t, db, fmt.Sprintf("k%d", i)), storage.PutCondition{}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("write %d took %v with a reader on the WAL: the committer waited for it", i, d)
		}
	}
	if err := reader.Get(&n, `SELECT count(*) FROM kv_entries`); err != nil || n != 1 {
		t.Fatalf("the reader's snapshot holds %d entries (%v), want 1", n, err)
	}
}
