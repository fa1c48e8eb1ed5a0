package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
)

func TestNamespaces_CreateForm_ChecksAsYouTypeAndCreates(t *testing.T) {
	e := start(t, options{})
	e.seed("greeting", "Hello", client.SetOptions{}) // company.team holds one key
	e.open("#/namespaces")
	e.waitJS("the list", `!!document.querySelector('table.table tbody tr[data-ns="company.team"]')`)
	if got := e.text(`tr[data-ns="company.team"] td[data-label="Keys"]`); got != "1" {
		t.Errorf("company.team key count reads %q, want 1", got)
	}

	e.everyControlLabelled()
	e.typeInto("#ns-name", "Company Team")
	if got := e.fieldError("ns-name"); !strings.Contains(got, "lowercase") {
		t.Errorf("error while typing = %q, want the namespace rule", got)
	}
	e.typeInto("#ns-name", strings.Repeat("a", 151))
	if got := e.fieldError("ns-name"); !strings.Contains(got, "150") {
		t.Errorf("error for 151 characters = %q, want the 150 limit", got)
	}
	// Dots separate non-empty parts, as the server checks.
	for _, bad := range []string{"company..team", "company."} {
		e.typeInto("#ns-name", bad)
		if got := e.fieldError("ns-name"); !strings.Contains(got, "non-empty parts") {
			t.Errorf("error for %q = %q, want the dots rule", bad, got)
		}
	}
	e.typeInto("#ns-name", "company.team")
	if e.visible("#ns-name-error") {
		t.Errorf("a valid name still shows an error: %q", e.fieldError("ns-name"))
	}
	// The server knows company.team exists only from its key, so creating it is
	// allowed; creating it twice is a conflict shown at the field.
	e.click("form.inline-form button[type=submit]")
	e.waitJS("the namespace page", `location.hash === '#/ns/company.team/kv'`)
	e.open("#/namespaces")
	e.typeInto("#ns-name", "company.team")
	e.click("form.inline-form button[type=submit]")
	e.waitJS("the conflict at the field", `!document.querySelector('#ns-name-error').hidden`)
	if got := e.value("#ns-name"); got != "company.team" {
		t.Errorf("name after the error = %q, want it kept", got)
	}

	e.typeInto("#ns-name", "data.eu-west_1")
	e.click("form.inline-form button[type=submit]")
	e.waitJS("the new namespace's KV tab", `location.hash === '#/ns/data.eu-west_1/kv' && !!document.querySelector('.tab-body .empty')`)
	nss, err := e.Client.Namespaces(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, n := range nss {
		ids = append(ids, n.ID)
	}
	if !slices.Contains(ids, "data.eu-west_1") {
		t.Errorf("namespaces through the API = %v, want data.eu-west_1 among them", ids)
	}
	e.open("#/namespaces")
	// A tree: each implicit parent before its children, marked, children indented.
	e.waitJS("both namespaces and their parents listed", `document.querySelectorAll('table.table tbody tr').length === 4`)
	got := evalTo[[]string](e, `[...document.querySelectorAll('table.ns-tree tbody tr')].map(r => r.dataset.ns + (r.classList.contains('implicit') ? ' (parent)' : '') + ' ' + r.querySelector('td').dataset.depth)`)
	if want := []string{"company (parent) 0", "company.team 1", "data (parent) 0", "data.eu-west_1 1"}; !slices.Equal(got, want) {
		t.Errorf("namespace tree = %v, want %v", got, want)
	}
	if pad := evalTo[[]string](e, `[...document.querySelectorAll('table.ns-tree tbody tr td:first-child')].map(td => getComputedStyle(td).paddingLeft)`); pad[0] == pad[1] {
		t.Errorf("child not indented: paddings %v", pad)
	}
	e.noHorizontalScroll()
}

func TestNamespaces_AllowList_ParentsOutsideItLeftOut(t *testing.T) {
	e := start(t, options{cfg: func(c *api.Config, p testpair.Pair) { c.Namespaces = []string{"team.a.*"} }})
	e.set("team.a", "k", "v", client.SetOptions{})
	e.set("team.a.b", "k", "v", client.SetOptions{})
	e.open("#/namespaces")
	e.waitJS("the tree", `document.querySelectorAll('table.ns-tree tbody tr').length > 0`)
	got := evalTo[[]string](e, `[...document.querySelectorAll('table.ns-tree tbody tr')].map(r => r.dataset.ns + ' ' + r.querySelector('td').dataset.depth)`)
	if want := []string{"team.a 0", "team.a.b 1"}; !slices.Equal(got, want) {
		t.Errorf("namespace tree = %v, want %v: team is outside the allow-list", got, want)
	}
	e.open("#/kv")
	e.waitJS("the namespace filter", `document.querySelectorAll('#gkv-ns option').length > 1`)
	if got := evalTo[[]string](e, `[...document.querySelectorAll('#gkv-ns option')].map(o => o.value)`); !slices.Equal(got, []string{"", "team.a", "team.a.b"}) {
		t.Errorf("namespace filter offers %q, want all, team.a and team.a.b", got)
	}
}

func TestAuth_TokenAskedOnceAndKeptForTheSession(t *testing.T) {
	e := start(t, options{token: "s3cret-token"})
	e.seed("greeting", "Hello", client.SetOptions{})
	e.open("#/ns/" + ns + "/kv")
	e.waitJS("the token prompt", `document.querySelector('#token-dialog').open`)

	e.everyControlLabelled()
	e.typeInto("#token-input", "wrong")
	e.click("#token-dialog button[type=submit]")
	e.waitJS("the prompt again", `document.querySelector('#token-dialog').open && document.querySelector('#token-why').textContent.includes('refused')`)
	e.screenshot("token-refused")

	e.typeInto("#token-input", "s3cret-token")
	e.click("#token-dialog button[type=submit]")
	e.waitJS("the keys", `!!document.querySelector('tr[data-key="greeting"]')`)
	if got := evalTo[string](e, `sessionStorage.getItem('kvflow.token')`); got != "s3cret-token" {
		t.Errorf("token kept = %q, want it in sessionStorage", got)
	}

	// A reload and another page use the kept token without asking.
	e.open("#/namespaces")
	e.waitJS("the namespaces", `!!document.querySelector('table.table tbody tr')`)
	if evalTo[bool](e, `document.querySelector('#token-dialog').open`) {
		t.Error("the token was asked for again")
	}
	if !e.visible("#forget-token") {
		t.Error("no way to forget the token")
	}
}

// A user who starts typing before a page has finished loading keeps the focus:
// the move of focus to the new page's content must not steal it.
func TestNavigation_TypingWhileThePageLoadsKeepsTheFocus(t *testing.T) {
	e := start(t, options{})
	e.seed("greeting", "Hello", client.SetOptions{})
	e.open("#/kv")
	e.waitJS("the global KV page", `document.querySelector('#main').textContent.includes('greeting')`)
	e.eval(`(() => { const f = window.fetch; window.fetch = (...a) => new Promise((r) => setTimeout(r, 700)).then(() => f(...a)); })()`)
	e.eval(`location.hash = '#/namespaces'`)
	e.typeInto("#ns-name", "company")
	e.waitJS("the list, loaded slowly", `!!document.querySelector('table.table tbody tr[data-ns="company.team"]')`)
	e.waitJS("the route settled", `new Promise((r) => setTimeout(() => r(true), 100))`)
	if got := evalTo[string](e, `document.activeElement.id`); got != "ns-name" {
		t.Errorf("focus after the page loaded is on %q, want the field being typed in", got)
	}
}
