package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kvflow/kvflow/client"
)

// helloFlow downloads from url (a slow server, so the run can be watched)
// then sets a key and logs a greeting.
func helloFlow(url string) string {
	return `id: hello
namespace: company.team
description: Greets after a slow download
inputs:
  - id: name
    type: STRING
    defaults: world
  - id: times
    type: INT
    defaults: 2
tasks:
  - id: fetch
    type: io.kestra.plugin.core.http.Download
    uri: "` + url + `"
  - id: remember
    type: io.kestra.plugin.core.kv.Set
    key: greeting
    value: "Hello {{ inputs.name }}"
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.name }}, {{ inputs.times }} times"
`
}

// api sends a request to the server's REST API and decodes a JSON answer into out.
func (e *env) api(method, path, contentType, body string, out any) int {
	e.t.Helper()
	req, err := http.NewRequest(method, e.URL+"/api/v1"+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// slowServer answers after delay, so an execution stays RUNNING a while.
func slowServer(t *testing.T, delay time.Duration) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		io.WriteString(w, "id,amount\n1,42\n")
	}))
	t.Cleanup(s.Close)
	return s.URL + "/orders.csv"
}

func TestFlows_RunFromUI_WatchesExecutionToSuccessWithLogs(t *testing.T) {
	e := start(t, options{engine: true})
	if got := e.api("POST", "/flows", "application/x-yaml", helloFlow(slowServer(t, 1500*time.Millisecond)), nil); got != 201 {
		t.Fatalf("creating the flow: status %d", got)
	}
	e.open("#/ns/" + ns + "/flows")
	e.click(`a[aria-label="Run hello"]`)
	e.waitJS("the run form", `!!document.querySelector('#input-name')`)
	e.everyControlLabelled()
	if got := e.value("#input-name"); got != "world" {
		t.Errorf("name input = %q, want its default world", got)
	}
	if got := evalTo[string](e, `document.querySelector('#input-times').type`); got != "number" {
		t.Errorf("the INT input is a %q field, want number", got)
	}
	// The server's refusal of an input shows next to it.
	e.typeInto("#input-times", "2.5")
	e.click("form.run-form button[type=submit]")
	e.waitJS("the error at times", `!document.querySelector('#input-times-error').hidden`)
	if got := e.fieldError("input-times"); !strings.Contains(got, "is not an INT") {
		t.Errorf("times error = %q, want the server's INT refusal", got)
	}
	if e.visible("form.run-form > p.error") {
		t.Errorf("the input's error is also shown above Run: %q", e.text("form.run-form > p.error"))
	}
	e.typeInto("#input-name", "kvflow")
	e.typeInto("#input-times", "3")
	e.click("form.run-form button[type=submit]")

	// The execution page shows the run going, then its end, without a reload.
	e.waitJS("the execution page", `location.hash.startsWith('#/executions/') && !!document.querySelector('#exec-state .state')`)
	e.waitJS("RUNNING", `document.querySelector('#exec-state').textContent === 'RUNNING'`)
	e.screenshot("running")
	e.waitJS("SUCCESS", `document.querySelector('#exec-state').textContent === 'SUCCESS'`)
	e.waitJS("the logs", `(document.querySelector('.logs') || {}).textContent?.includes('Hello kvflow, 3 times')`)
	e.screenshot("success")
	tasks := evalTo[[]string](e, `[...document.querySelectorAll('section table tbody tr')].map(r => r.querySelector('th').textContent + ' ' + r.querySelector('.state').textContent)`)
	if got, want := strings.Join(tasks, ", "), "fetch SUCCESS, remember SUCCESS, say SUCCESS"; got != want {
		t.Errorf("task runs shown = %q, want %q", got, want)
	}

	id := strings.TrimPrefix(evalTo[string](e, `location.hash`), "#/executions/")
	var ex struct {
		State  string         `json:"state"`
		Inputs map[string]any `json:"inputs"`
	}
	if got := e.api("GET", "/executions/"+id, "", "", &ex); got != 200 || ex.State != "SUCCESS" || ex.Inputs["name"] != "kvflow" || fmt.Sprint(ex.Inputs["times"]) != "3" {
		t.Errorf("execution through the API: status %d, %+v; want SUCCESS with name kvflow and times 3", got, ex)
	}
	if _, raw, err := e.Client.Get(context.Background(), ns, "greeting"); err != nil || string(raw) != `"Hello kvflow"` {
		t.Errorf("greeting set by the flow = %s, %v", raw, err)
	}

	// The namespace's executions list shows it in its state colour.
	e.open("#/ns/" + ns + "/executions")
	e.waitJS("the list", `!!document.querySelector('table .state-success')`)
	e.noHorizontalScroll()
}

