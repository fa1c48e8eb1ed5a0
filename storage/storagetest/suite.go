package storagetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// Clock is a settable clock for TTL tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2024, 7, 15, 6, 10, 33, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock forward.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// StoreAcceptance is the conformance suite every backend pair passes: each
// case below is a function that takes fresh stores from open, run as a subtest
// of its name.
func StoreAcceptance(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, open Opener)
	}{
		{"RoundTripEveryType", roundTripEveryType},
		{"OverwriteBumpsVersionKeepsCreation", overwriteBumpsVersionKeepsCreation},
		{"OverwriteFalseOnExistingKey_Conflict", overwriteFalseOnExistingKeyConflict},
		{"TTL_ExpiredBehavesAsMissing", ttlExpiredBehavesAsMissing},
		{"BadNames_RefusedEverywhere_NothingStored", badNamesRefusedEverywhereNothingStored},
		{"ValueNotOfItsType_Refused_NothingStored", valueNotOfItsTypeRefusedNothingStored},
		{"Missing_NotFoundNamesKeyAndNamespace", missingNotFoundNamesKeyAndNamespace},
		{"List_SortedPrefixPaged", listSortedPrefixPaged},
		{"List_ContainsIgnoreCaseOffsetAndCount", listContainsIgnoreCaseOffsetAndCount},
		{"Delete_ReportsExistence", deleteReportsExistence},
		{"Purge_ExpiredInBatches_ByNamespaceAndGlob", purgeExpiredInBatchesByNamespaceAndGlob},
		{"Purge_RacingOverwrites_NoAcknowledgedWriteLost", purgeRacingOverwritesNoAcknowledgedWriteLost},
		{"Purge_RacingPackedOverwritesAndGC_NoAcknowledgedWriteLost", purgeRacingPackedOverwritesAndGCNoAcknowledgedWriteLost},
		{"CollectGarbage_RemovesReplacedAndOrphans_KeepsLive", collectGarbageRemovesReplacedAndOrphansKeepsLive},
		{"Invariant2_ValueMatchesMetadata_CorruptionDetected", invariant2ValueMatchesMetadataCorruptionDetected},
		{"Invariant3_CreateRace_ExactlyOneWins", invariant3CreateRaceExactlyOneWins},
		{"Invariant3_CreateRaceOnExpiredKeys_RacingPurge_ExactlyOneWinsEach", createRaceOnExpired},
		{"Invariant1_ConcurrentWriters_NoTornReads", invariant1ConcurrentWritersNoTornReads},
		{"Stream_SetAndOpen", streamSetAndOpen},
		{"Invariant5_NoValueBytesInDatabase", invariant5NoValueBytesInDatabase},
		{"LongKey_350Characters_StoredReadListedAndKeptByGC", longKey350CharactersStoredReadListedAndKeptByGC},
		{"MissingObject_IsCorruptionAndFoundByMissingObjects", missingObjectIsCorruptionAndFoundByMissingObjects},
		{"Description_UTF8NULAndLengthRefused", descriptionUTF8NULAndLengthRefused},
		{"NegativeZero_ReadsBackAsNegativeZero", negativeZeroReadsBackAsNegativeZero},
		{"IfVersion_CompareAndSet", ifVersionCompareAndSet},
		{"Increment_ConcurrentNeverLosesAnUpdate", incrementConcurrentNeverLosesAnUpdate},
		{"ExactNumbers_BigIntegersAndDecimalsRoundTrip", exactNumbersBigIntegersAndDecimalsRoundTrip},
		{"SetMany_AllOrNothing", setManyAllOrNothing},
		{"Increment_ExactOverflowRefusedAndExpiryAbsolute", incrementExactOverflowRefusedAndExpiryAbsolute},
		{"ExportImport_RoundTripLossless_Conflicts", exportImportRoundTripLosslessConflicts},
		{"DeleteIf_CompareAndDelete", deleteIfCompareAndDelete},
		{"DeleteIf_RacingCompareAndSet_OneWinsPerVersion", deleteIfRacingCompareAndSetOneWinsPerVersion},

		// Versions and the change feed (history.go).
		{"History_SetDeleteRestore", historySetDeleteRestore},
		{"History_EveryWriteKind_RecordsItsWriter", historyEveryWriteKindRecordsItsWriter},
		{"History_IncrementKeepsEveryVersion", historyIncrementKeepsEveryVersion},
		{"Retention_ByCount_PurgedVersion404_ObjectGone", retentionByCountPurgedVersion404ObjectGone},
		{"Retention_ByAge_LiveVersionKept", retentionByAgeLiveVersionKept},
		{"Snapshot_ReadsAsOfStart_ReadYourWrites", snapshotReadsAsOfStartReadYourWrites},
		{"Changes_InOrder_EveryKind", changesInOrderEveryKind},
		{"Changes_ConcurrentWriters_GapFreeEveryVersionOnce", changesConcurrentWritersGapFreeEveryVersionOnce},

		// Sensitive entries are sealed in the bucket, never in the database, read
		// back only with the right key, and keep their flag through history,
		// SetMany, Increment, Restore and export/import (sensitive.go).
		{"Sensitive_SealedAtRest_FlagKeptEverywhere", sensitiveSealedAtRestFlagKeptEverywhere},
		{"Sensitive_WrongOrMissingKey_ClearError", sensitiveWrongOrMissingKeyClearError},
		{"Sensitive_ExportImportRoundTrip", sensitiveExportImportRoundTrip},

		// Merge: deep merge, creation, metadata kept, JSON merge patch nulls,
		// refusals, and concurrent merges of distinct fields (merge.go).
		{"Merge_DeepMergesCreatesAndKeepsMetadata", mergeDeepMergesCreatesAndKeepsMetadata},
		{"Merge_RefusalsAndReplacement", mergeRefusalsAndReplacement},
		{"Merge_ConcurrentDistinctFields_AllLand", mergeConcurrentDistinctFieldsAllLand},

		// DeleteAll: every live key of the namespace, each with a tombstone, and
		// nothing of another namespace, a child's included (merge.go).
		{"DeleteAll_EveryKeyWithATombstone_ChildrenKept", deleteAllEveryKeyWithATombstoneChildrenKept},

		// A batched import stops exactly at a conflicting line under fail: the
		// lines before it written, none after (merge.go).
		{"Import_FailMidBatch_LinesBeforeWrittenNoneAfter", importFailMidBatchLinesBeforeWrittenNoneAfter},
		{"Import_ConcurrentSkipImportersAndSets_EachKeyOnceNothingLost", importConcurrentSkipImportersAndSetsEachKeyOnceNothingLost},

		{"Namespaces_WithCounts", namespacesWithCounts},

		// Garbage collection reads records, never the bucket's listing, and
		// with no grace never takes what a committed write needs (gc.go).
		{"GC_NoGrace_RacingWriters_NoAcknowledgedWriteLost", gcRacingWritersNoAcknowledgedWriteLost(0)},
		{"GC_NegativeGrace_TakesReservedNamesInUse_NoAcknowledgedWriteLost", gcRacingWritersNoAcknowledgedWriteLost(-time.Hour)},
		{"GC_WorkFollowsTheGarbage_NoListing", gcWorkFollowsTheGarbageNoListing},
		{"GC_TakeStaleIntents_RacingRenewals_EachOnce", gcTakeStaleIntentsRacingRenewalsEachOnce},
		{"GC_ReservedNames_WritesPayNoIntentStatement", gcReservedNamesWritesPayNoIntentStatement},
		{"GC_TakesIntentDuringFailedUpload_WriteRetried", gcTakesIntentDuringFailedUploadWriteRetried},

		// Batch writes put their small values in one pack object (pack.go).
		{"Packs_BatchWritesShareOneObject_CollectedWithTheLastMember", packsBatchWritesShareOneObject},
		{"Packs_TwoCollectorsEachTakingAMember_PackStillCollected", packsTwoCollectorsEachTakingAMember},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, open) })
	}
}

