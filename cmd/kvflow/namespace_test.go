package main

import (
	"testing"

	"github.com/kvflow/kvflow/internal/testpair"
)

func TestNamespaceList_TreeWithCounts(t *testing.T) {
	pair := testpair.Local(t, storageOpts)
	url := startAPIServer(t, pair, "cli-token")
	srv := []string{"--server", url, "--token", "cli-token"}
	runKVCases(t, t.TempDir(), srv, []kvCase{
		{args: "kv set-many co.team.a -", stdin: `{"x":1,"y":2}`},
		{args: "kv set co.team k 1"},
		{args: "kv set co.team-x k 1"},
		{args: "namespace list", wantOut: "NAMESPACE    FLOWS  KEYS  TOTAL\n" +
			"co (parent)  0      0     4\n" +
			"  team       0      1     3\n" +
			"    a        0      2     2\n" +
			"  team-x     0      1     1\n"},
		{args: "namespace list --json", outHas: `{"id":"co.team.a","flows":0,"keys":2,"keyCount":2,"totalKeyCount":2,"parent":"co.team"}`},
	})
}