func TestFlows_EditWithErrors_ShowsThemAtTheirLines(t *testing.T) {
	e := start(t, options{engine: true})
	if got := e.api("POST", "/flows", "application/x-yaml", helloFlow("http://127.0.0.1:1/x"), nil); got != 201 {
		t.Fatalf("creating the flow: status %d", got)
	}
	e.open("#/ns/" + ns + "/flows/hello/edit")
	e.waitJS("the editor", `document.querySelector('#flow-yaml') && document.querySelector('#flow-yaml').value.includes('id: hello')`)

	// Break two things: an unknown task type (line 16) and a bad input type (line 9).
	bad := strings.Replace(helloFlow("http://127.0.0.1:1/x"), "type: io.kestra.plugin.core.kv.Set", "type: io.kestra.plugin.core.kv.Sett", 1)
	bad = strings.Replace(bad, "type: INT", "type: INTEGERS", 1)
	e.eval(fmt.Sprintf(`(() => { const ta = document.querySelector('#flow-yaml'); ta.value = %q; ta.dispatchEvent(new Event('input')); })()`, bad))
	e.click("form.editor-form button[type=submit]")
	e.waitJS("the problems", `!!document.querySelector('#flow-problems li')`)
	e.everyControlLabelled()
	problems := evalTo[[]string](e, `[...document.querySelectorAll('#flow-problems li')].map(li => li.textContent)`)
	joined := strings.Join(problems, "\n")
	if len(problems) != 2 || !strings.Contains(joined, "Line 9") || !strings.Contains(joined, "Line 16") || !strings.Contains(joined, "Sett") {
		t.Errorf("problems shown:\n%s\nwant two, at lines 9 and 16, naming the bad type", joined)
	}
	marked := evalTo[[]string](e, `[...document.querySelectorAll('.gutter .bad')].map(s => s.textContent.trim())`)
	if strings.Join(marked, ",") != "9,16" {
		t.Errorf("gutter marks lines %v, want 9 and 16", marked)
	}
	// A click on a problem selects its line in the editor.
	e.click(`#flow-problems li:last-child button`)
	if got := evalTo[string](e, `(() => { const ta = document.querySelector('#flow-yaml'); return ta.value.slice(ta.selectionStart, ta.selectionEnd); })()`); !strings.Contains(got, "Sett") {
		t.Errorf("selected text = %q, want line 16 with the bad type", got)
	}
	if got := evalTo[string](e, `document.querySelector('#flow-yaml').value`); got != bad {
		t.Error("the editor lost what was typed")
	}
	e.screenshot("errors")

	// Fixed, it saves and the stored flow changes.
	fixed := strings.Replace(helloFlow("http://127.0.0.1:1/x"), "Greets after a slow download", "Greets, edited in the UI", 1)
	e.eval(fmt.Sprintf(`(() => { const ta = document.querySelector('#flow-yaml'); ta.value = %q; ta.dispatchEvent(new Event('input')); })()`, fixed))
	e.click("form.editor-form button[type=submit]")
	e.waitJS("the flow page", `location.hash === '#/ns/company.team/flows/hello' && !!document.querySelector('pre.code')`)
	var f struct {
		Revision    int    `json:"revision"`
		Description string `json:"description"`
	}
	if e.api("GET", "/flows/"+ns+"/hello", "", "", &f); f.Revision != 2 || f.Description != "Greets, edited in the UI" {
		t.Errorf("stored flow: revision %d description %q, want 2 and the edit", f.Revision, f.Description)
	}
}