// ns is the namespace most cases write to.
const ns = "company.team"

func roundTripEveryType(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{CacheSize: -1}).Store
	values := map[string]storage.Value{
		"string":   storage.String("Hello \"World\" é\n"),
		"int":      {Type: storage.NUMBER, V: int64(42)},
		"decimal":  {Type: storage.NUMBER, V: 123.45},
		"bool":     {Type: storage.BOOLEAN, V: true},
		"datetime": {Type: storage.DATETIME, V: time.Date(2024, 7, 15, 6, 10, 33, 422e6, time.UTC)},
		"date":     {Type: storage.DATE, V: storage.Date{Time: time.Date(2024, 7, 15, 0, 0, 0, 0, time.UTC)}},
		"duration": {Type: storage.DURATION, V: storage.Duration{Text: "P1DT5S", D: 24*time.Hour + 5*time.Second}},
		"json":     {Type: storage.JSON, V: map[string]any{"name": "John Doe", "age": int64(32), "address": map[string]any{"city": "Paris"}}},
		"list":     {Type: storage.JSON, V: []any{int64(1), "two", 3.5, nil}},
		"p1d":      storage.String("P1D"), // stays a STRING: the type is stored, never inferred
	}
	for key, v := range values {
		e, err := s.Set(ctx, ns, key, v, storage.SetOptions{Description: "d-" + key})
		if err != nil {
			t.Fatalf("Set %s: %v", key, err)
		}
		if e.Version != 1 || e.Type != v.Type || e.Size <= 0 || len(e.Hash) != 64 || !e.Created.Equal(e.Updated) {
			t.Errorf("Set %s metadata = %+v", key, e)
		}
		got, gv, err := s.Get(ctx, ns, key)
		if err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		if !reflect.DeepEqual(gv, v) {
			t.Errorf("Get %s = %#v, want %#v", key, gv, v)
		}
		if got.Description != "d-"+key || got.Version != 1 || got.Hash != e.Hash || got.Size != e.Size || got.Type != v.Type {
			t.Errorf("Get %s metadata = %+v, set returned %+v", key, got, e)
		}
	}
}

func overwriteBumpsVersionKeepsCreation(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	s := open(t, storage.Options{Now: clock.Now}).Store
	first := mustSet(t, s, ns, "k", storage.String("v1"), storage.SetOptions{})
	clock.Add(time.Second)
	second := mustSet(t, s, ns, "k", storage.String("v2"), storage.SetOptions{})
	if second.Version != 2 || !second.Created.Equal(first.Created) || !second.Updated.After(first.Updated) {
		t.Errorf("second write = %+v, first %+v", second, first)
	}
	if _, v, _ := s.Get(ctx, ns, "k"); v.V != "v2" {
		t.Errorf("Get after overwrite = %v", v.V)
	}
}

func overwriteFalseOnExistingKeyConflict(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	mustSet(t, s, ns, "k", storage.String("kept"), storage.SetOptions{})
	_, err := s.Set(ctx, ns, "k", storage.String("lost"), storage.SetOptions{NoOverwrite: true})
	if kvflow.ErrorCode(err) != kvflow.ECONFLICT || !strings.Contains(err.Error(), "'k'") || !strings.Contains(err.Error(), ns) {
		t.Fatalf("Set overwrite=false = %v, want ECONFLICT naming key and namespace", err)
	}
	if e, v, _ := s.Get(ctx, ns, "k"); v.V != "kept" || e.Version != 1 {
		t.Errorf("after refused write: %v version %d", v.V, e.Version)
	}
}

func ttlExpiredBehavesAsMissing(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	s := open(t, storage.Options{Now: clock.Now}).Store
	e := mustSet(t, s, ns, "short", storage.String("x"), storage.SetOptions{TTL: 5 * time.Minute})
	mustSet(t, s, ns, "long", storage.String("y"), storage.SetOptions{})
	if e.Expires == nil || !e.Expires.Equal(clock.Now().Add(5*time.Minute)) {
		t.Fatalf("expiry = %v, want now+5m", e.Expires)
	}
	clock.Add(5 * time.Minute)
	if _, _, err := s.Get(ctx, ns, "short"); kvflow.ErrorCode(err) != kvflow.EEXPIRED || !strings.Contains(err.Error(), "expired") {
		t.Errorf("Get expired = %v, want EEXPIRED", err)
	}
	if keys, _ := s.Keys(ctx, ns, ""); !reflect.DeepEqual(keys, []string{"long"}) {
		t.Errorf("Keys = %v, want expired hidden", keys)
	}
	if stats, _ := s.Namespaces(ctx); len(stats) != 1 || stats[0].Keys != 1 {
		t.Errorf("Namespaces = %+v", stats)
	}
	// An expired key may be created again with overwrite=false, as new
	// (a new creation date); its version goes on from its history.
	e2, err := s.Set(ctx, ns, "short", storage.String("again"), storage.SetOptions{NoOverwrite: true})
	if err != nil || e2.Version != 2 || !e2.Created.Equal(clock.Now()) {
		t.Errorf("recreate expired: %+v, %v", e2, err)
	}
	if _, err := s.Set(ctx, ns, "neg", storage.String("x"), storage.SetOptions{TTL: -time.Second}); kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Errorf("negative TTL = %v, want EINVALID", err)
	}
}

func badNamesRefusedEverywhereNothingStored(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{})
	s := p.Store
	for _, tc := range [][2]string{{ns, "a/b"}, {ns, "../x"}, {ns, "a b"}, {ns, "clé"}, {"Bad.NS", "k"}, {"prod/x", "k"}} {
		_, err1 := s.Set(ctx, tc[0], tc[1], storage.String("v"), storage.SetOptions{})
		_, _, err2 := s.Get(ctx, tc[0], tc[1])
		_, err3 := s.Delete(ctx, tc[0], tc[1])
		for _, err := range []error{err1, err2, err3} {
			if kvflow.ErrorCode(err) != kvflow.EINVALID || !(strings.Contains(err.Error(), "Key") || strings.Contains(err.Error(), "Namespace")) {
				t.Errorf("%q/%q: %v, want EINVALID naming the rule", tc[0], tc[1], err)
			}
		}
	}
	if n := countObjects(t, p.Bucket); n != 0 {
		t.Errorf("%d objects stored after refused writes", n)
	}
}

