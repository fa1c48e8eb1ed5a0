package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

// The acceptance tests run the real terraform CLI against the provider
// built from this tree (through dev_overrides: no registry, no init) and a
// real kvflow server on a random loopback port.

var (
	buildOnce   sync.Once
	providerDir string // holds terraform-provider-kvflow
	buildErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if providerDir != "" {
		os.RemoveAll(providerDir)
	}
	os.Exit(code)
}

// terraformBin finds the terraform CLI; a machine without it fails the test.
func terraformBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("terraform"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/local/bin/terraform"); err == nil {
		return "/usr/local/bin/terraform"
	}
	t.Fatal("the terraform CLI is not in PATH nor at /usr/local/bin/terraform: the kvflow provider's " +
		"acceptance tests need it (install Terraform ≥ 1.5 from https://developer.hashicorp.com/terraform/install)")
	return ""
}

// buildProvider builds cmd/terraform-provider-kvflow once per test binary,
// with -race when the tests run with it.
func buildProvider(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go command is needed to build the provider: %w", err)
			return
		}
		if providerDir, buildErr = os.MkdirTemp("", "kvflow-tf-provider-"); buildErr != nil {
			return
		}
		args := []string{"build", "-o", filepath.Join(providerDir, "terraform-provider-kvflow")}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(goBin, append(args, "github.com/kvflow/kvflow/cmd/terraform-provider-kvflow")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build of the provider: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return providerDir
}

// tfRunner runs terraform in one working directory.
type tfRunner struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

// newTerraform prepares a working directory whose CLI config points
// registry.terraform.io/kvflow/kvflow at the built provider. extraEnv are
// NAME=value pairs (KVFLOW_API_TOKEN and the like).
func newTerraform(t *testing.T, extraEnv ...string) *tfRunner {
	t.Helper()
	bin := terraformBin(t)
	pdir := buildProvider(t)
	home := t.TempDir()
	rc := filepath.Join(home, "terraform.rc")
	cfg := fmt.Sprintf("provider_installation {\n  dev_overrides {\n    %q = %q\n  }\n  direct {}\n}\n", Address, pdir)
	if err := os.WriteFile(rc, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_") && !strings.HasPrefix(kv, "KVFLOW_") && !strings.HasPrefix(kv, "HOME=") &&
			!strings.HasPrefix(kv, "CHECKPOINT_") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+home, "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_DATA_DIR="+filepath.Join(home, "tfdata"), "TF_INPUT=0",
		"GORACE=halt_on_error=1") // a race in the provider (built with -race) kills it and fails the run
	env = append(env, extraEnv...)
	return &tfRunner{t: t, bin: bin, dir: t.TempDir(), env: env}
}

// write replaces main.tf.
func (tf *tfRunner) write(config string) {
	tf.t.Helper()
	if err := os.WriteFile(filepath.Join(tf.dir, "main.tf"), []byte(config), 0o644); err != nil {
		tf.t.Fatal(err)
	}
}