func TestOverview_ShowsCountsAndRecentExecutions(t *testing.T) {
	e := start(t, options{engine: true})
	e.api("POST", "/flows", "application/x-yaml", helloFlow(slowServer(t, 0)), nil)
	var ex struct{ ID, State string }
	if got := e.api("POST", "/executions/"+ns+"/hello?wait=true", "application/json", `{"name":"overview"}`, &ex); got != 200 || ex.State != "SUCCESS" {
		t.Fatalf("running the flow: status %d state %q", got, ex.State)
	}
	e.seed("other", "1", client.SetOptions{})
	e.open("#/ns/" + ns)
	e.waitJS("the overview", `!!document.querySelector('.cards') && !!document.querySelector('table .state-success')`)
	cards := evalTo[[]string](e, `[...document.querySelectorAll('.cards .card')].map(c => c.textContent.trim())`)
	if strings.Join(cards, ", ") != "1 flow, 2 keys" { // greeting (set by the flow) and other
		t.Errorf("overview cards = %v, want 1 flow and 2 keys", cards)
	}
	if got := e.text(`table tbody th a`); !strings.HasPrefix(ex.ID, strings.TrimSuffix(got, "…")) {
		t.Errorf("recent execution listed = %q, want %s", got, ex.ID)
	}
	e.noHorizontalScroll()
}

func TestLayout_NarrowWindow_FlowAndExecutionPagesFit(t *testing.T) {
	e := start(t, options{engine: true})
	e.api("POST", "/flows", "application/x-yaml", helloFlow(slowServer(t, 0)), nil)
	var ex struct{ ID string }
	e.api("POST", "/executions/"+ns+"/hello?wait=true", "", "", &ex)
	e.do("narrow window", chromedp.EmulateViewport(390, 844))
	for _, route := range []string{"#/namespaces", "#/ns/" + ns + "/flows", "#/ns/" + ns + "/flows/hello", "#/ns/" + ns + "/flows/hello/run", "#/executions/" + ex.ID} {
		e.open(route)
		e.waitJS(route+" loaded", `!document.querySelector('#main').textContent.includes('Loading')`)
		e.noHorizontalScroll()
		e.everyControlLabelled()
		e.screenshot(strings.NewReplacer("#/", "", "/", "-").Replace(route))
	}
	e.waitJS("the logs", `(document.querySelector('.logs') || {}).textContent?.includes('Hello world')`)
}

func TestFlows_NewFlowFromUI_SavesTheTemplateAndRefusesADuplicate(t *testing.T) {
	e := start(t, options{engine: true})
	e.open("#/ns/" + ns + "/flows")
	e.click(`.section-head a.primary`)
	e.waitJS("the editor with a template", `(document.querySelector('#flow-yaml') || {}).value?.includes('namespace: company.team')`)
	e.click("form.editor-form button[type=submit]")
	e.waitJS("the new flow's page", `location.hash === '#/ns/company.team/flows/hello' && !!document.querySelector('pre.code')`)
	if got := e.api("GET", "/flows/"+ns+"/hello", "", "", nil); got != 200 {
		t.Fatalf("GET the new flow: status %d", got)
	}

	// The same template again: the server's conflict shows, the YAML stays.
	e.open("#/ns/" + ns + "/new-flow")
	e.waitJS("the editor", `!!document.querySelector('#flow-yaml')`)
	src := e.value("#flow-yaml")
	e.click("form.editor-form button[type=submit]")
	e.waitJS("the conflict", `document.querySelector('#flow-problems').textContent.includes('already exists')`)
	if got := e.value("#flow-yaml"); got != src {
		t.Error("the editor lost its text after the error")
	}
}
