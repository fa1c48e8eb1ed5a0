package engine_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/engine"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.want from the current errors")

// Each testdata/bad/NAME.yaml must fail to load with exactly the errors in
// NAME.want, one per line.
func TestParse_BadFlows_ReportEveryErrorWithFileLineAndField(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad flows: %v", err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = engine.Parse(filepath.Base(path), src, testRegistry())
			if err == nil {
				t.Fatal("Parse accepted a bad flow")
			}
			if code := kvflow.ErrorCode(err); code != kvflow.EINVALID {
				t.Errorf("code = %q, want %q", code, kvflow.EINVALID)
			}
			if _, ok := err.(engine.ValidationErrors); !ok {
				t.Errorf("error is %T, want engine.ValidationErrors", err)
			}
			got := err.Error() + "\n"
			wantFile := strings.TrimSuffix(path, ".yaml") + ".want"
			if *update {
				if err := os.WriteFile(wantFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("errors differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}