func valueNotOfItsTypeRefusedNothingStored(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{})
	for _, v := range []storage.Value{
		{Type: storage.NUMBER, V: "42"},
		{Type: storage.STRING, V: "bad \xff utf-8"},
		{Type: storage.JSON, V: map[string]any{"f": func() {}}},
		{Type: "COLOR", V: "red"},
	} {
		if _, err := p.Store.Set(ctx, ns, "k", v, storage.SetOptions{}); kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("Set %s %#v = %v, want EINVALID", v.Type, v.V, err)
		}
	}
	if n := countObjects(t, p.Bucket); n != 0 {
		t.Errorf("%d objects stored after refused writes", n)
	}
}

func missingNotFoundNamesKeyAndNamespace(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	_, _, err := s.Get(ctx, ns, "nope")
	if kvflow.ErrorCode(err) != kvflow.ENOTFOUND || err.Error() != "No value found for key 'nope' in namespace 'company.team'." {
		t.Errorf("Get missing = %v", err)
	}
}

func listSortedPrefixPaged(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	keys := []string{"test_b", "test_a", "testXa", "other", "Test_c", "test_a.x", "test-a"}
	for _, k := range keys {
		mustSet(t, s, ns, k, storage.String(k), storage.SetOptions{})
	}
	mustSet(t, s, "company.team2", "test_z", storage.String("z"), storage.SetOptions{})
	got, err := s.Keys(ctx, ns, "test_")
	if want := []string{"test_a", "test_a.x", "test_b"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Keys(test_) = %v, %v; want %v (a prefix is literal: _ is no wildcard)", got, err, want)
	}
	all, _ := s.Keys(ctx, ns, "")
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	if !reflect.DeepEqual(all, sorted) {
		t.Errorf("Keys = %v, want byte order %v", all, sorted)
	}
	var paged []string
	o := storage.ListOptions{Limit: 3}
	for i := 0; ; i++ {
		p, err := s.List(ctx, ns, o)
		if err != nil || i > 5 {
			t.Fatalf("List page %d: %v", i, err)
		}
		for _, e := range p.Entries {
			paged = append(paged, e.Key)
		}
		if p.Next == "" {
			break
		}
		o.After = p.Next
	}
	if !reflect.DeepEqual(paged, sorted) {
		t.Errorf("paged = %v, want %v", paged, sorted)
	}
	if _, err := s.List(ctx, ns, storage.ListOptions{Limit: storage.MaxListLimit + 1}); kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Errorf("List over the limit = %v, want EINVALID", err)
	}
}

func listContainsIgnoreCaseOffsetAndCount(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	for _, k := range []string{"alpha_Cfg", "beta.cfg", "cfg", "gamma", "x_CFG_y", "axb", "a_b"} {
		mustSet(t, s, ns, k, storage.String(k), storage.SetOptions{})
	}
	mustSet(t, s, "company.team2", "cfg", storage.String("z"), storage.SetOptions{})
	exp := time.Millisecond
	mustSet(t, s, ns, "old_cfg", storage.String("gone"), storage.SetOptions{TTL: exp})
	time.Sleep(5 * time.Millisecond)
	keys := func(o storage.ListOptions) []string {
		t.Helper()
		p, err := s.List(ctx, ns, o)
		if err != nil {
			t.Fatalf("List %+v: %v", o, err)
		}
		out := []string{}
		for _, e := range p.Entries {
			out = append(out, e.Key)
		}
		return out
	}
	count := func(o storage.ListOptions) int {
		t.Helper()
		n, err := s.Count(ctx, ns, o)
		if err != nil {
			t.Fatalf("Count %+v: %v", o, err)
		}
		return n
	}
	if got, want := keys(storage.ListOptions{Contains: "cfg"}), []string{"beta.cfg", "cfg"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Contains cfg = %v, want %v (case kept, expired hidden)", got, want)
	}
	folded := storage.ListOptions{Contains: "cFg", IgnoreCase: true}
	if got, want := keys(folded), []string{"alpha_Cfg", "beta.cfg", "cfg", "x_CFG_y"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Contains cFg ignoring case = %v, want %v", got, want)
	}
	if got := count(folded); got != 4 {
		t.Errorf("Count ignoring case = %d, want 4", got)
	}
	if got, want := keys(storage.ListOptions{Contains: "_"}), []string{"a_b", "alpha_Cfg", "x_CFG_y"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Contains _ = %v, want %v (no wildcard)", got, want)
	}
	folded.Offset, folded.Limit = 1, 2
	if got, want := keys(folded), []string{"beta.cfg", "cfg"}; !reflect.DeepEqual(got, want) {
		t.Errorf("page at offset 1 = %v, want %v", got, want)
	}
	if got := count(storage.ListOptions{Prefix: "a", Limit: 1, Offset: 9}); got != 3 {
		t.Errorf("Count prefix a = %d, want 3 (paging ignored)", got)
	}
	if got := count(storage.ListOptions{}); got != 7 {
		t.Errorf("Count all = %d, want 7", got)
	}
	if _, err := s.List(ctx, ns, storage.ListOptions{Offset: -1}); kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Errorf("negative offset = %v, want EINVALID", err)
	}
}

func deleteReportsExistence(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	mustSet(t, s, ns, "k", storage.String("v"), storage.SetOptions{})
	if ok, err := s.Delete(ctx, ns, "k"); !ok || err != nil {
		t.Errorf("Delete existing = %v, %v", ok, err)
	}
	if ok, err := s.Delete(ctx, ns, "k"); ok || err != nil {
		t.Errorf("Delete again = %v, %v", ok, err)
	}
	if _, _, err := s.Get(ctx, ns, "k"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("Get deleted = %v", err)
	}
}

func purgeExpiredInBatchesByNamespaceAndGlob(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	s := open(t, storage.Options{Now: clock.Now}).Store
	for i := 0; i < 10; i++ {
		mustSet(t, s, "a.b", fmt.Sprintf("exp%d", i), storage.String("x"), storage.SetOptions{TTL: time.Minute})
	}
	mustSet(t, s, "a.b.c", "exp_child", storage.String("x"), storage.SetOptions{TTL: time.Minute})
	mustSet(t, s, "a.bc", "exp_sibling", storage.String("x"), storage.SetOptions{TTL: time.Minute})
	mustSet(t, s, "a.b", "live", storage.String("x"), storage.SetOptions{})
	mustSet(t, s, "a.b", "log_1", storage.String("x"), storage.SetOptions{})
	mustSet(t, s, "a.b", "logX1", storage.String("x"), storage.SetOptions{})
	clock.Add(time.Minute)
	got, err := s.Purge(ctx, storage.PurgeOptions{Namespaces: []string{"a.b"}, IncludeChildren: true, BatchSize: 3})
	if err != nil || !reflect.DeepEqual(got, map[string]int{"a.b": 10, "a.b.c": 1}) {
		t.Errorf("Purge expired = %v, %v (a.bc is no child of a.b)", got, err)
	}
	got, err = s.Purge(ctx, storage.PurgeOptions{Namespaces: []string{"a.b"}, KeyGlob: "log_*", All: true})
	if err != nil || got["a.b"] != 1 {
		t.Errorf("Purge glob log_* = %v, %v; want only log_1 (_ is literal)", got, err)
	}
	if keys, _ := s.Keys(ctx, "a.b", ""); !reflect.DeepEqual(keys, []string{"live", "logX1"}) {
		t.Errorf("left = %v", keys)
	}
}

