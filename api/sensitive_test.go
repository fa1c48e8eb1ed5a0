package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
)

// sensitiveFlow reads a sensitive key in every way a value can leak: a log
// line through a filter (upper defeats masking that only knows the stored
// text), a Get task's output, a flow output, a JSON leaf and an error message.
const sensitiveFlow = `id: leaky
namespace: company.team
tasks:
  - id: shout
    type: io.kestra.plugin.core.log.Log
    message: "pw is {{ kv('pw') | upper }} and {{ kv('pw') }}; user {{ json(kv('creds')).password | lower }}"
  - id: get
    type: io.kestra.plugin.core.kv.Get
    key: pw
  - id: copy
    type: io.kestra.plugin.core.kv.Set
    key: pw2
    value: "{{ outputs.get.value }}-copy"
    sensitive: true
  - id: fail
    type: io.kestra.plugin.core.log.Log
    message: "{{ raise('boom ' ~ (kv('pw') | upper)) }}"
    allowFailure: true
outputs:
  - id: said
    value: "{{ kv('pw') | upper }}!"
`

// A sensitive value never shows in logs, outputs, errors, the database, list
// or detail responses; the bucket holds it sealed; GET answers it in clear.
func TestSensitive_NeverLeaks(t *testing.T) {
	pair := testpair.Local(t, storage.Options{Keys: storagetest.TestKeys(t)})
	ctx := context.Background()
	ts := startFlowServer(t, pair, Config{})
	const marker = "mArKeR-s3cret-77"
	upper := strings.ToUpper(marker)
	kv := ts.URL + "/api/v1/namespaces/company.team/kv/"
	if r := do(t, "PUT", kv+"pw?sensitive=true", marker, "Content-Type: text/plain"); r.Status != 200 {
		t.Fatalf("PUT sensitive = %d %s", r.Status, r.Body)
	}
	if r := do(t, "PUT", kv+"creds", `{"user":"ada","password":"Json-`+marker+`"}`, "Content-Type: application/json", "sensitive: true"); r.Status != 200 {
		t.Fatalf("PUT sensitive by header = %d %s", r.Status, r.Body)
	}
	if r := do(t, "PUT", kv+"pw3?sensitive=maybe", "x"); r.Status != 422 || !strings.Contains(r.Message(), "Sensitive") {
		t.Errorf("PUT sensitive=maybe = %d %s, want 422 naming the parameter", r.Status, r.Body)
	}
	// Plain GET gives the value (programs need it) and says it is sensitive.
	if r := do(t, "GET", kv+"pw", ""); r.Status != 200 || r.Body != `{"type":"STRING","value":"`+marker+`","sensitive":true}` {
		t.Errorf("GET = %d %s", r.Status, r.Body)
	}
	if r := do(t, "HEAD", kv+"pw", ""); r.Header.Get("KV-Sensitive") != "true" {
		t.Errorf("HEAD headers = %v, want KV-Sensitive: true", r.Header)
	}
	if r := do(t, "GET", kv+"pw/versions", ""); !strings.Contains(r.Body, `"sensitive":true`) || strings.Contains(r.Body, marker) {
		t.Errorf("versions = %s, want the flag and no value", r.Body)
	}
	if r := do(t, "GET", kv+"pw?version=1", ""); r.Body != `{"type":"STRING","value":"`+marker+`","sensitive":true}` {
		t.Errorf("GET ?version=1 = %s", r.Body)
	}
	if r := do(t, "GET", kv+"pw/detail", ""); !strings.Contains(r.Body, `"value":"******"`) || !strings.Contains(r.Body, `"sensitive":true`) || strings.Contains(r.Body, marker) {
		t.Errorf("detail = %s, want the value masked", r.Body)
	}
	if r := do(t, "GET", kv+"pw/detail?reveal=true", ""); !strings.Contains(r.Body, `"value":"`+marker+`"`) {
		t.Errorf("detail?reveal=true = %s", r.Body)
	}
	if d, err := ts.Client.Detail(ctx, "company.team", "creds"); err != nil || fmt.Sprintf("%s", d.Value) != `"******"` || !d.Sensitive {
		t.Errorf("Client.Detail = %+v, %v", d, err)
	}

	if _, err := ts.Client.CreateFlow(ctx, sensitiveFlow); err != nil {
		t.Fatal(err)
	}
	ex, err := ts.Client.Execute(ctx, "company.team", "leaky", nil, true)
	if err != nil || ex.State != client.WARNING {
		t.Fatalf("execution = %+v, %v", ex, err)
	}
	logs, err := ts.Client.ExecutionLogs(ctx, ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, l := range logs {
		text.WriteString(l.Message + "\n")
	}
	if !strings.Contains(text.String(), "pw is ****** and ******; user ******") || !strings.Contains(text.String(), "boom ******") {
		t.Errorf("logs do not show the masked lines:\n%s", text.String())
	}
	if got := ex.Outputs["said"]; got != "******!" {
		t.Errorf("flow output said = %v, want ******!", got)
	}
	// The copy was written from the real value, not the mask.
	if _, raw, err := ts.Client.Get(ctx, "company.team", "pw2"); err != nil || string(raw) != `"`+marker+`-copy"` {
		t.Errorf("pw2 = %s, %v", raw, err)
	}

	list := do(t, "GET", strings.TrimSuffix(kv, "/"), "")
	if !strings.Contains(list.Body, `"key":"pw","type":"STRING","version":1,`) || !strings.Contains(list.Body, `"sensitive":true`) {
		t.Errorf("list = %s, want the flag", list.Body)
	}
	global := do(t, "GET", ts.URL+"/api/v1/kv?namespace=company.team", "")
	if !strings.Contains(global.Body, `"sensitive":true`) {
		t.Errorf("global list = %d %s, want the flag", global.Status, global.Body)
	}
	list.Body += global.Body
	stored, _ := json.Marshal(ex)
	exec := do(t, "GET", ts.URL+"/api/v1/executions/"+ex.ID, "")
	dump := pair.Dump(t)
	for what, s := range map[string]string{"logs": text.String(), "execution": string(stored) + exec.Body, "list": list.Body, "database": dump} {
		for _, secret := range []string{marker, upper, strings.ToLower(marker)} {
			if strings.Contains(s, secret) {
				t.Errorf("%s holds %q:\n%s", what, secret, s)
			}
		}
	}
	if !strings.Contains(dump, "leaky") || !strings.Contains(dump, "******") {
		t.Errorf("the dump does not hold the execution, so it proves nothing")
	}
	for _, key := range []string{"pw", "pw2", "creds"} {
		e, err := pair.Store.Stat(ctx, "company.team", key)
		if err != nil || !e.Sensitive {
			t.Fatalf("%s: %+v, %v", key, e, err)
		}
		if raw := storagetest.RawObject(t, pair.Bucket, e.Object); bytes.Contains(raw, []byte(marker)) {
			t.Errorf("object of %s holds the value: %q", key, raw)
		}
	}
}

// Without a key (as on PostgreSQL with no KVFLOW_SECRET_KEY; here a store
// opened with none) a sensitive write is refused with 503 naming what to
// configure; plain writes work.
func TestSensitive_NoKey_WriteRefused(t *testing.T) {
	pair := testpair.Local(t, storage.Options{})
	ts := startServer(t, pair, Config{})
	kv := ts.URL + "/api/v1/namespaces/company.team/kv/"
	r := do(t, "PUT", kv+"pw", "x", "sensitive: true")
	if r.Status != 503 || !strings.Contains(r.Message(), "KVFLOW_SECRET_KEY") || !strings.Contains(r.Message(), "'pw'") {
		t.Errorf("sensitive PUT without a key = %d %s", r.Status, r.Body)
	}
	if r := do(t, "PUT", strings.TrimSuffix(kv, "/"), `[{"key":"a","value":1,"sensitive":true}]`, "Content-Type: application/json"); r.Status != 503 {
		t.Errorf("sensitive batch without a key = %d %s", r.Status, r.Body)
	}
	if r := do(t, "GET", kv+"pw", ""); r.Status != 404 {
		t.Errorf("a refused write stored something: %d %s", r.Status, r.Body)
	}
	if r := do(t, "PUT", kv+"plain", "x"); r.Status != 200 {
		t.Errorf("plain PUT = %d %s", r.Status, r.Body)
	}
}
