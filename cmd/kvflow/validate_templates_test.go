package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateTemplates = flag.Bool("update-templates", false, "rewrite testdata/badtemplates/*.want")

// Each testdata/badtemplates/NAME.yaml holds broken templates; kvflow validate
// must report exactly the lines of NAME.want, each at its file:line:column.
func TestValidate_BrokenTemplates_ReportFileLineColumn(t *testing.T) {
	files, err := filepath.Glob("testdata/badtemplates/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no broken templates: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			_, errOut, code := kvflowCmd(t, t.TempDir(), "validate", path)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			got := strings.ReplaceAll(errOut, "Error: exit status 2\n", "")
			wantFile := strings.TrimSuffix(path, ".yaml") + ".want"
			if *updateTemplates {
				if err := os.WriteFile(wantFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("validate printed\n%s\nwant\n%s", got, want)
			}
		})
	}
}