func purgeRacingOverwritesNoAcknowledgedWriteLost(t *testing.T, open Opener) {
	purgeRace(t, open, 5, 600, false)
}

func purgeRacingPackedOverwritesAndGCNoAcknowledgedWriteLost(t *testing.T, open Opener) {
	purgeRace(t, open, 3, 400, true)
}

func collectGarbageRemovesReplacedAndOrphansKeepsLive(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{})
	s := p.Store
	mustSet(t, s, ns, "k", storage.String("v1"), storage.SetOptions{})
	mustSet(t, s, ns, "k", storage.String("v2"), storage.SetOptions{})
	mustSet(t, s, ns, "gone", storage.String("v"), storage.SetOptions{})
	s.Delete(ctx, ns, "gone")
	// A write that crashed between its upload and its metadata: its intent names it.
	crashed := storage.ObjectName(ns)
	if err := p.Index.AddIntents(ctx, time.Now(), []storage.Intent{{Namespace: ns, Object: crashed}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Bucket.Put(ctx, crashed, strings.NewReader(`"x"`), 3); err != nil {
		t.Fatal(err)
	}
	// An object no record names (a crash before the intent was recorded).
	orphan := storage.ObjectName(ns)
	if err := p.Bucket.Put(ctx, orphan, strings.NewReader(`"y"`), 3); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CollectGarbage(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("GC within grace removed %d, %v", n, err)
	}
	time.Sleep(10 * time.Millisecond)
	if n, err := s.CollectGarbage(ctx, 0); err != nil || n != 1 {
		t.Errorf("GC removed %d, %v; want the crashed write's object only (history keeps the replaced and the deleted value)", n, err)
	}
	if n, err := s.SweepOrphans(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("SweepOrphans within grace removed %d, %v", n, err)
	}
	if n, err := s.SweepOrphans(ctx, 0); err != nil || n != 1 {
		t.Errorf("SweepOrphans removed %d, %v; want the orphan only", n, err)
	}
	// Keeping one version per key makes the replaced and the deleted value garbage.
	if n, _, err := s.PruneHistory(ctx, storage.HistoryPolicy{Default: storage.Retention{Versions: 1}}, 0); err != nil || n != 2 {
		t.Errorf("PruneHistory removed %d versions, %v; want k's v1 and gone's v1", n, err)
	}
	time.Sleep(10 * time.Millisecond)
	if n, err := s.CollectGarbage(ctx, 0); err != nil || n != 2 {
		t.Errorf("GC removed %d, %v; want the replaced and the deleted object", n, err)
	}
	if n := countObjects(t, p.Bucket); n != 1 {
		t.Errorf("%d objects left, want 1 (the live value)", n)
	}
	if _, v, err := s.Get(ctx, ns, "k"); err != nil || v.V != "v2" {
		t.Errorf("live value after GC: %v, %v", v.V, err)
	}
}

func invariant2ValueMatchesMetadataCorruptionDetected(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{CacheSize: -1})
	e := mustSet(t, p.Store, ns, "k", storage.String("original"), storage.SetOptions{})
	if err := p.Bucket.Put(ctx, e.Object, strings.NewReader(`"tampered"`), 10); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Store.Get(ctx, ns, "k"); kvflow.ErrorCode(err) != kvflow.EINTERNAL || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Get of a tampered object = %v, want a mismatch error", err)
	}
}

func invariant3CreateRaceExactlyOneWins(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{})
	const n = 16
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := p.Store.Set(ctx, ns, "race", storage.String(fmt.Sprint(i)), storage.SetOptions{NoOverwrite: true})
			switch kvflow.ErrorCode(err) {
			case "":
				wins.Add(1)
			case kvflow.ECONFLICT:
				if strings.Contains(err.Error(), "'race'") {
					conflicts.Add(1)
				}
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != n-1 {
		t.Errorf("wins=%d conflicts=%d, want 1 and %d", wins.Load(), conflicts.Load(), n-1)
	}
	if c := countObjects(t, p.Bucket); c != 1 {
		t.Errorf("%d objects after the race, want only the winner's", c)
	}
}

func invariant1ConcurrentWritersNoTornReads(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{CacheSize: -1})
	mustSet(t, p.Store, ns, "hot", storage.String(payload(0)), storage.SetOptions{})
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var reads atomic.Int64
	for w := 1; w <= 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 25 && ctx.Err() == nil; i++ {
				if _, err := p.Store.Set(ctx, ns, "hot", storage.String(payload(w*1000+i)), storage.SetOptions{}); err != nil && ctx.Err() == nil {
					t.Errorf("writer %d: %v", w, err)
				}
			}
		}(w)
	}
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50 && ctx.Err() == nil; i++ {
				_, v, err := p.Store.Get(ctx, ns, "hot")
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("reader: %v", err)
					}
					return
				}
				if s := v.V.(string); !wellFormed(s) {
					t.Errorf("torn read: %.40q...", s)
				}
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	if reads.Load() == 0 {
		t.Error("no reads happened")
	}
}

func streamSetAndOpen(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{})
	big := strings.Repeat("line \"quoted\" \\ é\n", 300_000) // ~5.7 MB
	e, err := p.Store.SetStream(ctx, ns, "big", strings.NewReader(big), storage.SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, rc, err := p.Store.Open(ctx, ns, "big")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != big {
		t.Fatalf("Open read %d bytes, %v; want %d", len(got), err, len(big))
	}
	if _, v, err := p.Store.Get(ctx, ns, "big"); err != nil || v.V != big || e.Type != storage.STRING {
		t.Errorf("Get of streamed value: %v", err)
	}
	_, err = p.Store.SetStream(ctx, ns, "bad", bytes.NewReader([]byte("ok\xff\xfe")), storage.SetOptions{})
	if kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8 stream = %v, want EINVALID", err)
	}
	if _, _, err := p.Store.Get(ctx, ns, "bad"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("refused stream left an entry: %v", err)
	}
}

func invariant5NoValueBytesInDatabase(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{})
	marker := "MARKER-7c1e5b-" + p.Name
	mustSet(t, p.Store, ns, "secret", storage.String(marker), storage.SetOptions{Description: "plain"})
	mustSet(t, p.Store, ns, "secret", storage.String(marker+"-v2"), storage.SetOptions{})
	mustSet(t, p.Store, ns, "doc", storage.Value{Type: storage.JSON, V: map[string]any{"m": marker}}, storage.SetOptions{})
	mustSet(t, p.Store, ns, "gone", storage.String(marker), storage.SetOptions{})
	p.Store.Delete(ctx, ns, "gone")
	// History keeps every version, the feed every change: neither holds a value.
	if _, err := p.Store.Restore(storage.WithWriter(ctx, "cli"), ns, "gone", 1, storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(DumpDB(t, p), "kv_versions: "); n != 6 {
		t.Errorf("%d version rows, want 6: the dump must cover the history", n)
	}
	if dump := DumpDB(t, p); strings.Contains(dump, "MARKER-7c1e5b") {
		t.Errorf("a value reached the database:\n%s", dump)
	} else if !strings.Contains(dump, "secret") {
		t.Errorf("dump does not hold the metadata, so it proves nothing:\n%s", dump)
	}
}