// run runs terraform with args and returns its output and exit code.
func (tf *tfRunner) run(args ...string) (stdout, stderr string, code int) {
	tf.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tf.bin, args...)
	cmd.Dir, cmd.Env = tf.dir, tf.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		tf.t.Fatalf("terraform %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// must runs terraform and fails the test unless it exits 0.
func (tf *tfRunner) must(args ...string) string {
	tf.t.Helper()
	out, errOut, code := tf.run(args...)
	if code != 0 {
		tf.t.Fatalf("terraform %s exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs terraform, expects it to fail and returns its stderr.
func (tf *tfRunner) fails(args ...string) string {
	tf.t.Helper()
	out, errOut, code := tf.run(args...)
	if code == 0 {
		tf.t.Fatalf("terraform %s succeeded, want a failure\nstdout:\n%s", strings.Join(args, " "), out)
	}
	return errOut
}

// planActions plans into a file and returns each resource's actions
// (["update"], ["delete","create"], …) by address.
func (tf *tfRunner) planActions() map[string][]string {
	tf.t.Helper()
	tf.must("plan", "-no-color", "-input=false", "-out=tfplan")
	var p struct {
		ResourceChanges []struct {
			Address string `json:"address"`
			Change  struct {
				Actions []string `json:"actions"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	if err := json.Unmarshal([]byte(tf.must("show", "-json", "tfplan")), &p); err != nil {
		tf.t.Fatalf("reading the plan: %v", err)
	}
	out := map[string][]string{}
	for _, rc := range p.ResourceChanges {
		out[rc.Address] = rc.Change.Actions
	}
	return out
}

// outputs returns terraform output -json as values.
func (tf *tfRunner) outputs() map[string]any {
	tf.t.Helper()
	var raw map[string]struct {
		Value any `json:"value"`
	}
	if err := json.Unmarshal([]byte(tf.must("output", "-json")), &raw); err != nil {
		tf.t.Fatalf("reading the outputs: %v", err)
	}
	out := map[string]any{}
	for k, v := range raw {
		out[k] = v.Value
	}
	return out
}

// stateAttrs returns the state attributes of a resource by address.
func (tf *tfRunner) stateAttrs(addr string) map[string]any {
	tf.t.Helper()
	var s struct {
		Values struct {
			RootModule struct {
				Resources []struct {
					Address string         `json:"address"`
					Values  map[string]any `json:"values"`
				} `json:"resources"`
			} `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal([]byte(tf.must("show", "-json")), &s); err != nil {
		tf.t.Fatalf("reading the state: %v", err)
	}
	for _, r := range s.Values.RootModule.Resources {
		if r.Address == addr {
			return r.Values
		}
	}
	tf.t.Fatalf("%s is not in the state", addr)
	return nil
}

func wantActions(t *testing.T, got map[string][]string, want map[string][]string) {
	t.Helper()
	for addr, w := range want {
		if !reflect.DeepEqual(got[addr], w) {
			t.Errorf("plan for %s: actions %v, want %v (whole plan: %v)", addr, got[addr], w, got)
		}
	}
}

// providerBlock is the provider's source and its endpoint.
const providerBlock = requiredProviders + `
provider "kvflow" {
  endpoint = %q
}
`

const requiredProviders = `
terraform {
  required_providers {
    kvflow = {
      source = "kvflow/kvflow"
    }
  }
}
`

// Three typed pairs: a STRING that looks like a number, an inferred NUMBER
// with a TTL, and a JSON document.
const baseResources = `
resource "kvflow_kv" "code" {
  namespace   = "tf.acc"
  key         = %q
  value       = "42"
  type        = "STRING"
  description = "kept as text"
}

resource "kvflow_kv" "answer" {
  namespace = "tf.acc"
  key       = "answer"
  value     = %q
  ttl       = %q
}

resource "kvflow_kv" "config" {
  namespace = "tf.acc"
  key       = "config"
  type      = "JSON"
  value     = %s
}

output "answer_type" {
  value = kvflow_kv.answer.type
}

output "answer_version" {
  value = kvflow_kv.answer.version
}

output "config_id" {
  value = kvflow_kv.config.id
}
`

const configCompact = `jsonencode({ name = "kvflow", ports = [8080, 8081], tls = false })`

// The same document, laid out differently with the keys in another order.
const configPretty = `<<-EOT
    {
      "tls": false,
      "ports": [8080, 8081.0],
      "name": "kvflow"
    }
  EOT`

const importedResource = `
resource "kvflow_kv" "imported" {
  namespace   = "tf.acc"
  key         = "imported"
  description = "made by hand"
  value       = <<-EOT
    {
      "y": [true, null],
      "x": 1.0
    }
  EOT
}
`

const dataSources = `
data "kvflow_kv" "config" {
  namespace = kvflow_kv.config.namespace
  key       = kvflow_kv.config.key
}

data "kvflow_kv" "answer" {
  namespace = "tf.acc"
  key       = kvflow_kv.answer.key
}

data "kvflow_kv_keys" "all" {
  namespace = "tf.acc"
}

data "kvflow_kv_keys" "c" {
  namespace = "tf.acc"
  prefix    = "c"
}

output "config_value" {
  value = data.kvflow_kv.config.value
}

output "config_type" {
  value = data.kvflow_kv.config.type
}

output "answer_expiration" {
  value = data.kvflow_kv.answer.expiration_date
}

output "answer_data_version" {
  value = data.kvflow_kv.answer.version
}

output "all_keys" {
  value = data.kvflow_kv_keys.all.keys
}

output "c_keys" {
  value = data.kvflow_kv_keys.c.keys
}
`

func TestAcceptance_KVLifecycle(t *testing.T) {
	const token = "tf-acceptance-token"
	ts := startServer(t, token, "tf", "tf.*")
	tf := newTerraform(t, "KVFLOW_API_TOKEN="+token) // the token comes from the environment
	ctx := context.Background()
	c := ts.Client
	provider := fmt.Sprintf(providerBlock, ts.URL)
	config := func(codeKey, answer, ttl, configValue string, extra ...string) string {
		return provider + fmt.Sprintf(baseResources, codeKey, answer, ttl, configValue) + strings.Join(extra, "")
	}
	getValue := func(key string) storage.Value {
		t.Helper()
		v, err := c.GetValue(ctx, "tf.acc", key)
		if err != nil {
			t.Fatalf("GetValue(tf.acc/%s): %v", key, err)
		}
		return v
	}
	detail := func(key string) *client.EntryDetail {
		t.Helper()
		d, err := c.Detail(ctx, "tf.acc", key)
		if err != nil {
			t.Fatalf("Detail(tf.acc/%s): %v", key, err)
		}
		return d
	}
	wantConfig := map[string]any{"name": "kvflow", "ports": []any{int64(8080), int64(8081)}, "tls": false}

	t.Run("Apply_CreatesThreeTypedPairs", func(t *testing.T) {
		tf.write(config("code", "42", "PT1H", configCompact))
		wantActions(t, tf.planActions(), map[string][]string{
			"kvflow_kv.code": {"create"}, "kvflow_kv.answer": {"create"}, "kvflow_kv.config": {"create"},
		})
		tf.must("apply", "-no-color", "-input=false", "tfplan")

		if v := getValue("code"); v.Type != storage.STRING || v.V != "42" {
			t.Errorf("tf.acc/code = %s %#v, want the STRING \"42\"", v.Type, v.V)
		}
		if d := detail("code"); d.Description != "kept as text" || d.Version != 1 {
			t.Errorf("tf.acc/code: description %q version %d, want \"kept as text\" and 1", d.Description, d.Version)
		}
		if v := getValue("answer"); v.Type != storage.NUMBER || v.V != int64(42) {
			t.Errorf("tf.acc/answer = %s %#v, want the NUMBER 42", v.Type, v.V)
		}
		if d, want := detail("answer"), ts.Clock.Now().Add(time.Hour); !d.ExpirationDate.Equal(want) {
			t.Errorf("tf.acc/answer expires at %v, want %v (PT1H)", d.ExpirationDate.Time, want)
		}
		if v := getValue("config"); v.Type != storage.JSON || !reflect.DeepEqual(v.V, wantConfig) {
			t.Errorf("tf.acc/config = %s %#v, want the JSON %v", v.Type, v.V, wantConfig)
		}
		out := tf.outputs()
		if out["answer_type"] != "NUMBER" || out["config_id"] != "tf.acc/config" || out["answer_version"] != 1.0 {
			t.Errorf("outputs %v: want answer_type NUMBER (inferred), config_id tf.acc/config, answer_version 1", out)
		}
	})

	t.Run("ChangeValueAndTTL_UpdatesInPlace", func(t *testing.T) {
		ts.Clock.Add(10 * time.Minute)
		tf.write(config("code", "43", "PT2H", configCompact))
		wantActions(t, tf.planActions(), map[string][]string{
			"kvflow_kv.answer": {"update"}, "kvflow_kv.code": {"no-op"}, "kvflow_kv.config": {"no-op"},
		})
		tf.must("apply", "-no-color", "-input=false", "tfplan")
		if v := getValue("answer"); v.V != int64(43) {
			t.Errorf("tf.acc/answer = %#v after the update, want 43", v.V)
		}
		d := detail("answer")
		if d.Version != 2 {
			t.Errorf("tf.acc/answer version %d after the update, want 2", d.Version)
		}
		if want := ts.Clock.Now().Add(2 * time.Hour); !d.ExpirationDate.Equal(want) {
			t.Errorf("tf.acc/answer expires at %v, want %v (PT2H from the update)", d.ExpirationDate.Time, want)
		}
		if dc := detail("code"); dc.Version != 1 {
			t.Errorf("tf.acc/code version %d, want 1: it was not to be written again", dc.Version)
		}
		if out := tf.outputs(); out["answer_version"] != 2.0 {
			t.Errorf("output answer_version = %v, want 2", out["answer_version"])
		}
	})

	t.Run("Import_ExistingPair", func(t *testing.T) {
		if err := c.Set(ctx, "tf.acc", "imported", `{"x":1,"y":[true,null]}`, client.SetOptions{Type: storage.JSON, Description: "made by hand"}); err != nil {
			t.Fatal(err)
		}
		tf.write(config("code", "43", "PT2H", configCompact, importedResource))
		tf.must("import", "-no-color", "-input=false", "kvflow_kv.imported", "tf.acc/imported")
		got := tf.stateAttrs("kvflow_kv.imported")
		want := map[string]any{"id": "tf.acc/imported", "namespace": "tf.acc", "key": "imported", "type": "JSON",
			"value": `{"x":1,"y":[true,null]}`, "description": "made by hand", "version": 1.0}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("imported state %s = %#v, want %#v", k, got[k], w)
			}
		}
	})

	t.Run("Plan_NoChanges_EvenReformatted", func(t *testing.T) {
		// Reformatted JSON (config and the imported pair), 43.0 for 43.
		tf.write(config("code", "43.0", "PT2H", configPretty, importedResource))
		out, errOut, code := tf.run("plan", "-no-color", "-input=false", "-detailed-exitcode")
		if code != 0 {
			t.Fatalf("plan -detailed-exitcode exited %d, want 0 (no changes)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(out, "No changes.") {
			t.Errorf("plan output lacks \"No changes.\":\n%s", out)
		}
	})

	t.Run("Read_DeletedOrExpiredPair_PlannedAgain", func(t *testing.T) {
		if _, err := c.Delete(ctx, "tf.acc", "code"); err != nil {
			t.Fatal(err)
		}
		ts.Clock.Add(3 * time.Hour) // past answer's PT2H: GET answers 410
		if _, err := c.Detail(ctx, "tf.acc", "answer"); kvflow.ErrorCode(err) != kvflow.EEXPIRED {
			t.Fatalf("Detail(tf.acc/answer) after its TTL: %v, want code %s", err, kvflow.EEXPIRED)
		}
		wantActions(t, tf.planActions(), map[string][]string{
			"kvflow_kv.code": {"create"}, "kvflow_kv.answer": {"create"},
			"kvflow_kv.config": {"no-op"}, "kvflow_kv.imported": {"no-op"},
		})
		tf.must("apply", "-no-color", "-input=false", "tfplan")
		if v := getValue("code"); v.V != "42" {
			t.Errorf("tf.acc/code = %#v after the apply, want \"42\"", v.V)
		}
		if v := getValue("answer"); v.Type != storage.NUMBER || !SameValue(storage.NUMBER, v.Text(), "43") {
			t.Errorf("tf.acc/answer = %s %#v after the apply, want the NUMBER 43", v.Type, v.V)
		}
	})

	t.Run("DataSources_Read", func(t *testing.T) {
		tf.write(config("code", "43.0", "PT2H", configPretty, importedResource, dataSources))
		tf.must("apply", "-no-color", "-input=false", "-auto-approve")
		out := tf.outputs()
		want := map[string]any{
			"config_value":        `{"name":"kvflow","ports":[8080,8081],"tls":false}`,
			"config_type":         "JSON",
			"answer_expiration":   ts.Clock.Now().Add(2 * time.Hour).Format(client.TimeFormat),
			"answer_data_version": 3.0, // versions never go back: the expired pair was written again
			"all_keys":            []any{"answer", "code", "config", "imported"},
			"c_keys":              []any{"code", "config"},
		}
		for k, w := range want {
			if !reflect.DeepEqual(out[k], w) {
				t.Errorf("output %s = %#v, want %#v", k, out[k], w)
			}
		}
	})

	t.Run("ChangeKey_Replaces", func(t *testing.T) {
		tf.write(config("code2", "43.0", "PT2H", configPretty, importedResource, dataSources))
		wantActions(t, tf.planActions(), map[string][]string{
			"kvflow_kv.code": {"delete", "create"}, "kvflow_kv.answer": {"no-op"},
		})
		tf.must("apply", "-no-color", "-input=false", "tfplan")
		if _, err := c.Detail(ctx, "tf.acc", "code"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
			t.Errorf("tf.acc/code after the replacement: %v, want code %s", err, kvflow.ENOTFOUND)
		}
		if v := getValue("code2"); v.Type != storage.STRING || v.V != "42" {
			t.Errorf("tf.acc/code2 = %s %#v, want the STRING \"42\"", v.Type, v.V)
		}
	})

	t.Run("Destroy_RemovesEverything", func(t *testing.T) {
		tf.must("destroy", "-no-color", "-input=false", "-auto-approve")
		keys, err := c.Keys(ctx, "tf.acc", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 0 {
			t.Errorf("keys left in tf.acc after destroy: %v", keys)
		}
	})
}

// TestAcceptance_ErrorsNameTheAttribute checks that Terraform shows each
// error on the configuration line of the attribute it is about.
func TestAcceptance_ErrorsNameTheAttribute(t *testing.T) {
	const token = "tf-errors-token"
	ts := startServer(t, token, "tf", "tf.*")
	resource := func(name, body string) string {
		return fmt.Sprintf("resource \"kvflow_kv\" %q {\n%s}\n", name, body)
	}

	t.Run("InvalidAttributes_AtPlan", func(t *testing.T) {
		tf := newTerraform(t, "KVFLOW_API_TOKEN="+token)
		tf.write(fmt.Sprintf(providerBlock, ts.URL) +
			resource("badkey", "  namespace = \"tf\"\n  key = \"-bad\"\n  value = \"x\"\n") +
			resource("badtype", "  namespace = \"tf\"\n  key = \"t\"\n  value = \"x\"\n  type = \"number\"\n") +
			resource("badvalue", "  namespace = \"tf\"\n  key = \"v\"\n  value = \"abc\"\n  type = \"NUMBER\"\n") +
			resource("badttl", "  namespace = \"tf\"\n  key = \"l\"\n  value = \"x\"\n  ttl = \"5 minutes\"\n") +
			resource("baddesc", "  namespace = \"tf\"\n  key = \"d\"\n  value = \"x\"\n  description = \""+strings.Repeat("d", storage.MaxDescriptionLen+1)+"\"\n"))
		stderr := tf.fails("plan", "-no-color", "-input=false")
		for _, want := range []string{
			"Error: Invalid key", "with kvflow_kv.badkey,", `key = "-bad"`, `Key "-bad" is invalid`,
			"Error: Invalid type", "with kvflow_kv.badtype,", `type = "number"`,
			"Error: Invalid value", "with kvflow_kv.badvalue,", `value = "abc"`, "is not a valid NUMBER",
			"Error: Invalid TTL", "with kvflow_kv.badttl,", `ttl = "5 minutes"`,
			"Error: Invalid description", "with kvflow_kv.baddesc,", "description = \"ddd",
			"Field 'description' is 1001 characters long; the limit is 1000.",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("plan errors lack %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("DeniedNamespace_AtApply", func(t *testing.T) {
		tf := newTerraform(t, "KVFLOW_API_TOKEN="+token)
		tf.write(fmt.Sprintf(providerBlock, ts.URL) +
			resource("denied", "  namespace = \"other\"\n  key = \"k\"\n  value = \"x\"\n"))
		stderr := tf.fails("apply", "-no-color", "-input=false", "-auto-approve")
		for _, want := range []string{"with kvflow_kv.denied,", `namespace = "other"`, "Access to namespace 'other' is not allowed"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("apply errors lack %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("DataSource_MissingKeyAndDeniedNamespace", func(t *testing.T) {
		tf := newTerraform(t, "KVFLOW_API_TOKEN="+token)
		tf.write(fmt.Sprintf(providerBlock, ts.URL) + `
data "kvflow_kv" "missing" {
  namespace = "tf"
  key = "nothing-here"
}

data "kvflow_kv_keys" "denied" {
  namespace = "other"
}
`)
		stderr := tf.fails("plan", "-no-color", "-input=false")
		for _, want := range []string{
			"with data.kvflow_kv.missing,", `key = "nothing-here"`, "No value found for key 'nothing-here'",
			"with data.kvflow_kv_keys.denied,", `namespace = "other"`, "Access to namespace 'other' is not allowed",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("plan errors lack %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("UnreachableEndpoint", func(t *testing.T) {
		tf := newTerraform(t)
		url := closedURL(t)
		tf.write(fmt.Sprintf(providerBlock, url) + resource("k", "  namespace = \"tf\"\n  key = \"k\"\n  value = \"x\"\n"))
		stderr := tf.fails("plan", "-no-color", "-input=false")
		for _, want := range []string{"Error: Cannot reach the kvflow server", fmt.Sprintf("endpoint = %q", url), "in provider \"kvflow\""} {
			if !strings.Contains(stderr, want) {
				t.Errorf("plan errors lack %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("EndpointFromEnvironment_WrongToken", func(t *testing.T) {
		tf := newTerraform(t, "KVFLOW_ENDPOINT="+ts.URL, "KVFLOW_API_TOKEN=wrong")
		tf.write(requiredProviders + resource("k", "  namespace = \"tf\"\n  key = \"k\"\n  value = \"x\"\n"))
		stderr := tf.fails("apply", "-no-color", "-input=false", "-auto-approve")
		flat := strings.Join(strings.Fields(stderr), " ") // terraform wraps long details
		for _, want := range []string{"The API token is wrong", "Check the provider's token"} {
			if !strings.Contains(flat, want) {
				t.Errorf("apply errors lack %q:\n%s", want, stderr)
			}
		}
	})
	// KVFLOW_SERVER, the CLI's variable, wins over KVFLOW_ENDPOINT and may
	// be a bare host:port with the API's path.
	t.Run("ServerFromEnvironment_HostPort", func(t *testing.T) {
		hostPort := strings.TrimPrefix(ts.URL, "http://") + "/api/v1"
		tf := newTerraform(t, "KVFLOW_SERVER="+hostPort, "KVFLOW_ENDPOINT="+closedURL(t), "KVFLOW_API_TOKEN=wrong")
		tf.write(requiredProviders + resource("k", "  namespace = \"tf\"\n  key = \"k\"\n  value = \"x\"\n"))
		stderr := tf.fails("apply", "-no-color", "-input=false", "-auto-approve")
		flat := strings.Join(strings.Fields(stderr), " ")
		if want := "The API token is wrong for the kvflow server at " + ts.URL; !strings.Contains(flat, want) {
			t.Errorf("apply errors lack %q:\n%s", want, stderr)
		}
	})
}

// A pair without a TTL and one with a day's.
const expiryResources = `
resource "kvflow_kv" "num" {
  namespace = "tf.exp"
  key       = "num"
  value     = "7"
}

resource "kvflow_kv" "str" {
  namespace = "tf.exp"
  key       = "str"
  value     = "hello"
  ttl       = "P1D"
}
`

const importedWithTTL = `
resource "kvflow_kv" "imported" {
  namespace = "tf.exp"
  key       = "imported"
  value     = "kept"
  ttl       = "P30D"
}
`

// An expiry changed outside Terraform, in either direction, plans the
// update that puts the configured one back; the countdown, a write with the
// configured TTL and an imported pair's TTL written otherwise do not.
func TestAcceptance_ExpiryChangedOutside_PlansUpdate(t *testing.T) {
	const token = "tf-expiry-token"
	ts := startServer(t, token, "tf.*")
	tf := newTerraform(t, "KVFLOW_API_TOKEN="+token)
	ctx := context.Background()
	c := ts.Client
	config := fmt.Sprintf(providerBlock, ts.URL) + expiryResources
	set := func(key, value, ttl string) { // as curl -X PUT [-H 'ttl: …'] would
		t.Helper()
		if err := c.Set(ctx, "tf.exp", key, value, client.SetOptions{TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	expiry := func(key string) time.Time {
		t.Helper()
		d, err := c.Detail(ctx, "tf.exp", key)
		if err != nil {
			t.Fatalf("Detail(tf.exp/%s): %v", key, err)
		}
		return d.ExpirationDate.Time
	}
	noChanges := func() {
		t.Helper()
		if out, errOut, code := tf.run("plan", "-no-color", "-input=false", "-detailed-exitcode"); code != 0 {
			t.Fatalf("plan -detailed-exitcode exited %d, want 0 (no changes)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	}
	applyPlanned := func(want map[string][]string) {
		t.Helper()
		wantActions(t, tf.planActions(), want)
		tf.must("apply", "-no-color", "-input=false", "tfplan")
	}

	t.Run("Apply_NoChangesAfter_NorAsTimePasses", func(t *testing.T) {
		tf.write(config)
		tf.must("apply", "-no-color", "-input=false", "-auto-approve")
		noChanges()
		if got, want := tf.stateAttrs("kvflow_kv.str")["expiration_date"], expiry("str").Format(client.TimeFormat); got != want {
			t.Errorf("kvflow_kv.str expiration_date = %v, want %s", got, want)
		}
		if got := tf.stateAttrs("kvflow_kv.num")["expiration_date"]; got != nil {
			t.Errorf("kvflow_kv.num expiration_date = %v, want null", got)
		}
		ts.Clock.Add(time.Hour)
		noChanges()
	})

	t.Run("TTLAddedOutside_PlansItsRemoval", func(t *testing.T) {
		set("num", "7", "PT1M")
		applyPlanned(map[string][]string{"kvflow_kv.num": {"update"}, "kvflow_kv.str": {"no-op"}})
		if exp := expiry("num"); !exp.IsZero() {
			t.Errorf("tf.exp/num expires at %v after the apply, want never", exp)
		}
		noChanges()
	})

	t.Run("TTLRemovedOutside_PlansItBack", func(t *testing.T) {
		set("str", "hello", "")
		applyPlanned(map[string][]string{"kvflow_kv.str": {"update"}, "kvflow_kv.num": {"no-op"}})
		if got, want := expiry("str"), ts.Clock.Now().Add(24*time.Hour); !got.Equal(want) {
			t.Errorf("tf.exp/str expires at %v after the apply, want %v (P1D)", got, want)
		}
		noChanges()
	})

	t.Run("TTLChangedOutside_PlansItBack", func(t *testing.T) {
		ts.Clock.Add(time.Hour)
		set("str", "hello", "PT1M")
		applyPlanned(map[string][]string{"kvflow_kv.str": {"update"}, "kvflow_kv.num": {"no-op"}})
		if got, want := expiry("str"), ts.Clock.Now().Add(24*time.Hour); !got.Equal(want) {
			t.Errorf("tf.exp/str expires at %v after the apply, want %v (P1D)", got, want)
		}
		noChanges()
	})

	t.Run("WrittenOutsideWithTheConfiguredTTL_NoChanges", func(t *testing.T) {
		ts.Clock.Add(time.Hour)
		set("str", "hello", "PT24H")
		noChanges()
	})

	t.Run("Import_TTLOfTheSameLength_NoChanges", func(t *testing.T) {
		set("imported", "kept", "PT720H")
		tf.write(config + importedWithTTL)
		tf.must("import", "-no-color", "-input=false", "kvflow_kv.imported", "tf.exp/imported")
		noChanges()
	})
}
