package storagetest

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

func mergeDeepMergesCreatesAndKeepsMetadata(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	s := open(t, storage.Options{Now: clock.Now}).Store
	v, e, err := s.Merge(ctx, ns, "cfg", map[string]any{"a": map[string]any{"x": 1}, "big": "keep"}, storage.MergeOptions{})
	if err != nil || e.Version != 1 || v.Type != storage.JSON {
		t.Fatalf("Merge creating = %v, %+v, %v", v, e, err)
	}
	mustSet(t, s, ns, "cfg", storage.Value{Type: storage.JSON, V: map[string]any{
		"a": map[string]any{"x": int64(1), "y": int64(2)}, "list": []any{int64(1), int64(2)}, "gone": "soon"}},
		storage.SetOptions{Description: "config", TTL: time.Hour})
	patch, err := storage.DecodeJSON([]byte(`{"a":{"y":3,"z":12345678901234567890},"list":[0.1],"gone":null,"n":null}`))
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)
	_, e, err = s.Merge(ctx, ns, "cfg", patch, storage.MergeOptions{NullDeletes: true})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	got, gv, err := s.Get(ctx, ns, "cfg")
	want := `{"a":{"x":1,"y":3,"z":12345678901234567890},"list":[0.1]}`
	if err != nil || gv.Text() != want {
		t.Errorf("merged value = %s, %v; want %s", gv.Text(), err, want)
	}
	if got.Description != "config" || got.Expires == nil || !got.Expires.Equal(clock.Now().Add(-time.Minute).Add(time.Hour)) || got.Version != e.Version {
		t.Errorf("metadata after Merge = %+v; want description and absolute expiry kept", got)
	}
	// Without NullDeletes a null is stored (Kestra's Put deep merge).
	if _, _, err := s.Merge(ctx, ns, "cfg", map[string]any{"n": nil}, storage.MergeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, gv, _ := s.Get(ctx, ns, "cfg"); gv.Text() != `{"a":{"x":1,"y":3,"z":12345678901234567890},"list":[0.1],"n":null}` {
		t.Errorf("after merging a null = %s", gv.Text())
	}
}

func mergeRefusalsAndReplacement(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	mustSet(t, s, ns, "text", storage.String("hello"), storage.SetOptions{Description: "d"})
	if _, _, err := s.Merge(ctx, ns, "text", map[string]any{"a": 1}, storage.MergeOptions{ObjectOnly: true}); kvflow.ErrorCode(err) != kvflow.ECONFLICT {
		t.Errorf("field update of a STRING = %v, want ECONFLICT", err)
	}
	if _, _, err := s.Merge(ctx, ns, "nope", map[string]any{"a": 1}, storage.MergeOptions{ErrorOnMissing: true}); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("Merge with ErrorOnMissing on a missing key = %v, want ENOTFOUND", err)
	}
	if _, _, err := s.Merge(ctx, ns, "text", map[string]any{"a": 1}, storage.MergeOptions{IfVersion: 7}); kvflow.ErrorCode(err) != kvflow.ECONFLICT {
		t.Errorf("Merge at the wrong version = %v, want ECONFLICT", err)
	}
	// A scalar patch replaces, keeping the description.
	v, e, err := s.Merge(ctx, ns, "text", "new", storage.MergeOptions{IfVersion: 1})
	if err != nil || v.V != "new" || e.Version != 2 || e.Description != "d" {
		t.Errorf("replacing Merge = %v, %+v, %v", v, e, err)
	}
	if _, _, err := s.Merge(ctx, ns, "text", nil, storage.MergeOptions{}); kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Errorf("null patch = %v, want EINVALID", err)
	}
}

func mergeConcurrentDistinctFieldsAllLand(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	const writers, rounds = 8, 3
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				field := fmt.Sprintf("f%d_%d", w, r)
				if _, _, err := s.Merge(ctx, ns, "shared", map[string]any{"fields": map[string]any{field: int64(w*100 + r)}}, storage.MergeOptions{}); err != nil {
					t.Errorf("Merge %s: %v", field, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	e, v, err := s.Get(ctx, ns, "shared")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	for w := 0; w < writers; w++ {
		for r := 0; r < rounds; r++ {
			want[fmt.Sprintf("f%d_%d", w, r)] = int64(w*100 + r)
		}
	}
	if got := v.V.(map[string]any)["fields"]; !reflect.DeepEqual(got, want) || e.Version != writers*rounds {
		t.Errorf("after %d concurrent merges: version %d, fields %v; want every field", writers*rounds, e.Version, got)
	}
}

func deleteAllEveryKeyWithATombstoneChildrenKept(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	var want []string
	for i := 0; i < 1005; i++ { // more than one page
		want = append(want, fmt.Sprintf("k%04d", i))
	}
	batch := make([]storage.BatchEntry, len(want))
	for i, k := range want {
		batch[i] = storage.BatchEntry{Key: k, Value: storage.String("v")}
	}
	if _, err := s.SetMany(ctx, "gone.ns", batch); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "gone.ns.child", "stay", storage.String("v"), storage.SetOptions{})
	mustSet(t, s, "other", "stay", storage.String("v"), storage.SetOptions{})
	got, err := s.DeleteAll(ctx, "gone.ns")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("DeleteAll = %d keys, %v; want %d", len(got), err, len(want))
	}
	if keys, _ := s.Keys(ctx, "gone.ns", ""); len(keys) != 0 {
		t.Errorf("keys left after DeleteAll: %d", len(keys))
	}
	for _, ns := range []string{"gone.ns.child", "other"} {
		if _, err := s.Stat(ctx, ns, "stay"); err != nil {
			t.Errorf("%s/stay after DeleteAll of gone.ns: %v", ns, err)
		}
	}
	h, err := s.History(ctx, "gone.ns", "k0500", storage.HistoryOptions{})
	if err != nil || len(h.Versions) != 2 || !h.Versions[0].Tombstone() {
		t.Errorf("history of a deleted key = %+v, %v; want a tombstone over its version", h, err)
	}
	if got, err := s.DeleteAll(ctx, "gone.ns"); err != nil || len(got) != 0 {
		t.Errorf("DeleteAll of an empty namespace = %v, %v", got, err)
	}
}