func longKey350CharactersStoredReadListedAndKeptByGC(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{CacheSize: -1})
	// The longest key and namespace the rules allow, and a key just over
	// the point where the object name is shortened.
	longNS := strings.Repeat("n", 70) + "." + strings.Repeat("m", 79)
	keys := []string{strings.Repeat("k", storage.MaxKeyLen), "A" + strings.Repeat("b.-_", 60), strings.Repeat("x", 171)}
	for _, key := range keys {
		for _, space := range []string{ns, longNS} {
			e, err := p.Store.Set(ctx, space, key, storage.String("v-"+key[:3]), storage.SetOptions{})
			if err != nil {
				t.Fatalf("Set of a %d-character key in a %d-character namespace: %v", len(key), len(space), err)
			}
			if !storage.IsValueObject(e.Object) {
				t.Errorf("object %q of a long key is not a value object for GC", e.Object)
			}
			for _, seg := range strings.Split(e.Object, "/") {
				if len(seg) > 200 {
					t.Errorf("object name part of %d bytes: %q", len(seg), seg)
				}
			}
			if _, v, err := p.Store.Get(ctx, space, key); err != nil || v.V != "v-"+key[:3] {
				t.Errorf("Get of a %d-character key = %v, %v", len(key), v.V, err)
			}
		}
	}
	if n, err := p.Store.CollectGarbage(ctx, 0); err != nil || n != 0 {
		t.Errorf("CollectGarbage removed %d objects, %v; want 0: every object is referenced", n, err)
	}
	got, err := p.Store.Keys(ctx, ns, "")
	if err != nil || len(got) != len(keys) {
		t.Errorf("Keys = %d keys, %v; want %d", len(got), err, len(keys))
	}
	for _, key := range keys {
		if _, v, err := p.Store.Get(ctx, longNS, key); err != nil || v.V != "v-"+key[:3] {
			t.Errorf("after GC, Get of a %d-character key = %v, %v", len(key), v.V, err)
		}
	}
	_, err = p.Store.Set(ctx, ns, strings.Repeat("k", storage.MaxKeyLen+1), storage.String("v"), storage.SetOptions{})
	if kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Errorf("Set of a %d-character key = %v, want EINVALID", storage.MaxKeyLen+1, err)
	}
}

func missingObjectIsCorruptionAndFoundByMissingObjects(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{CacheSize: -1})
	mustSet(t, p.Store, ns, "fine", storage.String("v"), storage.SetOptions{})
	for _, key := range []string{"lost", "lost-text"} {
		e := mustSet(t, p.Store, ns, key, storage.Value{Type: storage.NUMBER, V: int64(7)}, storage.SetOptions{})
		if key == "lost-text" {
			e = mustSet(t, p.Store, ns, key, storage.String("text"), storage.SetOptions{})
		}
		if err := p.Bucket.Delete(ctx, e.Object); err != nil {
			t.Fatal(err)
		}
		_, _, err := p.Store.Get(ctx, ns, key)
		if kvflow.ErrorCode(err) != kvflow.EINTERNAL || !strings.Contains(err.Error(), "'"+key+"'") || !strings.Contains(err.Error(), "'"+ns+"'") ||
			!strings.Contains(err.Error(), "missing") || strings.Contains(err.Error(), e.Object) || strings.Contains(err.Error(), "/") {
			t.Errorf("Get of %s with its object deleted = %v, want EINTERNAL naming key and namespace, no path", key, err)
		}
		if _, _, err := p.Store.Open(ctx, ns, key); kvflow.ErrorCode(err) != kvflow.EINTERNAL {
			t.Errorf("Open of %s with its object deleted = %v, want EINTERNAL", key, err)
		}
	}
	missing, err := p.Store.MissingObjects(ctx)
	var got []string
	for _, e := range missing {
		got = append(got, e.Namespace+"/"+e.Key)
	}
	if want := []string{ns + "/lost", ns + "/lost-text"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("MissingObjects = %v, %v; want %v", got, err, want)
	}
}

func descriptionUTF8NULAndLengthRefused(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	for _, d := range []string{"bad \xff byte", "nul \x00 byte", strings.Repeat("d", storage.MaxDescriptionLen+1)} {
		for _, set := range []func() error{
			func() error {
				_, err := s.Set(ctx, ns, "k", storage.String("v"), storage.SetOptions{Description: d})
				return err
			},
			func() error {
				_, err := s.SetStream(ctx, ns, "k", strings.NewReader("v"), storage.SetOptions{Description: d})
				return err
			},
		} {
			if err := set(); kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "'description'") {
				t.Errorf("description %.20q = %v, want EINVALID naming description", d, err)
			}
		}
	}
	long := strings.Repeat("é", storage.MaxDescriptionLen)
	if e, err := s.Set(ctx, ns, "k", storage.String("v"), storage.SetOptions{Description: long}); err != nil || e.Description != long {
		t.Errorf("a %d-character description: %v", storage.MaxDescriptionLen, err)
	}
}

func negativeZeroReadsBackAsNegativeZero(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{CacheSize: -1}).Store
	v, err := storage.ParseAs(storage.NUMBER, "-0")
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, ns, "z", v, storage.SetOptions{})
	if _, got, err := s.Get(ctx, ns, "z"); err != nil || got.Text() != "-0" {
		t.Errorf("Get of -0 = %q, %v", got.Text(), err)
	}
}

func ifVersionCompareAndSet(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	e := mustSet(t, s, ns, "cas", storage.String("v1"), storage.SetOptions{})
	if _, err := s.Set(ctx, ns, "cas", storage.String("v2"), storage.SetOptions{IfVersion: e.Version}); err != nil {
		t.Fatalf("CAS at the current version: %v", err)
	}
	_, err := s.Set(ctx, ns, "cas", storage.String("stale"), storage.SetOptions{IfVersion: e.Version})
	if kvflow.ErrorCode(err) != kvflow.ECONFLICT || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("CAS at a stale version = %v, want ECONFLICT", err)
	}
	if _, err := s.Set(ctx, ns, "nokey", storage.String("x"), storage.SetOptions{IfVersion: 1}); kvflow.ErrorCode(err) != kvflow.ECONFLICT {
		t.Errorf("CAS on a missing key = %v, want ECONFLICT", err)
	}
	if _, v, _ := s.Get(ctx, ns, "cas"); v.V != "v2" {
		t.Errorf("value = %v, want v2", v.V)
	}
}

