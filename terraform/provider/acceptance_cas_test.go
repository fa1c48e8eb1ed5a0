package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

// exactNumbers are NUMBER pairs whose text float64 would change, and one
// given as an HCL number literal rather than a string.
const exactNumbers = `
resource "kvflow_kv" "big" {
  namespace = "tf.num"
  key       = "big"
  value     = %q
}

resource "kvflow_kv" "tenth" {
  namespace = "tf.num"
  key       = "tenth"
  value     = %q
}

resource "kvflow_kv" "one" {
  namespace = "tf.num"
  key       = "one"
  type      = "NUMBER"
  value     = %q
}

resource "kvflow_kv" "literal" {
  namespace = "tf.num"
  key       = "literal"
  type      = "NUMBER"
  value     = 98765432109876543210.5
}
`

func TestAcceptance_ExactNumbersAndIfMatch(t *testing.T) {
	const token = "tf-cas-token"
	ts := startServer(t, token, "tf.*")
	tf := newTerraform(t, "KVFLOW_API_TOKEN="+token)
	ctx := context.Background()
	c := ts.Client
	config := func(big, tenth, one string) string {
		return fmt.Sprintf(providerBlock, ts.URL) + fmt.Sprintf(exactNumbers, big, tenth, one)
	}
	text := func(key string) string {
		t.Helper()
		v, err := c.GetValue(ctx, "tf.num", key)
		if err != nil || v.Type != storage.NUMBER {
			t.Fatalf("tf.num/%s = %v, %v; want a NUMBER", key, v, err)
		}
		return v.Text()
	}

	t.Run("Apply_EveryDigitKept", func(t *testing.T) {
		tf.write(config("12345678901234567890", "0.1", "1"))
		tf.must("apply", "-no-color", "-input=false", "-auto-approve")
		for key, want := range map[string]string{"big": "12345678901234567890", "tenth": "0.1", "one": "1", "literal": "98765432109876543210.5"} {
			if got := text(key); got != want {
				t.Errorf("tf.num/%s = %s, want %s", key, got, want)
			}
		}
	})

	t.Run("Plan_SameNumberOtherText_NoChanges", func(t *testing.T) {
		tf.write(config("1.2345678901234567890e19", "0.10", "1.0"))
		out, errOut, code := tf.run("plan", "-no-color", "-input=false", "-detailed-exitcode")
		if code != 0 {
			t.Fatalf("plan exited %d, want 0 (no changes)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	t.Run("Plan_LastDigitChanged_Updates", func(t *testing.T) {
		tf.write(config("12345678901234567891", "0.1", "1"))
		wantActions(t, tf.planActions(), map[string][]string{
			"kvflow_kv.big": {"update"}, "kvflow_kv.tenth": {"no-op"}, "kvflow_kv.one": {"no-op"}, "kvflow_kv.literal": {"no-op"},
		})
		tf.must("apply", "-no-color", "-input=false", "tfplan")
		if got := text("big"); got != "12345678901234567891" {
			t.Errorf("tf.num/big = %s after the update, want 12345678901234567891", got)
		}
	})

	t.Run("ConcurrentChange_BetweenPlanAndApply_ReportedNotOverwritten", func(t *testing.T) {
		tf.write(config("12345678901234567891", "0.1", "2"))
		wantActions(t, tf.planActions(), map[string][]string{"kvflow_kv.one": {"update"}})
		// Someone else writes the key after the plan read it.
		if err := c.Set(ctx, "tf.num", "one", "5", client.SetOptions{Type: storage.NUMBER}); err != nil {
			t.Fatal(err)
		}
		stderr := tf.fails("apply", "-no-color", "-input=false", "tfplan")
		for _, want := range []string{`Key "one" in namespace "tf.num" changed since Terraform read it`, "version", "It was not overwritten"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("apply over a concurrent change: stderr lacks %q:\n%s", want, stderr)
			}
		}
		if got := text("one"); got != "5" {
			t.Errorf("tf.num/one = %s after the refused apply, want the concurrent 5 kept", got)
		}
		// A fresh plan sees the change and applies over it knowingly.
		wantActions(t, tf.planActions(), map[string][]string{"kvflow_kv.one": {"update"}})
		tf.must("apply", "-no-color", "-input=false", "tfplan")
		if got := text("one"); got != "2" {
			t.Errorf("tf.num/one = %s after a fresh plan and apply, want 2", got)
		}
	})
}

// A pair made outside Terraform, and one whose key a create_before_destroy
// replacement changes.
const takenResources = `
resource "kvflow_kv" "taken" {
  namespace = "tf.own"
  key       = "taken"
  value     = "terraform's"
}

resource "kvflow_kv" "moved" {
  namespace = "tf.own"
  key       = %q
  value     = "x"
  lifecycle {
    create_before_destroy = true
  }
}
`

func TestAcceptance_CreateOverExistingKey_FailsUntilImported(t *testing.T) {
	const token = "tf-create-token"
	ts := startServer(t, token, "tf.*")
	tf := newTerraform(t, "KVFLOW_API_TOKEN="+token)
	ctx := context.Background()
	c := ts.Client
	config := func(movedKey string) string {
		return fmt.Sprintf(providerBlock, ts.URL) + fmt.Sprintf(takenResources, movedKey)
	}
	if err := c.Set(ctx, "tf.own", "taken", "mine", client.SetOptions{Type: storage.STRING, Description: "not Terraform's"}); err != nil {
		t.Fatal(err)
	}
	wantPair := func(key, value, description string, version int64) {
		t.Helper()
		d, err := c.Detail(ctx, "tf.own", key)
		if err != nil {
			t.Fatalf("Detail(tf.own/%s): %v", key, err)
		}
		text, err := TextOf(storage.Type(d.Type), d.Value.(json.RawMessage))
		if err != nil || text != value || d.Description != description || d.Version != version {
			t.Errorf("tf.own/%s = %q (%v), description %q, version %d; want %q, %q, %d",
				key, text, err, d.Description, d.Version, value, description, version)
		}
	}

	t.Run("Create_ExistingKey_FailsAndLeavesIt", func(t *testing.T) {
		tf.write(config("a"))
		stderr := tf.fails("apply", "-no-color", "-input=false", "-auto-approve")
		flat := strings.Join(strings.Fields(stderr), " ")
		for _, want := range []string{`Error: Key "taken" already exists in namespace "tf.own"`, "with kvflow_kv.taken,", `key = "taken"`,
			"Terraform did not overwrite it", "`terraform import kvflow_kv.NAME tf.own/taken`"} {
			if !strings.Contains(flat, want) {
				t.Errorf("apply errors lack %q:\n%s", want, stderr)
			}
		}
		wantPair("taken", "mine", "not Terraform's", 1)
		wantPair("a", "x", "", 1) // the other resource was created
		tf.must("destroy", "-no-color", "-input=false", "-auto-approve")
		wantPair("taken", "mine", "not Terraform's", 1)
	})

	t.Run("Import_ThenApply_Manages", func(t *testing.T) {
		tf.must("import", "-no-color", "-input=false", "kvflow_kv.taken", "tf.own/taken")
		tf.must("apply", "-no-color", "-input=false", "-auto-approve")
		wantPair("taken", "terraform's", "", 2)
	})

	t.Run("ChangeKey_CreateBeforeDestroy_Replaces", func(t *testing.T) {
		tf.write(config("b"))
		wantActions(t, tf.planActions(), map[string][]string{"kvflow_kv.moved": {"create", "delete"}, "kvflow_kv.taken": {"no-op"}})
		tf.must("apply", "-no-color", "-input=false", "tfplan")
		wantPair("b", "x", "", 1)
		if _, err := c.Detail(ctx, "tf.own", "a"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
			t.Errorf("tf.own/a after the replacement: %v, want code %s", err, kvflow.ENOTFOUND)
		}
	})
}

// A counter incremented by 1 on each change of its triggers, and one by a
// decimal.
const counters = `
resource "kvflow_kv_increment" "hits" {
  namespace = "tf.count"
  key       = "hits"
  triggers  = { run = %q }
}

resource "kvflow_kv_increment" "tenth" {
  namespace = "tf.count"
  key       = "tenth"
  by        = 0.1
}

output "hits" {
  value = kvflow_kv_increment.hits.value
}

output "hits_version" {
  value = kvflow_kv_increment.hits.version
}
`

// Five increments of one counter at once.
const fiveIncrements = `
resource "kvflow_kv_increment" "add" {
  count     = 5
  namespace = "tf.count"
  key       = "shared"
  by        = %s
}
`

func TestAcceptance_Increment(t *testing.T) {
	const token = "tf-increment-token"
	ts := startServer(t, token, "tf.*")
	ctx := context.Background()
	c := ts.Client
	provider := fmt.Sprintf(providerBlock, ts.URL)
	tf := newTerraform(t, "KVFLOW_API_TOKEN="+token)
	counter := func(key string) string {
		t.Helper()
		v, err := c.GetValue(ctx, "tf.count", key)
		if err != nil || v.Type != storage.NUMBER {
			t.Fatalf("tf.count/%s = %v, %v; want a NUMBER", key, v, err)
		}
		return v.Text()
	}
	wantCounter := func(key, want string) {
		t.Helper()
		if got := counter(key); !SameValue(storage.NUMBER, got, want) {
			t.Errorf("tf.count/%s = %s, want %s", key, got, want)
		}
	}

	t.Run("Apply_IncrementsOnce", func(t *testing.T) {
		tf.write(provider + fmt.Sprintf(counters, "1"))
		tf.must("apply", "-no-color", "-input=false", "-auto-approve")
		wantCounter("hits", "1")
		wantCounter("tenth", "0.1")
		if out := tf.outputs(); out["hits"] != 1.0 || out["hits_version"] != 1.0 {
			t.Errorf("outputs %v: want hits 1 and hits_version 1", out)
		}
	})

	t.Run("Plan_NoChange_EvenAfterOthersIncrement", func(t *testing.T) {
		if _, _, err := c.Increment(ctx, "tf.count", "hits", storage.Value{Type: storage.NUMBER, V: int64(10)}, "", ""); err != nil {
			t.Fatal(err)
		}
		if out, errOut, code := tf.run("plan", "-no-color", "-input=false", "-detailed-exitcode"); code != 0 {
			t.Fatalf("plan -detailed-exitcode exited %d, want 0 (no changes)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		wantCounter("hits", "11")
	})

	t.Run("ChangeTriggers_IncrementsAgain", func(t *testing.T) {
		tf.write(provider + fmt.Sprintf(counters, "2"))
		wantActions(t, tf.planActions(), map[string][]string{
			"kvflow_kv_increment.hits": {"delete", "create"}, "kvflow_kv_increment.tenth": {"no-op"},
		})
		tf.must("apply", "-no-color", "-input=false", "tfplan")
		wantCounter("hits", "12")
		wantCounter("tenth", "0.1")
		if out := tf.outputs(); out["hits"] != 12.0 || out["hits_version"] != 3.0 {
			t.Errorf("outputs %v: want hits 12 and hits_version 3", out)
		}
	})

	t.Run("Destroy_LeavesTheCounter", func(t *testing.T) {
		tf.must("destroy", "-no-color", "-input=false", "-auto-approve")
		wantCounter("hits", "12")
		wantCounter("tenth", "0.1")
	})

	// Every digit counts: float64 would lose the 1 of the big increments and
	// add the tenths inexactly.
	t.Run("ConcurrentApplies_TwoStates_AllLand", func(t *testing.T) {
		big, tenths := newTerraform(t, "KVFLOW_API_TOKEN="+token), newTerraform(t, "KVFLOW_API_TOKEN="+token)
		big.write(provider + fmt.Sprintf(fiveIncrements, "1000000000000000001"))
		tenths.write(provider + fmt.Sprintf(fiveIncrements, "0.1"))
		var wg sync.WaitGroup
		failed := make([]string, 2)
		for i, tf := range []*tfRunner{big, tenths} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if out, errOut, code := tf.run("apply", "-no-color", "-input=false", "-auto-approve"); code != 0 {
					failed[i] = fmt.Sprintf("apply exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
				}
			}()
		}
		wg.Wait()
		for _, f := range failed {
			if f != "" {
				t.Fatal(f)
			}
		}
		wantCounter("shared", "5000000000000000005.5")
	})

	t.Run("ByOverTheNumberLimit_FailsAtPlan", func(t *testing.T) {
		tf := newTerraform(t, "KVFLOW_API_TOKEN="+token)
		tf.write(provider + fmt.Sprintf(fiveIncrements, "1e-2000"))
		stderr := tf.fails("plan", "-no-color", "-input=false")
		for _, want := range []string{"Error: Invalid by", "with kvflow_kv_increment.add,", "by        = 1e-2000", "at most 1000 characters long"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("plan errors lack %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("KeyOfAnotherType_FailsOnTheKey", func(t *testing.T) {
		if err := c.Set(ctx, "tf.count", "word", "hello", client.SetOptions{}); err != nil {
			t.Fatal(err)
		}
		tf := newTerraform(t, "KVFLOW_API_TOKEN="+token)
		tf.write(provider + `
resource "kvflow_kv_increment" "word" {
  namespace = "tf.count"
  key       = "word"
}
`)
		stderr := tf.fails("apply", "-no-color", "-input=false", "-auto-approve")
		flat := strings.Join(strings.Fields(stderr), " ")
		for _, want := range []string{`Error: Cannot increment key "word" in namespace "tf.count"`, "with kvflow_kv_increment.word,",
			`key = "word"`, "it holds a STRING, not a NUMBER"} {
			if !strings.Contains(flat, want) {
				t.Errorf("apply errors lack %q:\n%s", want, stderr)
			}
		}
	})
}
