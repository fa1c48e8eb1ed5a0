package client

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The client, the Terraform provider and its binary link no database
// driver and no template engine: only kvflow's errors and typed values.
func TestDeps_NoDriverNoTemplates(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps",
		"github.com/kvflow/kvflow/client",
		"github.com/kvflow/kvflow/terraform/...",
		"github.com/kvflow/kvflow/cmd/terraform-provider-kvflow").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{"github.com/lib/pq", "modernc.org/sqlite", "github.com/flosch/pongo2",
		"github.com/jmoiron/sqlx", "github.com/minio/minio-go", "github.com/kvflow/kvflow/engine",
		"github.com/kvflow/kvflow/api", "github.com/kvflow/kvflow/storage/sqldb", "github.com/kvflow/kvflow/template"}
	var ours []string
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("%s is linked into the client or the Terraform provider", pkg)
			}
		}
		if strings.HasPrefix(pkg, "github.com/kvflow/kvflow") {
			ours = append(ours, pkg)
		}
	}
	if len(ours) < 3 {
		t.Fatalf("go list found only %v; the test lists the wrong packages", ours)
	}
	t.Logf("kvflow packages linked: %s", strings.Join(ours, " "))
}