func importFailMidBatchLinesBeforeWrittenNoneAfter(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	mustSet(t, s, "imp", "b", storage.String("mine"), storage.SetOptions{})
	in := `{"namespace":"imp","key":"a","type":"STRING","value":"1"}
	{"namespace":"imp","key":"b","type":"STRING","value":"2"}
	{"namespace":"imp","key":"c","type":"STRING","value":"3"}
	`
	res, err := s.Import(ctx, strings.NewReader(in), storage.ImportOptions{OnConflict: storage.OnConflictFail})
	if kvflow.ErrorCode(err) != kvflow.ECONFLICT || !strings.Contains(err.Error(), "Line 2 ") || res.Written != 1 {
		t.Fatalf("Import fail = %+v, %v; want ECONFLICT at line 2 after 1 written", res, err)
	}
	if keys, _ := s.Keys(ctx, "imp", ""); !reflect.DeepEqual(keys, []string{"a", "b"}) {
		t.Errorf("keys after the stopped import = %v, want [a b]", keys)
	}
	if _, v, _ := s.Get(ctx, "imp", "b"); v.V != "mine" {
		t.Errorf("b = %v, want it kept", v.V)
	}
	res, err = s.Import(ctx, strings.NewReader(in), storage.ImportOptions{})
	if err != nil || res.Written != 1 || res.Skipped != 2 {
		t.Errorf("re-run with skip = %+v, %v; want c written, a and b skipped", res, err)
	}
}

func importConcurrentSkipImportersAndSetsEachKeyOnceNothingLost(t *testing.T, open Opener) {
	ctx := context.Background()
	// 4 importers with skip race for the same 600 keys (batches of 500,
	// so two batches each) while 2 writers Set some of them: each key is
	// created exactly once by an importer or a Set, every Set that was
	// acknowledged after its key existed wins over no import, and after
	// GC with no grace every key still reads back.
	s := open(t, storage.Options{}).Store
	const keys, importers = 600, 4
	var in strings.Builder
	for k := range keys {
		fmt.Fprintf(&in, `{"namespace":"impr","key":"k%03d","type":"STRING","value":"imported"}`+"\n", k)
	}
	var mu sync.Mutex
	written := 0
	setWon := map[string]bool{} // keys a Set created (NoOverwrite) or replaced
	var wg sync.WaitGroup
	for range importers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Import(ctx, strings.NewReader(in.String()), storage.ImportOptions{OnConflict: storage.OnConflictSkip})
			if err != nil {
				t.Errorf("Import: %v", err)
			}
			mu.Lock()
			written += res.Written
			mu.Unlock()
		}()
	}
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < keys; k += 7 {
				key := fmt.Sprintf("k%03d", k)
				if _, err := s.Set(ctx, "impr", key, storage.String("set"), storage.SetOptions{}); err != nil {
					t.Errorf("Set %s: %v", key, err)
					continue
				}
				mu.Lock()
				setWon[key] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if _, err := s.CollectGarbage(ctx, 0); err != nil {
		t.Fatalf("CollectGarbage: %v", err)
	}
	for k := range keys {
		key := fmt.Sprintf("k%03d", k)
		_, v, err := s.Get(ctx, "impr", key)
		if err != nil {
			t.Errorf("%s after the race: %v", key, err)
			continue
		}
		// An import line written after the key existed would be an
		// overwrite: the value is a Set's only when no import came after.
		if !setWon[key] && v.V != "imported" {
			t.Errorf("%s = %v, want imported", key, v.V)
		}
		if !setWon[key] {
			// Created once by one importer; the others skipped it.
			if pg, err := s.History(ctx, "impr", key, storage.HistoryOptions{}); err != nil || len(pg.Versions) != 1 {
				t.Errorf("%s has history %s, %v; want one imported version", key, summary(pg.Versions), err)
			}
		}
	}
	if written > keys {
		t.Errorf("the importers wrote %d lines for %d keys with skip: some key was written twice", written, keys)
	}
	if noSet := keys - len(setWon); written < noSet {
		t.Errorf("the importers wrote %d lines for %d keys no Set touched", written, noSet)
	}
}
