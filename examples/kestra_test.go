package examples_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

var updateKestra = flag.Bool("update-kestra", false, "rewrite kestra/expected.yaml from the current results")

// kestraResult is what one flow of kestra/ must end with.
type kestraResult struct {
	State   string         `yaml:"state"`
	Error   string         `yaml:"error,omitempty"`
	Outputs map[string]any `yaml:"outputs,omitempty"`
}

// TestKestraFlows runs every flow of kestra/ (one Kestra expression idiom
// family each) with its defaults, on SQLite + a directory and on PostgreSQL
// + MinIO, and checks its state, error and outputs against
// kestra/expected.yaml.
func TestKestraFlows(t *testing.T) {
	files, _ := filepath.Glob("kestra/*.yaml")
	var flows []string
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".yaml"); name != "expected" {
			flows = append(flows, name)
		}
	}
	sort.Strings(flows)
	if len(flows) < 20 {
		t.Errorf("%d Kestra flows, want at least 20", len(flows))
	}
	var want map[string]kestraResult
	if raw, err := os.ReadFile("kestra/expected.yaml"); err == nil {
		if err := yaml.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
	} else if !*updateKestra {
		t.Fatal(err)
	}
	got := map[string]kestraResult{} // outputs as the engine gave them, for -update-kestra
	for _, p := range testpair.All(t, storage.Options{}) {
		t.Run(p.Name, func(t *testing.T) {
			eng := engine.New(engine.Options{Store: p.Store, Bucket: p.Bucket, Repo: p.DB})
			defer eng.Shutdown(context.Background())
			for _, name := range flows {
				src, err := os.ReadFile(filepath.Join("kestra", name+".yaml"))
				if err != nil {
					t.Fatal(err)
				}
				flow, err := engine.Parse(name+".yaml", src, plugin.Default)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				ex, err := eng.Run(context.Background(), flow, nil, engine.RunOptions{})
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				res := kestraResult{State: string(ex.State), Error: ex.Error, Outputs: plain(t, ex.Outputs)}
				got[name] = kestraResult{State: res.State, Error: res.Error, Outputs: ex.Outputs}
				if *updateKestra {
					continue
				}
				if w := want[name]; !reflect.DeepEqual(res, normalizeResult(t, w)) {
					t.Errorf("%s:\n got %+v\nwant %+v\nlogs:\n%s", name, res, w, logs(ex))
				}
			}
		})
	}
	if *updateKestra {
		out, err := yaml.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("kestra/expected.yaml", out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// plain gives outputs the shape a JSON round trip gives, to compare with YAML.
func plain(t *testing.T, m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func normalizeResult(t *testing.T, r kestraResult) kestraResult {
	r.Outputs = plain(t, r.Outputs)
	return r
}