func incrementConcurrentNeverLosesAnUpdate(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	one := storage.Value{Type: storage.NUMBER, V: int64(1)}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if _, _, err := s.Increment(ctx, ns, "counter", one, storage.SetOptions{}); err != nil {
					t.Errorf("Increment: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e, v, err := s.Get(ctx, ns, "counter"); err != nil || v.V != int64(60) || e.Version != 60 {
		t.Errorf("counter = %v (version %d), %v; want 60", v.V, e.Version, err)
	}
	half := storage.Value{Type: storage.NUMBER, V: 0.5}
	if v, _, err := s.Increment(ctx, ns, "counter", half, storage.SetOptions{}); err != nil || v.V != 60.5 {
		t.Errorf("Increment by 0.5 = %v, %v", v.V, err)
	}
	mustSet(t, s, ns, "text", storage.String("x"), storage.SetOptions{})
	if _, _, err := s.Increment(ctx, ns, "text", one, storage.SetOptions{}); kvflow.ErrorCode(err) != kvflow.ECONFLICT || !strings.Contains(err.Error(), "STRING") {
		t.Errorf("Increment of a STRING = %v, want ECONFLICT naming STRING", err)
	}
}

func exactNumbersBigIntegersAndDecimalsRoundTrip(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{CacheSize: -1}).Store
	for i, text := range []string{
		"12345678901234567890", "-98765432109876543210987654321", "0.1", "123.45",
		"3.14159265358979323846264338327950288419716939937510", "0.000000000000000000000000000001",
		"-12345678901234567890.000000000000000000001", "9223372036854775807", "1e-7",
	} {
		v, err := storage.ParseAs(storage.NUMBER, text)
		if err != nil {
			t.Fatalf("ParseAs(%s): %v", text, err)
		}
		key := fmt.Sprintf("n%d", i)
		mustSet(t, s, ns, key, v, storage.SetOptions{})
		_, got, err := s.Get(ctx, ns, key)
		if err != nil || got.Type != storage.NUMBER || !sameNumber(got.Text(), text) {
			t.Errorf("%s read back as %q (%T), %v", text, got.Text(), got.V, err)
		}
		out, _ := json.Marshal(got.JSONValue())
		if !sameNumber(string(out), text) {
			t.Errorf("%s in JSON = %s", text, out)
		}
	}
	doc := []byte(`{"id": 12345678901234567890, "rate": 0.1, "pi": 3.14159265358979323846264338327950288}`)
	v, err := storage.FromJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, ns, "doc", v, storage.SetOptions{})
	_, got, err := s.Get(ctx, ns, "doc")
	if want := `{"id":12345678901234567890,"pi":3.14159265358979323846264338327950288,"rate":0.1}`; err != nil || got.Text() != want {
		t.Errorf("JSON with big numbers read back as %s, %v; want %s", got.Text(), err, want)
	}
}

func setManyAllOrNothing(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	p := open(t, storage.Options{Now: clock.Now, CacheSize: -1})
	s := p.Store
	mustSet(t, s, ns, "a", storage.String("old"), storage.SetOptions{})
	objects := countObjects(t, p.Bucket)
	good := func() []storage.BatchEntry {
		return []storage.BatchEntry{
			{Key: "a", Value: storage.String("new")},
			{Key: "b", Value: storage.Value{Type: storage.NUMBER, V: json.Number("12345678901234567890")}, TTL: 3600 * time.Second, Description: "big"},
			{Key: "c", Value: storage.Value{Type: storage.JSON, V: map[string]any{"x": int64(1)}}},
		}
	}
	for name, bad := range map[string]func([]storage.BatchEntry) []storage.BatchEntry{
		"bad key":       func(b []storage.BatchEntry) []storage.BatchEntry { b[2].Key = "no/slash"; return b },
		"duplicate key": func(b []storage.BatchEntry) []storage.BatchEntry { b[2].Key = "a"; return b },
		"value not a type": func(b []storage.BatchEntry) []storage.BatchEntry {
			b[2].Value = storage.Value{Type: storage.NUMBER, V: "x"}
			return b
		},
		"long description": func(b []storage.BatchEntry) []storage.BatchEntry {
			b[2].Description = strings.Repeat("d", 1001)
			return b
		},
	} {
		_, err := s.SetMany(ctx, ns, bad(good()))
		if kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "Entry 2 ") {
			t.Errorf("%s: SetMany = %v, want EINVALID naming entry 2", name, err)
		}
		if keys, _ := s.Keys(ctx, ns, ""); !reflect.DeepEqual(keys, []string{"a"}) {
			t.Errorf("%s: keys after a refused batch = %v", name, keys)
		}
		if _, v, _ := s.Get(ctx, ns, "a"); v.V != "old" {
			t.Errorf("%s: a = %v after a refused batch", name, v.V)
		}
		if n := countObjects(t, p.Bucket); n != objects {
			t.Errorf("%s: %d objects after a refused batch, want %d", name, n, objects)
		}
	}
	es, err := s.SetMany(ctx, ns, good())
	if err != nil || len(es) != 3 || es[0].Version != 2 || es[1].Version != 1 {
		t.Fatalf("SetMany = %+v, %v", es, err)
	}
	e, v, err := s.Get(ctx, ns, "b")
	if err != nil || v.Text() != "12345678901234567890" || e.Description != "big" || e.Expires == nil || !e.Expires.Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("b = %+v %v, %v", e, v.V, err)
	}
	if _, v, _ := s.Get(ctx, ns, "a"); v.V != "new" {
		t.Errorf("a = %v after the batch", v.V)
	}
	batch, err := storage.ParseBatch([]any{
		map[string]any{"key": "d", "value": "2024-07-15", "type": "DATE", "ttl": int64(60)},
		map[string]any{"key": "e", "value": "x", "oops": true},
	})
	if kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "Entry 1 (key 'e')") || !strings.Contains(err.Error(), "oops") {
		t.Errorf("ParseBatch with an unknown field = %v, %v", batch, err)
	}
}

