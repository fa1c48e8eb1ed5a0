package plugin_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

func TestPutFile_StoresUnderTheExecutionAndOpensByURI(t *testing.T) {
	p := testpair.Local(t, storage.Options{})
	rc := &plugin.RunContext{Namespace: "company.team", FlowID: "f", ExecutionID: "e1", TaskRunID: "tr1", TaskID: "dl", Bucket: p.Bucket}
	ctx := context.Background()
	for name, want := range map[string]string{
		"orders.csv":        "orders.csv",
		"../../etc/passwd":  "passwd",
		"my file (1).txt":   "my_file__1_.txt",
		"..":                "file",
		".hidden":           "hidden",
		"C:\\dir\\data.bin": "data.bin",
	} {
		uri, err := rc.PutFile(ctx, name, strings.NewReader("data of "+name))
		if err != nil {
			t.Fatal(err)
		}
		if uri != "kestra:///_executions/company/team/f/e1/files/tr1/"+want {
			t.Errorf("%q stored as %s", name, uri)
		}
		f, err := rc.OpenFile(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != "data of "+name {
			t.Errorf("%s holds %q", uri, b)
		}
	}
	for _, uri := range []string{"kestra:///company/team/_kv/k.ion", "kestra:///_executions/../x", "file:///etc/passwd"} {
		if _, err := rc.OpenFile(ctx, uri); kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("OpenFile(%s) = %v, want EINVALID", uri, err)
		}
	}
	if _, err := rc.OpenFile(ctx, "kestra:///_executions/company/team/f/e1/files/tr1/missing"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("missing file: %v", err)
	}
}
