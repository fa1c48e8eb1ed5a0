package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/sqldb/sqldbtest"
)

func TestKVGC_CollectsFromRecords_FullSweepFindsOrphans(t *testing.T) {
	dir := t.TempDir()
	runKVCases(t, dir, nil, []kvCase{
		{args: "kv set company.team k 1"},
		{args: "kv set company.team k 2"},
	})
	// A file no record names, as a crash before its write intent would leave.
	orphan := filepath.Join(dir, "storage", "company", "team", "_kv", "lost.ion.d4o8a1pksdu8q8r0j7mg")
	if err := os.WriteFile(orphan, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	runKVCases(t, dir, nil, []kvCase{
		{args: "kv gc --grace 0", wantOut: "Purged 0 versions and 0 changes past the history retention; removed 0 objects.\n"}, // history keeps k's first value
		{args: "kv gc --grace 1h --full --json", wantOut: `{"versions":0,"changes":0,"removed":0,"orphans":0}` + "\n"},
		{args: "kv gc --grace 0 --full", wantOut: "Purged 0 versions and 0 changes past the history retention; removed 0 objects and 1 orphans.\n"},
		{args: "kv get company.team k", wantOut: "2\n"},
		{args: "kv gc --grace -1s", wantCode: 2, errHas: "--grace must be 0 or more"},
		{args: "kv gc --server 127.0.0.1:1", wantCode: 2, errHas: "kv gc works on the local store"},
	})
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphan after the full sweep: %v", err)
	}

	// A process that crashed mid-write under a reserved name: its intent is
	// dated at the end of the reservation, yet --grace 0 collects it.
	db := sqldbtest.OpenURL(t, "sqlite://"+filepath.ToSlash(filepath.Join(dir, "kvflow.db")))
	name := storage.ObjectName("company.team")
	if err := db.AddIntents(context.Background(), time.Now().Add(storage.ReservedFor), []storage.Intent{{Namespace: "company.team", Object: name}}); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "storage", filepath.FromSlash(name))
	if err := os.WriteFile(crashed, []byte(`"x"`), 0o644); err != nil {
		t.Fatal(err)
	}
	runKVCases(t, dir, nil, []kvCase{
		{args: "kv gc", wantOut: "Purged 0 versions and 0 changes past the history retention; removed 0 objects.\n"},
		{args: "kv gc --grace 0", wantOut: "Purged 0 versions and 0 changes past the history retention; removed 1 objects.\n"},
	})
	if _, err := os.Stat(crashed); !os.IsNotExist(err) {
		t.Errorf("object of a crashed write under a reserved name: %v", err)
	}
}

// Without a server, kv gc applies the history retention as the sweeper
// does: past history.versions, the oldest versions and their objects go.
func TestKVGC_AppliesHistoryRetention(t *testing.T) {
	dir := t.TempDir()
	cases := []kvCase{}
	for i := range 4 {
		cases = append(cases, kvCase{args: fmt.Sprintf("kv set company.team k %d", i)})
	}
	runKVCases(t, dir, nil, cases)
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("history:\n  versions: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runKVCases(t, dir, nil, []kvCase{
		{args: "--config " + cfg + " kv gc --grace 0 --json", wantOut: `{"versions":2,"changes":0,"removed":2,"orphans":0}` + "\n"},
		{args: "kv get company.team k --version 1", wantCode: 3},
		{args: "kv get company.team k --version 3", wantOut: "2\n"},
	})
}
