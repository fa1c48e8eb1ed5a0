package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func triggeredFlow(url string) string {
	return `id: nightly
namespace: company.team
tasks:
  - id: fetch
    type: io.kestra.plugin.core.http.Download
    uri: "` + url + `"
triggers:
  - id: at_two
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "30 2 * * *"
    timezone: America/New_York
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: hook-secret-1
`
}

func TestFlows_TriggersShowNextDateAndWebhookURL_ExecutionShowsItsTriggerAndKill(t *testing.T) {
	e := start(t, options{engine: true})
	if got := e.api("POST", "/flows", "application/x-yaml", triggeredFlow(slowServer(t, 20*time.Second)), nil); got != 201 {
		t.Fatalf("creating the flow: status %d", got)
	}
	// The flows list names each trigger, with the next schedule date.
	e.open("#/ns/" + ns + "/flows")
	e.waitJS("the triggers", `document.querySelectorAll('td.triggers li').length === 2`)
	if got := e.text(`td.triggers li[data-trigger="at_two"]`); !strings.Contains(got, "Schedule") || !strings.Contains(got, "next") {
		t.Errorf("schedule trigger in the list reads %q", got)
	}

	// The flow page: cron, time zone, the next date (02:30 in New York), the webhook URL.
	e.open("#/ns/" + ns + "/flows/nightly")
	e.waitJS("the triggers table", `document.querySelectorAll('table.triggers tbody tr').length === 2`)
	next := evalTo[string](e, `document.querySelector('tr[data-trigger="at_two"] .next-date time').getAttribute('datetime')`)
	at, err := time.Parse(time.RFC3339, next)
	ny, _ := time.LoadLocation("America/New_York")
	if err != nil || at.In(ny).Hour() != 2 || at.In(ny).Minute() != 30 || !at.After(time.Now()) || time.Until(at) > 25*time.Hour {
		t.Errorf("next date = %q (%v), want the next 02:30 in New York", next, err)
	}
	if got := e.text(`tr[data-trigger="at_two"]`); !strings.Contains(got, "30 2 * * *") || !strings.Contains(got, "America/New_York") || !strings.Contains(got, "02:30:00") {
		t.Errorf("schedule row reads %q, want the cron, its time zone and 02:30 there", got)
	}
	url := e.text(`tr[data-trigger="hook"] .webhook-url`)
	if want := e.URL + "/api/v1/executions/webhook/company.team/nightly/hook-secret-1"; url != want {
		t.Fatalf("webhook URL = %q, want %q", url, want)
	}
	e.everyControlLabelled()
	e.screenshot("flow-triggers")

	// A KV trigger shows what it watches, a Flow trigger its conditions.
	watcher := `id: watcher
namespace: company.team
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: hi}
triggers:
  - {id: on_config, type: io.kvflow.kv.Trigger, prefix: config_, on: [SET, DELETE]}
  - id: after_etl
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: company.data, flowId: etl}
      - {type: io.kestra.plugin.core.condition.ExecutionStatus, in: [SUCCESS, WARNING]}
`
	if got := e.api("POST", "/flows", "application/x-yaml", watcher, nil); got != 201 {
		t.Fatalf("creating the watcher flow: status %d", got)
	}
	e.open("#/ns/" + ns + "/flows/watcher")
	e.waitJS("the triggers table", `document.querySelectorAll('table.triggers tbody tr').length === 2`)
	e.screenshot("kv-and-flow-triggers")
	if got := e.text(`tr[data-trigger="on_config"] td[data-label="Type"]`); got != "KV" {
		t.Errorf("KV trigger's type reads %q, want KV", got)
	}
	if got := e.text(`tr[data-trigger="on_config"] td[data-label="When or where"]`); got != "SET, DELETE of keys starting with config_ in company.team" {
		t.Errorf("KV trigger reads %q", got)
	}
	if got := evalTo[[]string](e, `[...document.querySelectorAll('tr[data-trigger="after_etl"] .conditions li')].map(li => li.textContent)`); strings.Join(got, "; ") != "flow etl in company.data; state SUCCESS or WARNING" {
		t.Errorf("Flow trigger conditions read %q", got)
	}

	// The URL shown starts an execution, which shows the trigger that started it.
	resp, err := http.Post(url, "application/json", strings.NewReader(`{"n": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("POST the webhook URL: %d", resp.StatusCode)
	}
	e.open("#/ns/" + ns + "/executions")
	e.waitJS("the triggered execution", `!!document.querySelector('table td.trigger')`)
	if got := e.text("table td.trigger"); got != "hook (Webhook)" {
		t.Errorf("trigger column reads %q, want hook (Webhook)", got)
	}
	e.click("table tbody tr th a")
	e.waitJS("the running execution", `document.querySelector('#exec-state')?.textContent === 'RUNNING'`)
	if got := e.text("#exec-trigger"); got != "hook (Webhook)" {
		t.Errorf("execution page trigger reads %q", got)
	}
	// Kill, after confirming.
	e.click("#kill")
	e.click("dialog[open] .confirm button.danger")
	e.waitJS("KILLED", `document.querySelector('#exec-state')?.textContent === 'KILLED'`)
	if e.visible("#kill") {
		t.Error("a killed execution still offers Kill")
	}
}
