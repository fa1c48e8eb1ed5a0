package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

const tfMarker = "tf-MARKER-s3cret-5150"

// A sensitive pair: its value never shows in terraform's plan, apply or
// show output; the server stores it sealed and flagged; a second plan has
// no changes; a data source reads it as ******.
func TestAcceptance_SensitivePair_NeverInPlan(t *testing.T) {
	const token = "tf-sensitive-token"
	ts := startServer(t, token, "tf", "tf.*")
	tf := newTerraform(t, "KVFLOW_API_TOKEN="+token)
	ctx := context.Background()
	tf.write(fmt.Sprintf(providerBlock, ts.URL) + `
resource "kvflow_kv" "pw" {
  namespace = "tf.sec"
  key       = "pw"
  value     = "` + tfMarker + `"
  sensitive = true
}

data "kvflow_kv" "pw" {
  namespace  = "tf.sec"
  key        = "pw"
  depends_on = [kvflow_kv.pw]
}

output "read_back" {
  value = data.kvflow_kv.pw.value
}
`)
	var seen strings.Builder
	out, errOut, code := tf.run("plan", "-no-color", "-input=false", "-out", "tfplan")
	seen.WriteString(out + errOut)
	if code != 0 || !strings.Contains(out, "(sensitive value)") {
		t.Fatalf("plan exited %d, or does not hide the value:\n%s%s", code, out, errOut)
	}
	seen.WriteString(tf.must("show", "-no-color", "tfplan"))
	seen.WriteString(tf.must("apply", "-no-color", "-input=false", "tfplan"))
	v, sensitive, err := ts.Client.GetTyped(ctx, "tf.sec", "pw")
	if err != nil || v.V != tfMarker || !sensitive {
		t.Fatalf("the server holds %v (sensitive %v), %v", v.V, sensitive, err)
	}
	if out := tf.outputs(); out["read_back"] != "******" {
		t.Errorf("data source value = %v, want ******", out["read_back"])
	}
	out, errOut, code = tf.run("plan", "-no-color", "-input=false", "-detailed-exitcode")
	seen.WriteString(out + errOut)
	if code != 0 || !strings.Contains(out, "No changes.") {
		t.Errorf("second plan exited %d, want no changes:\n%s%s", code, out, errOut)
	}
	seen.WriteString(tf.must("show", "-no-color"))
	if strings.Contains(seen.String(), tfMarker) {
		t.Errorf("terraform printed the sensitive value:\n%s", seen.String())
	}
	if attrs := tf.stateAttrs("kvflow_kv.pw"); attrs["sensitive"] != true {
		t.Errorf("state sensitive = %v, want true", attrs["sensitive"])
	}
}