func incrementExactOverflowRefusedAndExpiryAbsolute(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	s := open(t, storage.Options{Now: clock.Now, CacheSize: -1}).Store
	num := func(text string) storage.Value {
		v, err := storage.ParseAs(storage.NUMBER, text)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	mustSet(t, s, ns, "max", num("9223372036854775806"), storage.SetOptions{})
	if v, _, err := s.Increment(ctx, ns, "max", num("1"), storage.SetOptions{}); err != nil || v.Text() != "9223372036854775807" {
		t.Errorf("Increment to MaxInt64 = %v, %v", v.Text(), err)
	}
	if v, _, err := s.Increment(ctx, ns, "max", num("1"), storage.SetOptions{}); kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("Increment past MaxInt64 = %v, %v; want EINVALID overflow", v.V, err)
	}
	if _, v, _ := s.Get(ctx, ns, "max"); v.Text() != "9223372036854775807" {
		t.Errorf("after a refused overflow the counter is %s", v.Text())
	}
	// Nor does an increment create a counter past 64 bits.
	for _, by := range []string{"99999999999999999999", "1e400"} {
		if _, _, err := s.Increment(ctx, ns, "huge", num(by), storage.SetOptions{}); kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "a counter holds integers") {
			t.Errorf("Increment of a new key by %s = %v; want EINVALID", by, err)
		}
	}
	if _, _, err := s.Get(ctx, ns, "huge"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("a refused increment created the key: %v", err)
	}
	mustSet(t, s, ns, "dec", num("0.1"), storage.SetOptions{})
	for i := 0; i < 2; i++ {
		if _, _, err := s.Increment(ctx, ns, "dec", num("0.1"), storage.SetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, v, _ := s.Get(ctx, ns, "dec"); v.Text() != "0.3" {
		t.Errorf("0.1 + 0.1 + 0.1 = %s, want exactly 0.3", v.Text())
	}
	// Expiry is absolute: increments without a TTL keep it to the microsecond.
	_, e, err := s.Increment(ctx, ns, "ttl", num("1"), storage.SetOptions{TTL: time.Hour, Description: "first"})
	if err != nil || e.Expires == nil {
		t.Fatalf("Increment with TTL = %+v, %v", e, err)
	}
	exp := *e.Expires
	for i := 0; i < 3; i++ {
		clock.Add(1234 * time.Microsecond)
		if _, e, err = s.Increment(ctx, ns, "ttl", num("1"), storage.SetOptions{}); err != nil || e.Expires == nil || !e.Expires.Equal(exp) || e.Description != "first" {
			t.Fatalf("Increment without TTL: expiry %v, description %q, %v; want %v, first", e.Expires, e.Description, err, exp)
		}
	}
	// A TTL and description given apply on every increment.
	_, e, err = s.Increment(ctx, ns, "ttl", num("1"), storage.SetOptions{TTL: 2 * time.Hour, Description: "second"})
	if err != nil || e.Expires == nil || !e.Expires.Equal(clock.Now().Add(2*time.Hour)) || e.Description != "second" {
		t.Errorf("Increment with a new TTL: %+v, %v", e, err)
	}
}

func exportImportRoundTripLosslessConflicts(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	src := open(t, storage.Options{Now: clock.Now, CacheSize: -1}).Store
	num := func(text string) storage.Value { v, _ := storage.ParseAs(storage.NUMBER, text); return v }
	values := map[string]storage.Value{
		"string":   storage.String("Hello \"World\" é\n"),
		"big":      num("12345678901234567890"),
		"tenth":    num("0.1"),
		"pi":       num("3.14159265358979323846264338327950288"),
		"bool":     {Type: storage.BOOLEAN, V: false},
		"datetime": {Type: storage.DATETIME, V: time.Date(2024, 7, 15, 6, 10, 33, 422e6, time.UTC)},
		"date":     {Type: storage.DATE, V: storage.Date{Time: time.Date(2024, 7, 15, 0, 0, 0, 0, time.UTC)}},
		"duration": {Type: storage.DURATION, V: storage.Duration{Text: "P1DT5S", D: 24*time.Hour + 5*time.Second}},
		"json":     {Type: storage.JSON, V: map[string]any{"id": json.Number("98765432109876543210"), "l": []any{int64(1), "x"}}},
		"p1d":      storage.String("P1D"),
	}
	for k, v := range values {
		mustSet(t, src, ns, k, v, storage.SetOptions{TTL: time.Hour, Description: "d " + k})
	}
	mustSet(t, src, ns+".child", "c", storage.String("child"), storage.SetOptions{})
	mustSet(t, src, ns, "gone", storage.String("x"), storage.SetOptions{TTL: time.Second})
	clock.Add(time.Second)
	var first strings.Builder
	n, err := src.Export(ctx, &first, storage.ExportOptions{Namespaces: []string{ns}, IncludeChildren: true})
	if err != nil || n != len(values)+1 || strings.Contains(first.String(), `"gone"`) {
		t.Fatalf("Export = %d lines, %v; want %d without the expired key", n, err, len(values)+1)
	}
	if !strings.Contains(first.String(), `"value":12345678901234567890`) {
		t.Errorf("the export does not hold the big number's digits:\n%s", first.String())
	}
	dst := open(t, storage.Options{Now: clock.Now, CacheSize: -1}).Store
	res, err := dst.Import(ctx, strings.NewReader(first.String()), storage.ImportOptions{})
	if err != nil || res.Written != n {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	var second strings.Builder
	if _, err := dst.Export(ctx, &second, storage.ExportOptions{Namespaces: []string{ns}, IncludeChildren: true}); err != nil {
		t.Fatal(err)
	}
	strip := func(s string) string { // versions and dates are the new store's
		return regexp.MustCompile(`,"version":\d+,"creationDate":"[^"]*","updateDate":"[^"]*"`).ReplaceAllString(s, "")
	}
	if a, b := strip(first.String()), strip(second.String()); a != b {
		t.Errorf("export → import → export differs:\n%s\nvs\n%s", a, b)
	}
	for k, v := range values {
		e, got, err := dst.Get(ctx, ns, k)
		if err != nil || got.Type != v.Type || got.Text() != v.Text() || e.Description != "d "+k || e.Expires == nil || !e.Expires.Equal(clock.Now().Add(time.Hour-time.Second)) {
			t.Errorf("%s imported as %+v %q, %v", k, e, got.Text(), err)
		}
	}
	// Conflicts: skip keeps, overwrite replaces, fail stops at its line.
	mustSet(t, dst, ns, "string", storage.String("local"), storage.SetOptions{})
	lines := strings.SplitAfter(strings.TrimSpace(first.String()), "\n")
	res, err = dst.Import(ctx, strings.NewReader(first.String()), storage.ImportOptions{OnConflict: storage.OnConflictSkip})
	if err != nil || res.Skipped != n || res.Written != 0 {
		t.Errorf("Import skip = %+v, %v", res, err)
	}
	if _, v, _ := dst.Get(ctx, ns, "string"); v.V != "local" {
		t.Errorf("skip replaced a key: %v", v.V)
	}
	_, err = dst.Import(ctx, strings.NewReader(first.String()), storage.ImportOptions{OnConflict: storage.OnConflictFail})
	if kvflow.ErrorCode(err) != kvflow.ECONFLICT || !strings.Contains(err.Error(), "Line 1 ") {
		t.Errorf("Import fail = %v, want ECONFLICT at line 1", err)
	}
	res, err = dst.Import(ctx, strings.NewReader(first.String()), storage.ImportOptions{OnConflict: storage.OnConflictOverwrite, NamespaceMap: map[string]string{ns: "moved"}})
	if err != nil || res.Written != n {
		t.Errorf("Import overwrite with a namespace map = %+v, %v", res, err)
	}
	if _, v, err := dst.Get(ctx, "moved", "big"); err != nil || v.Text() != "12345678901234567890" {
		t.Errorf("moved/big = %v, %v", v.V, err)
	}
	// A map moves the namespace's children with it; the longest match wins,
	// and a namespace that only starts with the same letters stays.
	children := `{"namespace":"` + ns + `.child","key":"a","type":"STRING","value":"c"}` + "\n" +
		`{"namespace":"` + ns + `.child.deep","key":"a","type":"STRING","value":"d"}` + "\n" +
		`{"namespace":"` + ns + `x","key":"a","type":"STRING","value":"x"}` + "\n"
	if _, err := dst.Import(ctx, strings.NewReader(children), storage.ImportOptions{NamespaceMap: map[string]string{ns: "moved", ns + ".child.deep": "elsewhere"}}); err != nil {
		t.Errorf("Import of children with a namespace map: %v", err)
	}
	for nsKey, want := range map[string]string{"moved.child": "c", "elsewhere": "d", ns + "x": "x"} {
		if _, v, err := dst.Get(ctx, nsKey, "a"); err != nil || v.Text() != want {
			t.Errorf("%s/a after a mapped import = %v, %v; want %q", nsKey, v.V, err, want)
		}
	}
	// Two namespaces mapped onto one: their lines meet on one key in one
	// batch, and the conflict rule holds between them too.
	two := `{"namespace":"a.x","key":"k","type":"STRING","value":"1"}` + "\n" + `{"namespace":"b.x","key":"k","type":"STRING","value":"2"}` + "\n"
	merge := map[string]string{"a": "merged", "b": "merged"}
	for _, tc := range []struct{ onConflict, want string }{{storage.OnConflictSkip, "1"}, {storage.OnConflictOverwrite, "2"}} {
		res, err := dst.Import(ctx, strings.NewReader(two), storage.ImportOptions{OnConflict: tc.onConflict, NamespaceMap: merge})
		if _, v, gerr := dst.Get(ctx, "merged.x", "k"); err != nil || gerr != nil || v.Text() != tc.want || res.Written+res.Skipped != 2 {
			t.Errorf("Import of two namespaces mapped onto one, %s = %+v, %v; merged.x/k = %v, %v; want %q", tc.onConflict, res, err, v.V, gerr, tc.want)
		}
	}
	if _, err := dst.Import(ctx, strings.NewReader(two), storage.ImportOptions{OnConflict: storage.OnConflictFail, NamespaceMap: merge}); kvflow.ErrorCode(err) != kvflow.ECONFLICT {
		t.Errorf("Import fail of two namespaces mapped onto an existing key = %v, want ECONFLICT", err)
	}
	// A malformed line is reported with its number; lines before it are written.
	fresh := open(t, storage.Options{Now: clock.Now}).Store
	input := lines[0] + lines[1] + "{not json\n" + lines[2]
	res, err = fresh.Import(ctx, strings.NewReader(input), storage.ImportOptions{})
	if kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "Line 3 ") || res.Written != 2 {
		t.Errorf("Import of a malformed line = %+v, %v; want EINVALID at line 3 after 2 written", res, err)
	}
}

func deleteIfCompareAndDelete(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	mustSet(t, s, ns, "cad", storage.String("v1"), storage.SetOptions{})
	mustSet(t, s, ns, "cad", storage.String("v2"), storage.SetOptions{})
	if err := s.DeleteIf(ctx, ns, "cad", 1); kvflow.ErrorCode(err) != kvflow.ECONFLICT || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("DeleteIf at a stale version = %v, want ECONFLICT naming version 2", err)
	}
	if err := s.DeleteIf(storage.WithWriter(ctx, storage.TokenWriter("ops")), ns, "cad", 2); err != nil {
		t.Errorf("DeleteIf at the current version = %v", err)
	}
	// The tombstone names who deleted.
	if pg, err := s.History(ctx, ns, "cad", storage.HistoryOptions{}); err != nil || len(pg.Versions) != 3 ||
		pg.Versions[0].Change != storage.DELETE || pg.Versions[0].Writer != storage.TokenWriter("ops") {
		t.Errorf("history after DeleteIf = %s, %v; want a tombstone written by %s", summary(pg.Versions), err, storage.TokenWriter("ops"))
	}
	if err := s.DeleteIf(ctx, ns, "cad", 2); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("DeleteIf of a deleted key = %v, want ENOTFOUND", err)
	}
	if pg, err := s.History(ctx, ns, "never-written", storage.HistoryOptions{}); kvflow.ErrorCode(err) != kvflow.ENOTFOUND || !strings.Contains(err.Error(), "never-written") {
		t.Errorf("history of a key never written = %s, %v; want ENOTFOUND naming it", summary(pg.Versions), err)
	}
}

