package sqldb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/fs"
)

// kvState is every KV row that a replay must reproduce, as text.
func kvState(t *testing.T, db *DB) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT namespace, key, version, object, created_at, updated_at, writer FROM kv_entries ORDER BY namespace, key`,
		`SELECT namespace, key, version, change, object, updated_at, writer FROM kv_versions ORDER BY namespace, key, version`,
		`SELECT namespace, seq, key, change, version FROM kv_changes ORDER BY namespace, seq`,
		`SELECT namespace, seq FROM kv_change_seqs ORDER BY namespace`,
		`SELECT namespace, object FROM kv_intents ORDER BY namespace, object`,
		`SELECT object, queued_at FROM kv_garbage ORDER BY object`,
		`SELECT lsn FROM kv_journal`,
	} {
		rows, err := db.X.Queryx(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			cols, err := rows.SliceScan()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, cols...)
		}
		rows.Close()
	}
	return b.String()
}

// openJournaled opens the SQLite database at path, failing unless this
// process holds its journal.
func openJournaled(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	if db.journal == nil {
		db.Close()
		t.Fatal("no journal on the embedded database: its commits are FULL, with SQLite's own checkpoints")
	}
	return db
}

// crash closes db as a crash leaves it: no checkpoint, the journal as it is.
func crash(db *DB) {
	db.batch.mu.Lock()
	db.batch.closed = true
	db.batch.mu.Unlock()
	close(db.batch.walStop)
	<-db.batch.walDone
	db.batch.conn.Close()
	db.closeJournal()
	db.X.Close()
}

// TestJournal_ReplaysCommitsSQLiteLost stands for a power cut: with a
// journal SQLite's commits are not synced, so the database may come back as
// it was at the last checkpoint, with the journal holding every batch since.
// Here it comes back as a copy taken at a checkpoint; Open must replay the
// later batches (racing writers' batches with savepoints, failed
// conditional writes, deletes) into the same rows.
func TestJournal_ReplaysCommitsSQLiteLost(t *testing.T) {
	defer func(n int64) { journalCheckpoint = n }(journalCheckpoint)
	journalCheckpoint = 16 << 10 // checkpoints while the first rounds write
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "kv.db")
	db := openJournaled(t, path)
	write := func(round int) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					key := fmt.Sprintf("k%d", (w*10+i)%25)
					e := entry(t, db, key)
					e.Writer = fmt.Sprintf("r%d-w%d-%d", round, w, i)
					cond := storage.PutCondition{}
					switch i % 4 {
					case 1:
						cond.NoOverwrite = true // mostly fails: a failed statement in a batch
					case 2:
						cond.IfVersion = int64(round + 1) // sometimes holds
					}
					if err := db.PutEntry(ctx, e, cond); err != nil && kvflow.ErrorCode(err) != kvflow.ECONFLICT {
						t.Error(err)
					}
					if i%5 == 4 {
						if _, err := db.DeleteEntry(ctx, "ns", key, "cli", time.Now()); err != nil && kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
							t.Error(err)
						}
					}
				}
			}()
		}
		wg.Wait()
	}
	for round := range 3 {
		write(round)
	}
	if db.journal.epoch < 3 {
		t.Fatalf("journal at epoch %d: the first rounds were meant to checkpoint", db.journal.epoch)
	}
	if err := db.batch.checkpointNow(ctx); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "snap.db")
	if _, err := db.X.Exec(`VACUUM INTO ?`, snap); err != nil {
		t.Fatal(err)
	}
	journalCheckpoint = journalCap
	for round := 3; round < 7; round++ {
		write(round)
	}
	// Batches whose triggers stamp the time: an expiry purge (its tombstone
	// dated by the trigger) and a prune of old versions (their objects queued
	// as garbage, dated by the trigger).
	for i := range 5 {
		e := entry(t, db, fmt.Sprint("exp", i))
		past := time.Now().Add(-time.Minute)
		e.Expires = &past
		if err := db.PutEntry(ctx, e, storage.PutCondition{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Millisecond)
	if gone, err := db.PurgeEntries(ctx, storage.PurgeQuery{ExpiredOnly: true, Now: time.Now(), Limit: 100}); err != nil || len(gone) != 5 {
		t.Fatalf("purge: %d entries, %v; want 5", len(gone), err)
	}
	if pruned, err := db.PruneVersions(ctx, storage.PruneQuery{Keep: 2, Limit: 1000}); err != nil || len(pruned) == 0 {
		t.Fatalf("prune: %d versions, %v; want some", len(pruned), err)
	}
	want, lsn := kvState(t, db), db.journal.lsn
	crash(db)
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	if err := os.Rename(snap, path); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := kvState(t, db); got != want {
		t.Fatalf("after replay the rows differ:\n got %s\nwant %s", got, want)
	}
	if db.journal.lsn != lsn {
		t.Errorf("journal at batch %d after replay, want %d", db.journal.lsn, lsn)
	}
	// Writes go on from there.
	e := entry(t, db, "after")
	if err := db.PutEntry(ctx, e, storage.PutCondition{}); err != nil || e.Version != 1 {
		t.Fatalf("write after replay: version %d, %v", e.Version, err)
	}
}

// TestJournal_SecondProcessCommitsWithoutOne: one process holds the
// journal; another on the same file commits with a sync of its own, and
// both see each other's writes.
func TestJournal_SecondProcessCommitsWithoutOne(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kv.db")
	a, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.journal == nil || b.journal != nil {
		t.Fatalf("journals: first %v, second %v; want only the first", a.journal != nil, b.journal != nil)
	}
	for i, db := range []*DB{a, b} {
		if err := db.PutEntry(ctx, entry(t, db, fmt.Sprint("k", i)), storage.PutCondition{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, db := range []*DB{a, b} {
		for i := range 2 {
			if _, err := db.GetEntry(ctx, "ns", fmt.Sprint("k", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestJournal_RestoresValueFilesACrashLost: small values are logged, not
// synced, so a power cut can leave their files empty, torn or missing. After
// a crash, AttachBucket rewrites every logged file a row points to, and
// every acknowledged value reads back: also with more logged files than
// one SQLite statement takes names (8,191 at four parameters each).
func TestJournal_RestoresValueFilesACrashLost(t *testing.T) {
	for _, writes := range []int{40, 9000} {
		t.Run(fmt.Sprint(writes), func(t *testing.T) {
			defer func(was int64) { journalCheckpoint = was }(journalCheckpoint)
			journalCheckpoint = 48 << 20 // every write's object still in the log at the crash
			ctx := context.Background()
			dir := t.TempDir()
			db, b, s := openWithBucket(t, dir)
			want := map[string]string{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < writes; i += 16 {
						key, val := fmt.Sprint("k", i%(writes*3/4/16*16)), fmt.Sprintf("value %d", i)
						if _, err := s.Set(ctx, "team", key, storage.String(val), storage.SetOptions{}); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						want[key] = val // each key is one goroutine's (i%16 == w), written in order
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			if len(db.journal.objects) < writes {
				t.Fatalf("%d value objects logged of %d writes: a checkpoint came between, the test proves less", len(db.journal.objects), writes)
			}
			logged := append([]string(nil), db.journal.objects...)
			b.Close()
			crash(db)
			spoil(b.Root(), logged)
			db, b, s = openWithBucket(t, dir)
			defer db.Close()
			defer b.Close()
			readBack(t, s, want)
			if db.journal.used() {
				t.Error("the journal was not emptied after its objects were restored")
			}
		})
	}
}

// A restore that fails at open (the bucket refuses) keeps the journal: the
// store closes without emptying it, and the next open restores everything.
func TestJournal_FailedRestoreKeepsTheLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, b, s := openWithBucket(t, dir)
	want := map[string]string{}
	for i := range 20 {
		key, val := fmt.Sprint("k", i), fmt.Sprint("value ", i)
		if _, err := s.Set(ctx, "team", key, storage.String(val), storage.SetOptions{}); err != nil {
			t.Fatal(err)
		}
		want[key] = val
	}
	logged := append([]string(nil), db.journal.objects...)
	b.Close()
	crash(db)
	spoil(b.Root(), logged)
	db, err := Open(ctx, "sqlite://"+filepath.Join(dir, "kv.db"))
	if err != nil {
		t.Fatal(err)
	}
	b, err = fs.New(filepath.Join(dir, "values"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AttachBucket(ctx, refusingBucket{b}); err == nil {
		t.Fatal("AttachBucket with a bucket refusing every restore succeeded")
	}
	db.Close() // its checkpoint must leave the log alone
	b.Close()
	db, b, s = openWithBucket(t, dir)
	defer db.Close()
	defer b.Close()
	readBack(t, s, want)
}

// refusingBucket fails every restore.
type refusingBucket struct{ *fs.Bucket }

func (refusingBucket) RestoreObject(context.Context, string, []byte) error {
	return fmt.Errorf("disk full")
}

// openWithBucket opens the embedded store in dir: database, value
// directory and journal attached.
func openWithBucket(t *testing.T, dir string) (*DB, *fs.Bucket, *storage.Store) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, "sqlite://"+filepath.Join(dir, "kv.db"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.New(filepath.Join(dir, "values"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AttachBucket(ctx, b); err != nil {
		t.Fatal(err)
	}
	return db, b, storage.New(db, b, storage.Options{CacheSize: -1})
}

// spoil does to logged value files what a power cut may: some left empty,
// some torn, some gone.
func spoil(root string, logged []string) {
	for i, name := range logged {
		path := filepath.Join(root, filepath.FromSlash(name))
		switch i % 3 {
		case 0:
			os.Truncate(path, 0)
		case 1:
			os.WriteFile(path, []byte("torn"), 0o644)
		case 2:
			os.Remove(path)
		}
	}
}

// readBack checks every key reads its value.
func readBack(t *testing.T, s *storage.Store, want map[string]string) {
	t.Helper()
	for key, val := range want {
		_, v, err := s.Get(context.Background(), "team", key)
		if err != nil {
			t.Fatalf("Get %s after the crash: %v", key, err)
		}
		if got, _ := v.V.(string); got != val {
			t.Errorf("Get %s = %q, want %q", key, got, val)
		}
	}
}

// TestJournal_ReadOnlyOpenIsCheap: a process that only reads (a shell
// completion, a one-shot get) must not pay for the 64 MiB log: opening a
// clean one reads its header, and opening none makes none.
func TestJournal_ReadOnlyOpenIsCheap(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kv.db")
	db, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if st, err := os.Stat(path + "-redo"); err != nil || st.Size() != 0 {
		t.Fatalf("a store that wrote nothing made a log: %v %v", st, err)
	}
	db, err = Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutEntry(ctx, entry(t, db, "k"), storage.PutCondition{}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Written up to where a checkpoint empties it, reserved up to its cap.
	if st, err := os.Stat(path + "-redo"); err != nil || st.Size() != journalCheckpoint+1<<20 ||
		st.Sys().(*syscall.Stat_t).Blocks*512 < journalCap {
		t.Fatalf("a write left the log %v %v, want %d bytes written, %d reserved", st, err, journalCheckpoint+1<<20, journalCap)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	j, batches, err := openJournal(path + "-redo")
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	j.f.Close()
	if len(batches) != 0 || j.used() {
		t.Fatalf("a clean close left %d batches in the log", len(batches))
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("opening a clean log allocated %d bytes, want under 1 MiB", n)
	}
}

// TestJournal_DropsABatchAnotherProcessCommittedAfter: the journal's holder
// dies between a batch's log sync and its commit (here, SQLite is put back
// as it was before the batch), so the batch was never acknowledged. If
// another process on the same file then commits writes of its own, the
// batch is not replayed at the next open: it would land after them. With no
// such commit it is replayed, as after a power cut.
func TestJournal_DropsABatchAnotherProcessCommittedAfter(t *testing.T) {
	for _, other := range []bool{false, true} {
		t.Run(fmt.Sprintf("other_process_wrote=%v", other), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "kv.db")
			put := func(db *DB, writer string) {
				t.Helper()
				e := entry(t, db, "k")
				e.Writer = writer
				if err := db.PutEntry(ctx, e, storage.PutCondition{}); err != nil {
					t.Fatal(err)
				}
			}
			a := openJournaled(t, path)
			put(a, "a1")
			if err := a.batch.checkpointNow(ctx); err != nil {
				t.Fatal(err)
			}
			snap := filepath.Join(dir, "snap.db")
			if _, err := a.X.Exec(`VACUUM INTO ?`, snap); err != nil {
				t.Fatal(err)
			}
			put(a, "a2") // logged; its commit is undone below
			crash(a)
			for _, suffix := range []string{"-wal", "-shm"} {
				os.Remove(path + suffix)
			}
			if err := os.Rename(snap, path); err != nil {
				t.Fatal(err)
			}
			want := "a2"
			if other {
				// Another process, which does not hold the journal, writes.
				lock, err := os.OpenFile(path+"-redo.lock", os.O_RDWR|os.O_CREATE, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := tryLock(lock); !ok || err != nil {
					t.Fatalf("lock the journal: %v, %v", ok, err)
				}
				b, err := Open(ctx, "sqlite://"+path)
				if err != nil {
					t.Fatal(err)
				}
				if b.journal != nil {
					t.Fatal("the second process holds the journal")
				}
				put(b, "b")
				b.Close()
				lock.Close()
				want = "b"
			}
			c := openJournaled(t, path)
			defer c.Close()
			var got []string
			if err := c.X.Select(&got, `SELECT writer FROM kv_versions WHERE namespace = 'ns' AND key = 'k' ORDER BY version`); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0] != "a1" || got[1] != want {
				t.Errorf("versions of k written by %q; want a1 then %s", got, want)
			}
			if e, err := c.GetEntry(ctx, "ns", "k"); err != nil || e.Writer != want || e.Version != 2 {
				t.Errorf("k = %+v, %v; want version 2 by %s", e, err, want)
			}
			put(c, "c") // writes go on
			if e, err := c.GetEntry(ctx, "ns", "k"); err != nil || e.Version != 3 {
				t.Errorf("k after a write = %+v, %v; want version 3", e, err)
			}
		})
	}
}

// TestJournal_TwoProcessesRacingConditionalWrites: the journal's holder and
// a second handle on the same file (FULL commits, no journal), 8 goroutines
// each, race creates of shared keys (overwrite=false) and compare-and-set
// updates of one counter. Every acknowledged write is read back, each key has
// exactly one creator, the counter's versions are exactly its successful
// updates, kv_journal.commits stays within what the batches of both can
// count, and a replay after the holder crashes changes nothing (no batch
// dropped or run twice).
func TestJournal_TwoProcessesRacingConditionalWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kv.db")
	a := openJournaled(t, path)
	b, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	if b.journal != nil {
		t.Fatal("the second handle holds the journal")
	}
	seed := entry(t, a, "counter")
	seed.Writer = "seed"
	if err := a.PutEntry(ctx, seed, storage.PutCondition{NoOverwrite: true}); err != nil {
		t.Fatal(err)
	}
	const keys, perG = 30, 40
	var mu sync.Mutex
	creators := map[string][]string{} // key → writers told they created it
	var casOK []string                // writers whose compare-and-set was acknowledged
	var wg sync.WaitGroup
	for h, db := range []*DB{a, b} {
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perG {
					writer := fmt.Sprintf("h%d-g%d-%d", h, g, i)
					key := fmt.Sprint("c", (g*perG+i)%keys)
					e := entry(t, db, key)
					e.Writer = writer
					err := db.PutEntry(ctx, e, storage.PutCondition{NoOverwrite: true})
					switch kvflow.ErrorCode(err) {
					case "":
						mu.Lock()
						creators[key] = append(creators[key], writer)
						mu.Unlock()
					case kvflow.ECONFLICT:
					default:
						t.Error(err)
						return
					}
					cur, err := db.GetEntry(ctx, "ns", "counter")
					if err != nil {
						t.Error(err)
						return
					}
					c := entry(t, db, "counter")
					c.Writer = writer
					err = db.PutEntry(ctx, c, storage.PutCondition{IfVersion: cur.Version})
					switch kvflow.ErrorCode(err) {
					case "":
						mu.Lock()
						casOK = append(casOK, writer)
						mu.Unlock()
					case kvflow.ECONFLICT:
					default:
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for k := range keys {
		key := fmt.Sprint("c", k)
		e, err := a.GetEntry(ctx, "ns", key)
		if err != nil || len(creators[key]) != 1 || e.Writer != creators[key][0] || e.Version != 1 {
			t.Errorf("%s = %+v, %v; told created by %q: want exactly one creator, its write read back", key, e, err, creators[key])
		}
	}
	var writers []string
	if err := a.X.Select(&writers, `SELECT writer FROM kv_versions WHERE namespace = 'ns' AND key = 'counter' ORDER BY version`); err != nil {
		t.Fatal(err)
	}
	if len(writers) != 1+len(casOK) || len(casOK) == 0 {
		t.Fatalf("counter has %d versions for %d acknowledged compare-and-sets", len(writers), len(casOK))
	}
	acked := map[string]bool{}
	for _, w := range casOK {
		acked[w] = true
	}
	for _, w := range writers[1:] {
		if !acked[w] {
			t.Errorf("counter version by %s, whose compare-and-set was not acknowledged", w)
		}
		delete(acked, w)
	}
	if len(acked) != 0 {
		t.Errorf("acknowledged compare-and-sets missing from the counter's versions: %v", acked)
	}
	var commits, versions int
	if err := a.X.Get(&commits, `SELECT commits FROM kv_journal`); err != nil {
		t.Fatal(err)
	}
	if err := a.X.Get(&versions, `SELECT COUNT(*) FROM kv_versions`); err != nil {
		t.Fatal(err)
	}
	// Each committed batch wrote at least one version, or only intents
	// (entry() adds one per write, through the same committer).
	if commits < 2 || commits > versions+2*2*8*perG {
		t.Errorf("kv_journal.commits = %d for %d versions", commits, versions)
	}
	t.Logf("%d creates, %d compare-and-sets acknowledged, %d commits", keys, len(casOK), commits)

	want := kvState(t, a)
	crash(a)
	b.Close()
	c := openJournaled(t, path)
	defer c.Close()
	if got := kvState(t, c); got != want {
		t.Errorf("a replay after the holder's crash changed the rows:\n got %s\nwant %s", got, want)
	}
	var after int
	if err := c.X.Get(&after, `SELECT commits FROM kv_journal`); err != nil || after != commits {
		t.Errorf("commits after reopening = %d, %v; want %d", after, err, commits)
	}
}
