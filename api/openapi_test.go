package api

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/internal/testpair"
)

// Every registered route is in the OpenAPI document and every documented
// operation is a registered route, with its path parameters declared.
func TestOpenAPI_MatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name     string `json:"name"`
				In       string `json:"in"`
				Required bool   `json:"required"`
			} `json:"parameters"`
			Responses map[string]any `json:"responses"`
			Security  *[]any         `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	s := New(Config{})
	routes := map[string]route{}
	for _, r := range s.routeTable() {
		routes[r.Method+" "+r.Pattern] = r
	}
	documented := map[string]bool{}
	ids := map[string]bool{}
	param := regexp.MustCompile(`\{([^}$]+)\}`)
	for path, ops := range doc.Paths {
		for method, op := range ops {
			k := strings.ToUpper(method) + " " + path
			documented[k] = true
			r, ok := routes[k]
			if !ok {
				t.Errorf("documented operation %s is not a route", k)
				continue
			}
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s: operationId %q missing or repeated", k, op.OperationID)
			}
			ids[op.OperationID] = true
			if len(op.Responses) == 0 {
				t.Errorf("%s documents no response", k)
			}
			if public := op.Security != nil && len(*op.Security) == 0; public != r.Public {
				t.Errorf("%s: documented public=%v, route public=%v", k, public, r.Public)
			}
			for _, m := range param.FindAllStringSubmatch(path, -1) {
				found := false
				for _, p := range op.Parameters {
					found = found || (p.Name == m[1] && p.In == "path" && p.Required)
				}
				if !found {
					t.Errorf("%s does not declare the required path parameter %s", k, m[1])
				}
			}
		}
	}
	var missing []string
	for k := range routes {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("route %s is not in openapi.json", k)
	}
}

// The document is served as JSON at /api/v1/openapi.json.
func TestOpenAPI_Served(t *testing.T) {
	ts := startServer(t, testpair.Local(t, noOpts), Config{})
	r := do(t, "GET", ts.URL+"/api/v1/openapi.json", "")
	if r.Status != 200 || r.Body != string(openapiJSON) || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/openapi.json = %d %s (%d bytes)", r.Status, r.Header.Get("Content-Type"), len(r.Body))
	}
}