func deleteIfRacingCompareAndSetOneWinsPerVersion(t *testing.T, open Opener) {
	ctx := context.Background()
	// 4 compare-and-deletes and 4 compare-and-sets race for each
	// version: exactly one wins, and what is read back is the winner's.
	s := open(t, storage.Options{CacheSize: -1}).Store
	for round := 0; round < 20; round++ {
		e := mustSet(t, s, ns, "race", storage.String("base"), storage.SetOptions{})
		var wg sync.WaitGroup
		var wins atomic.Int32
		var setWinner atomic.Value
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if g%2 == 0 {
					err = s.DeleteIf(ctx, ns, "race", e.Version)
				} else {
					v := fmt.Sprintf("set-%d-%d", round, g)
					if _, err = s.Set(ctx, ns, "race", storage.String(v), storage.SetOptions{IfVersion: e.Version}); err == nil {
						setWinner.Store(v)
					}
				}
				switch kvflow.ErrorCode(err) {
				case "":
					wins.Add(1)
				case kvflow.ECONFLICT, kvflow.ENOTFOUND:
				default:
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d conditional writes of version %d won, want 1", round, n, e.Version)
		}
		_, got, err := s.Get(ctx, ns, "race")
		if w, ok := setWinner.Load().(string); ok {
			if err != nil || got.V != w {
				t.Fatalf("round %d: a compare-and-set of %q won, read back %v, %v", round, w, got.V, err)
			}
		} else if kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
			t.Fatalf("round %d: a compare-and-delete won, read back %v, %v", round, got.V, err)
		}
	}
}

func namespacesWithCounts(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, storage.Options{}).Store
	mustSet(t, s, "b.ns", "k1", storage.String("v"), storage.SetOptions{})
	mustSet(t, s, "a.ns", "k1", storage.String("v"), storage.SetOptions{})
	mustSet(t, s, "a.ns", "k2", storage.String("v"), storage.SetOptions{})
	got, err := s.Namespaces(ctx)
	want := []storage.NamespaceStat{{Namespace: "a.ns", Keys: 2}, {Namespace: "b.ns", Keys: 1}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Namespaces = %+v, %v", got, err)
	}
}

// sameNumber reports whether two decimal texts are the same number.
func sameNumber(a, b string) bool {
	x, okx := new(big.Rat).SetString(a)
	y, oky := new(big.Rat).SetString(b)
	return okx && oky && x.Cmp(y) == 0
}

// payload is a value whose every line repeats its own number, so a torn or
// mixed read is visible.
func payload(n int) string {
	return strings.Repeat(fmt.Sprintf("%06d|", n), 2000)
}

func wellFormed(s string) bool {
	return len(s) == 14000 && s == strings.Repeat(s[:7], 2000)
}

func mustSet(t testing.TB, s *storage.Store, ns, key string, v storage.Value, o storage.SetOptions) *storage.Entry {
	t.Helper()
	e, err := s.Set(context.Background(), ns, key, v, o)
	if err != nil {
		t.Fatalf("Set %s/%s: %v", ns, key, err)
	}
	return e
}

func countObjects(t testing.TB, b storage.Bucket) int {
	t.Helper()
	n := 0
	if err := b.Iter(context.Background(), "", func(string, time.Time) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
