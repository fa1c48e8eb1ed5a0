package main

import (
	"context"
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
		{args: "kv gc --grace 0", wantOut: "Removed 0 objects.\n"}, // history keeps k's first value
		{args: "kv gc --grace 1h --full --json", wantOut: `{"removed":0,"orphans":0}` + "\n"},
		{args: "kv gc --grace 0 --full", wantOut: "Removed 0 objects and 1 orphans.\n"},
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
		{args: "kv gc", wantOut: "Removed 0 objects.\n"},
		{args: "kv gc --grace 0", wantOut: "Removed 1 objects.\n"},
	})
	if _, err := os.Stat(crashed); !os.IsNotExist(err) {
		t.Errorf("object of a crashed write under a reserved name: %v", err)
	}
}
