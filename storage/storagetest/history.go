package storagetest

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

func historySetDeleteRestore(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	cli := storage.WithWriter(ctx, storage.WriterCLI)
	tok := storage.WithWriter(ctx, storage.TokenWriter("ci"))
	if _, err := s.Set(cli, ns, "k", storage.String("one"), storage.SetOptions{Description: "first"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set(tok, ns, "k", storage.Value{Type: storage.NUMBER, V: int64(2)}, storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Delete(tok, ns, "k"); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	p, err := s.History(ctx, ns, "k", storage.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := summary(p.Versions)
	want := "3 DELETE NUMBER token:ci | 2 SET NUMBER token:ci | 1 SET STRING cli"
	if got != want || p.Next != 0 {
		t.Fatalf("history = %q (next %d), want %q", got, p.Next, want)
	}
	if v := p.Versions[2]; v.Description != "first" || v.Size <= 0 || len(v.Hash) != 64 || v.Object == "" {
		t.Errorf("version 1 metadata = %+v", v)
	}
	if v := p.Versions[0]; v.Object != "" || !v.Tombstone() {
		t.Errorf("tombstone = %+v, want no object", v)
	}
	if v, val, err := s.GetVersion(ctx, ns, "k", 1); err != nil || val.V != "one" || v.Version != 1 {
		t.Errorf("GetVersion 1 = %v, %v", val.V, err)
	}
	if _, _, err := s.GetVersion(ctx, ns, "k", 3); kvflow.ErrorCode(err) != kvflow.ENOTFOUND || !strings.Contains(err.Error(), "deletion") {
		t.Errorf("GetVersion of a tombstone = %v, want ENOTFOUND naming a deletion", err)
	}
	if _, _, err := s.GetVersion(ctx, ns, "k", 9); kvflow.ErrorCode(err) != kvflow.ENOTFOUND || !strings.Contains(err.Error(), "no version 9") {
		t.Errorf("GetVersion 9 = %v, want ENOTFOUND naming version 9", err)
	}
	// Restore the deleted key, guarded by the tombstone's version.
	e, err := s.Restore(cli, ns, "k", 1, storage.SetOptions{IfVersion: 3})
	if err != nil || e.Version != 4 || e.Description != "first" || e.Type != storage.STRING {
		t.Fatalf("Restore 1 = %+v, %v", e, err)
	}
	if _, v, err := s.Get(ctx, ns, "k"); err != nil || v.V != "one" {
		t.Errorf("Get after restore = %v, %v", v.V, err)
	}
	if _, err := s.Restore(cli, ns, "k", 2, storage.SetOptions{IfVersion: 3}); kvflow.ErrorCode(err) != kvflow.ECONFLICT {
		t.Errorf("Restore with a stale version = %v, want ECONFLICT", err)
	}
	if e, err := s.Restore(cli, ns, "k", 2, storage.SetOptions{IfVersion: 4}); err != nil || e.Version != 5 || e.Type != storage.NUMBER {
		t.Errorf("Restore 2 at version 4 = %+v, %v", e, err)
	}
	// Pages, newest first.
	p, err = s.History(ctx, ns, "k", storage.HistoryOptions{Limit: 2})
	if err != nil || summary(p.Versions) != "5 SET NUMBER cli | 4 SET STRING cli" || p.Next != 4 {
		t.Fatalf("page 1 = %q next %d, %v", summary(p.Versions), p.Next, err)
	}
	p, err = s.History(ctx, ns, "k", storage.HistoryOptions{Limit: 2, Before: p.Next})
	if err != nil || summary(p.Versions) != "3 DELETE NUMBER token:ci | 2 SET NUMBER token:ci" || p.Next != 2 {
		t.Fatalf("page 2 = %q next %d, %v", summary(p.Versions), p.Next, err)
	}
	// A key re-created after a delete goes on from its history.
	mustSet(t, s, ns, "r", storage.String("x"), storage.SetOptions{})
	s.Delete(ctx, ns, "r")
	if e := mustSet(t, s, ns, "r", storage.String("y"), storage.SetOptions{NoOverwrite: true}); e.Version != 3 {
		t.Errorf("re-created key at version %d, want 3", e.Version)
	}
}

func historyIncrementKeepsEveryVersion(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	one := storage.Value{Type: storage.NUMBER, V: int64(1)}
	for i := 0; i < 3; i++ {
		if _, _, err := s.Increment(ctx, ns, "n", one, storage.SetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for v := int64(1); v <= 3; v++ {
		if _, val, err := s.GetVersion(ctx, ns, "n", v); err != nil || val.V != v {
			t.Errorf("version %d = %v, %v", v, val.V, err)
		}
	}
}

func retentionByCountPurgedVersion404ObjectGone(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{})
	s := p.Store
	var objects []string
	for i := 1; i <= 5; i++ {
		objects = append(objects, mustSet(t, s, ns, "k", storage.String(fmt.Sprint("v", i)), storage.SetOptions{}).Object)
		mustSet(t, s, "keep.all", "k", storage.String(fmt.Sprint("v", i)), storage.SetOptions{})
	}
	policy := storage.HistoryPolicy{Default: storage.Retention{Versions: 2}, Namespaces: map[string]storage.Retention{"keep": {Versions: -1}}}
	if n, _, err := s.PruneHistory(ctx, policy, 2); err != nil || n != 3 {
		t.Fatalf("PruneHistory = %d, %v; want 3 versions of %s/k", n, err, ns)
	}
	if pg, _ := s.History(ctx, ns, "k", storage.HistoryOptions{}); summary(pg.Versions) != "5 SET STRING  | 4 SET STRING " {
		t.Errorf("kept = %q", summary(pg.Versions))
	}
	if pg, _ := s.History(ctx, "keep.all", "k", storage.HistoryOptions{}); len(pg.Versions) != 5 {
		t.Errorf("keep.all kept %d versions, want all 5 (its own rule)", len(pg.Versions))
	}
	_, _, err := s.GetVersion(ctx, ns, "k", 2)
	if kvflow.ErrorCode(err) != kvflow.ENOTFOUND || !strings.Contains(err.Error(), "Version 2") || !strings.Contains(err.Error(), "purged") {
		t.Errorf("GetVersion of a purged version = %v, want ENOTFOUND naming version 2 as purged", err)
	}
	if _, err := s.CollectGarbage(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for i, o := range objects {
		_, err := p.Bucket.Get(ctx, o)
		if gone := errors.Is(err, iofs.ErrNotExist); gone != (i < 3) {
			t.Errorf("object of version %d: gone=%v (%v)", i+1, gone, err)
		}
	}
	if _, v, err := s.GetVersion(ctx, ns, "k", 4); err != nil || v.V != "v4" {
		t.Errorf("kept version 4 = %v, %v", v.V, err)
	}
}

func retentionByAgeLiveVersionKept(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	s := open(t, storage.Options{Now: clock.Now}).Store
	mustSet(t, s, ns, "k", storage.String("v1"), storage.SetOptions{})
	clock.Add(2 * time.Hour)
	mustSet(t, s, ns, "k", storage.String("v2"), storage.SetOptions{})
	clock.Add(time.Hour)
	mustSet(t, s, ns, "k", storage.String("v3"), storage.SetOptions{})
	policy := storage.HistoryPolicy{Default: storage.Retention{Versions: -1, MaxAge: 90 * time.Minute}}
	if n, _, err := s.PruneHistory(ctx, policy, 0); err != nil || n != 1 {
		t.Fatalf("PruneHistory = %d, %v; want version 1 only", n, err)
	}
	clock.Add(10 * time.Hour)
	if n, _, err := s.PruneHistory(ctx, policy, 0); err != nil || n != 1 {
		t.Fatalf("PruneHistory later = %d, %v; want version 2 only (3 is live)", n, err)
	}
	if _, v, err := s.Get(ctx, ns, "k"); err != nil || v.V != "v3" {
		t.Errorf("live value = %v, %v", v.V, err)
	}
	if pg, _ := s.History(ctx, ns, "k", storage.HistoryOptions{}); len(pg.Versions) != 1 || pg.Versions[0].Version != 3 {
		t.Errorf("kept = %q", summary(pg.Versions))
	}
}

func snapshotReadsAsOfStartReadYourWrites(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	s := open(t, storage.Options{Now: clock.Now}).Store
	mustSet(t, s, ns, "k", storage.String("before"), storage.SetOptions{})
	mustSet(t, s, ns, "gone", storage.String("was here"), storage.SetOptions{})
	mustSet(t, s, ns, "mine", storage.String("theirs"), storage.SetOptions{})
	mustSet(t, s, ns, "ttl", storage.String("short"), storage.SetOptions{TTL: 2 * time.Second})
	clock.Add(time.Second)
	snap := storage.WithSnapshot(ctx, storage.Snapshot{At: clock.Now(), Execution: "e1"})
	own := storage.WithWriter(snap, storage.ExecutionWriter("e1", ns, "f", "t"))
	clock.Add(time.Second)
	// Another execution writes meanwhile.
	mustSet(t, s, ns, "k", storage.String("after"), storage.SetOptions{})
	mustSet(t, s, ns, "new", storage.String("x"), storage.SetOptions{})
	s.Delete(ctx, ns, "gone")
	// This one writes too.
	if _, err := s.Set(own, ns, "mine", storage.String("ours"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Second)
	for key, want := range map[string]any{"k": "before", "gone": "was here", "mine": "ours", "ttl": "short"} {
		if _, v, err := s.Get(snap, ns, key); err != nil || v.V != want {
			t.Errorf("snapshot Get %s = %v, %v; want %v", key, v.V, err, want)
		}
	}
	if _, _, err := s.Get(snap, ns, "new"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("snapshot Get of a key created later = %v, want ENOTFOUND", err)
	}
	if _, v, _ := s.Get(ctx, ns, "k"); v.V != "after" {
		t.Errorf("Get without the snapshot = %v", v.V)
	}
	// Increment under a snapshot still counts on the live value.
	one := storage.Value{Type: storage.NUMBER, V: int64(1)}
	s.Increment(ctx, ns, "n", one, storage.SetOptions{})
	if v, _, err := s.Increment(own, ns, "n", one, storage.SetOptions{}); err != nil || v.V != int64(2) {
		t.Errorf("Increment under a snapshot = %v, %v", v.V, err)
	}
	if _, err := s.Delete(own, ns, "k"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(snap, ns, "k"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("snapshot Get after its own delete = %v, want ENOTFOUND", err)
	}
	// Its delete of a key the snapshot shows but another writer deleted
	// since deletes nothing, and still reads back as deleted; its later
	// write reads back too.
	if deleted, err := s.Delete(own, ns, "gone"); err != nil || deleted {
		t.Errorf("Delete of a key already deleted = %v, %v; want false", deleted, err)
	}
	if _, _, err := s.Get(snap, ns, "gone"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("snapshot Get after its own delete of a key deleted since = %v, want ENOTFOUND", err)
	}
	if _, err := s.Set(own, ns, "gone", storage.String("back"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, v, err := s.Get(snap, ns, "gone"); err != nil || v.V != "back" {
		t.Errorf("snapshot Get after its own write = %v, %v; want back", v.V, err)
	}
}

func changesInOrderEveryKind(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	s := open(t, storage.Options{Now: clock.Now}).Store
	w := storage.WithWriter(ctx, "me")
	mustSet(t, s, ns, "a", storage.String("1"), storage.SetOptions{})
	mustSet(t, s, ns, "b", storage.String("1"), storage.SetOptions{TTL: time.Minute})
	if _, err := s.Set(w, ns, "a", storage.String("2"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Delete(w, ns, "a")
	mustSet(t, s, "other.ns", "a", storage.String("1"), storage.SetOptions{})
	clock.Add(time.Hour)
	if _, err := s.Purge(ctx, storage.PurgeOptions{Namespaces: []string{ns}}); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Changes(ctx, ns, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, fmt.Sprintf("%d %s %s v%d %s", c.Seq, c.Key, c.Change, c.Version, c.Writer))
	}
	want := []string{"1 a SET v1 ", "2 b SET v1 ", "3 a SET v2 me", "4 a DELETE v3 me", "5 b EXPIRE v2 expiry"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes = %q, want %q", got, want)
	}
	if cs, err := s.Changes(ctx, ns, 3, 1); err != nil || len(cs) != 1 || cs[0].Seq != 4 {
		t.Errorf("Changes after 3, limit 1 = %+v, %v", cs, err)
	}
	if cs, err := s.Changes(ctx, "other.ns", 0, 0); err != nil || len(cs) != 1 || cs[0].Seq != 1 {
		t.Errorf("other namespace's feed = %+v, %v; want its own seq 1", cs, err)
	}
	heads := func(want map[string]int64) {
		t.Helper()
		got, err := s.FeedHeads(ctx, []string{ns, "other.ns", "never.written"})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("FeedHeads = %v, %v; want %v (a namespace without changes left out)", got, err, want)
		}
		if h, err := s.FeedHead(ctx, ns); err != nil || h != want[ns] {
			t.Errorf("FeedHead = %d, %v; want %d as FeedHeads", h, err, want[ns])
		}
	}
	heads(map[string]int64{ns: 5, "other.ns": 1})
	if _, err := s.FeedHeads(ctx, []string{ns, "Bad Namespace"}); kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Errorf("FeedHeads with a bad namespace = %v, want EINVALID", err)
	}
	// Pruning the feed makes positions before the oldest kept one gone.
	// (The purge's EXPIRE is stamped by the database's clock, which is
	// not the test's: it stays.)
	clock.Add(30 * 24 * time.Hour)
	if _, n, err := s.PruneHistory(ctx, storage.HistoryPolicy{}, 0); err != nil || n != 5 {
		t.Fatalf("pruned %d changes, %v; want 5", n, err)
	}
	if _, err := s.Changes(ctx, ns, 2, 0); kvflow.ErrorCode(err) != kvflow.EEXPIRED {
		t.Errorf("Changes after a pruned seq = %v, want EEXPIRED", err)
	}
	if cs, err := s.Changes(ctx, ns, 5, 0); err != nil || len(cs) != 0 {
		t.Errorf("Changes after the last pruned seq = %v, %v; want none, no error", cs, err)
	}
	heads(map[string]int64{ns: 5, "other.ns": 1}) // pruning keeps the heads
	mustSet(t, s, ns, "c", storage.String("1"), storage.SetOptions{})
	if cs, err := s.Changes(ctx, ns, 5, 0); err != nil || len(cs) != 1 || cs[0].Seq != 6 {
		t.Errorf("Changes after 5 = %+v, %v; want seq 6", cs, err)
	}
	heads(map[string]int64{ns: 6, "other.ns": 1})
}

func changesConcurrentWritersGapFreeEveryVersionOnce(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				key := fmt.Sprintf("k%d", i%5)
				var err error
				if i%7 == 6 {
					_, err = s.Delete(ctx, ns, key)
				} else {
					_, err = s.Set(ctx, ns, key, storage.String("v"), storage.SetOptions{})
				}
				if err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Read as a consumer does, in small pages from its position.
	seen := map[string]bool{}
	var after int64
	for {
		cs, err := s.Changes(ctx, ns, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 {
			break
		}
		for _, c := range cs {
			if c.Seq != after+1 {
				t.Fatalf("seq %d after %d: a gap", c.Seq, after)
			}
			id := fmt.Sprintf("%s@%d", c.Key, c.Version)
			if seen[id] {
				t.Errorf("%s twice", id)
			}
			seen[id], after = true, c.Seq
		}
	}
	// Every version row of every key is in the feed, and nothing else.
	versions := 0
	for i := 0; i < 5; i++ {
		p, err := s.History(ctx, ns, fmt.Sprintf("k%d", i), storage.HistoryOptions{Limit: storage.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range p.Versions {
			if !seen[fmt.Sprintf("%s@%d", v.Key, v.Version)] {
				t.Errorf("version %s@%d not in the feed", v.Key, v.Version)
			}
		}
		versions += len(p.Versions)
	}
	if versions != len(seen) || after != int64(len(seen)) {
		t.Errorf("%d versions, %d changes, last seq %d", versions, len(seen), after)
	}
}

func summary(vs []storage.Version) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%d %s %s %s", v.Version, v.Change, v.Type, v.Writer)
	}
	return strings.Join(parts, " | ")
}

// historyEveryWriteKindRecordsItsWriter: Set, SetMany, Increment, Merge,
// Import, Restore and Delete each record the writer of their context.
func historyEveryWriteKindRecordsItsWriter(t *testing.T, open Opener) {
	ctx := storage.WithWriter(context.Background(), storage.TokenWriter("ops"))
	s := open(t, storage.Options{}).Store
	if _, err := s.Set(ctx, ns, "set", storage.String("a"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetMany(ctx, ns, []storage.BatchEntry{{Key: "many1", Value: storage.String("a")}, {Key: "many2", Value: storage.String("b")}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Increment(ctx, ns, "incr", storage.Value{Type: storage.NUMBER, V: int64(1)}, storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Merge(ctx, ns, "merge", map[string]any{"a": 1}, storage.MergeOptions{}); err != nil {
		t.Fatal(err)
	}
	line := `{"namespace":"` + ns + `","key":"import","type":"STRING","value":"x"}` + "\n"
	if _, err := s.Import(ctx, strings.NewReader(line), storage.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(ctx, ns, "set", 1, storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, ns, "incr"); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"set": "2 SET STRING token:ops | 1 SET STRING token:ops", "many1": "1 SET STRING token:ops", "many2": "1 SET STRING token:ops",
		"incr": "2 DELETE NUMBER token:ops | 1 SET NUMBER token:ops", "merge": "1 SET JSON token:ops", "import": "1 SET STRING token:ops",
	} {
		p, err := s.History(context.Background(), ns, key, storage.HistoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := summary(p.Versions); got != want {
			t.Errorf("history of %s = %q, want %q", key, got, want)
		}
	}
}
