package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/storagetest"
)

// notInPage fails the test when marker is anywhere in the page: its HTML
// or the value of a form control.
func (e *env) notInPage(what, marker string) {
	e.t.Helper()
	if evalTo[bool](e, fmt.Sprintf(`(() => { const m = %q;
		return document.documentElement.outerHTML.includes(m) || [...document.querySelectorAll('input, textarea, select')].some(el => el.value.includes(m)); })()`, marker)) {
		e.screenshot("leak")
		e.t.Errorf("%s: the sensitive value %q is in the page", what, marker)
	}
}

// goneDialog is true once a closed dialog has left the page (its close
// event, which removes it, comes after close()).
const goneDialog = `!document.querySelector('dialog:not(#token-dialog)')`

// revealed fetches a sensitive entry through the API, value shown.
func (e *env) revealed(key string) *client.EntryDetail {
	e.t.Helper()
	d, err := e.Client.Reveal(context.Background(), ns, key)
	if err != nil {
		e.t.Fatalf("reveal %s through the API: %v", key, err)
	}
	return d
}

func TestKV_Sensitive_FormMarksIt_MaskedInListAndEditUntilRevealed(t *testing.T) {
	e := start(t, options{store: storage.Options{Keys: storagetest.TestKeys(t)}})
	marker := fmt.Sprintf("mArKeR-ui-%d", time.Now().UnixNano())
	e.open("#/ns/" + ns + "/kv")
	e.waitJS("the empty KV list", `!!document.querySelector('.tab-body .empty')`)

	// Create it through the form with the Sensitive box ticked.
	e.openNewKV()
	e.everyControlLabelled()
	if evalTo[bool](e, `document.querySelector('#kv-sensitive').checked`) {
		t.Errorf("a new key-value is sensitive by default")
	}
	e.fillKV(kvForm{key: "db_password", typ: "STRING", value: marker, description: "Database password"})
	e.click("#kv-sensitive")
	e.saveKV("db_password")
	if d := e.revealed("db_password"); !d.Sensitive || fmt.Sprintf("%s", d.Value) != `"`+marker+`"` {
		t.Fatalf("stored: sensitive %v value %s, want sensitive and %q", d.Sensitive, d.Value, marker)
	}
	e.notInPage("the list after saving", marker)
	if got := e.text(`tr[data-key="db_password"] .badge.sensitive`); got != "sensitive" {
		t.Errorf("badge = %q, want sensitive", got)
	}

	// Opening the row shows ******; Reveal fetches the value, Hide drops it.
	e.click(`tr[data-key="db_password"] button.key`)
	if got := e.text(`tr.detail pre.value`); got != storage.Mask {
		t.Errorf("opened row shows %q, want %s", got, storage.Mask)
	}
	e.notInPage("the opened row", marker)
	e.click(`button[aria-label="Reveal the value of db_password"]`)
	e.waitJS("the revealed value", fmt.Sprintf(`document.querySelector('tr.detail pre.value').textContent === %q`, marker))
	if got := evalTo[string](e, `document.activeElement.getAttribute('aria-label')`); got != "Hide the value of db_password" {
		t.Errorf("focus after Reveal is on %q, want the Hide button", got)
	}
	e.click(`button[aria-label="Hide the value of db_password"]`)
	e.waitJS("the value hidden again", `document.querySelector('tr.detail pre.value').textContent === '******'`)
	e.notInPage("the row after Hide", marker)

	// Edit: the value stays on the server; the box is ticked; changing only
	// the description keeps the value (and the flag).
	e.click(`tr[data-key="db_password"] button[aria-label="Edit db_password"]`)
	e.waitJS("the edit dialog, focus on Reveal", `document.activeElement && document.activeElement.id === 'kv-reveal'`)
	e.everyControlLabelled()
	e.notInPage("the edit dialog", marker)
	if !evalTo[bool](e, `document.querySelector('#kv-sensitive').checked`) {
		t.Errorf("editing a sensitive entry: the Sensitive box is not ticked")
	}
	e.typeInto("#kv-description", "Primary database password")
	e.notInPage("the edit dialog after typing", marker)
	e.click("dialog[open] button[type=submit]")
	e.waitJS("the dialog to be gone", goneDialog)
	if d := e.revealed("db_password"); !d.Sensitive || fmt.Sprintf("%s", d.Value) != `"`+marker+`"` || d.Description != "Primary database password" || d.Version != 2 {
		t.Errorf("after editing the description: sensitive %v value %s description %q version %d, want the value kept at version 2",
			d.Sensitive, d.Value, d.Description, d.Version)
	}
	e.notInPage("the list after editing", marker)

	// Reveal in the edit dialog puts the value in its field; Escape closes it.
	e.click(`tr[data-key="db_password"] button[aria-label="Edit db_password"]`)
	e.waitJS("the edit dialog", `document.activeElement && document.activeElement.id === 'kv-reveal'`)
	e.click("#kv-reveal")
	e.waitJS("the value in its field", fmt.Sprintf(`document.querySelector('#kv-value').value === %q && document.activeElement.id === 'kv-value'`, marker))
	e.do("press Escape", chromedp.KeyEvent(kb.Escape))
	e.waitJS("the dialog to be gone", goneDialog)
	e.notInPage("the list after the dialog closed", marker)

	// History marks both versions and compares them only once revealed.
	e.click(`button[aria-label="History of db_password"]`)
	e.waitJS("the hidden comparison", `!!document.querySelector('#hist-reveal')`)
	if n := evalTo[int](e, `document.querySelectorAll('table.history .badge.sensitive').length`); n != 2 {
		t.Errorf("history shows %d sensitive badges, want 2", n)
	}
	e.notInPage("the history drawer", marker)
	e.click("#hist-reveal")
	e.waitJS("the diff with the value", fmt.Sprintf(`(document.querySelector('#hist-diff pre.diff') || {}).textContent?.includes(%q)`, marker))
	e.do("press Escape", chromedp.KeyEvent(kb.Escape))
	e.waitJS("the drawer to be gone", goneDialog)
	e.notInPage("the list after the history closed", marker)
}

func TestKV_Sensitive_SetThroughAPI_MaskedInNamespaceInheritedAndGlobalLists(t *testing.T) {
	e := start(t, options{store: storage.Options{Keys: storagetest.TestKeys(t)}})
	marker := fmt.Sprintf("mArKeR-api-%d", time.Now().UnixNano())
	e.seed("api_token", marker, client.SetOptions{Sensitive: true})
	e.seed("plain", `"visible"`, client.SetOptions{})
	e.set("company", "root_token", marker+"-root", client.SetOptions{Sensitive: true})

	e.open("#/ns/" + ns + "/kv")
	e.waitJS("the list", `!!document.querySelector('tr[data-key="plain"]')`)
	if got := e.text(`tr[data-key="api_token"] .badge.sensitive`); got != "sensitive" {
		t.Errorf("badge = %q, want sensitive", got)
	}
	if evalTo[bool](e, `!!document.querySelector('tr[data-key="plain"] .badge.sensitive')`) {
		t.Errorf("a plain entry has the sensitive badge")
	}
	e.click(`tr[data-key="api_token"] button.key`)
	if got := e.text(`tr.detail pre.value`); got != storage.Mask {
		t.Errorf("opened row shows %q, want %s", got, storage.Mask)
	}
	e.waitJS("the inherited pairs", `!!document.querySelector('table.kv-inherited tr[data-key="root_token"]')`)
	if got := e.text(`table.kv-inherited tr[data-key="root_token"] .badge.sensitive`); got != "sensitive" {
		t.Errorf("inherited badge = %q, want sensitive", got)
	}
	e.notInPage("the namespace list", marker)

	e.open("#/kv")
	e.waitJS("the global list", `!!document.querySelector('table.kv-global tr[data-key="api_token"]')`)
	if got := e.text(`table.kv-global tr[data-key="api_token"] .badge.sensitive`); got != "sensitive" {
		t.Errorf("global badge = %q, want sensitive", got)
	}
	e.click(`table.kv-global tr[data-key="api_token"] button.key`)
	if got := e.text(`table.kv-global tr.detail pre.value`); got != storage.Mask {
		t.Errorf("global row shows %q, want %s", got, storage.Mask)
	}
	e.notInPage("the global list", marker)
	e.click(`button[aria-label="Reveal the value of api_token"]`)
	e.waitJS("the revealed value", fmt.Sprintf(`document.querySelector('table.kv-global tr.detail pre.value').textContent === %q`, marker))
	// Closing the row takes the value off the page.
	e.click(`table.kv-global tr[data-key="api_token"] button.key`)
	e.notInPage("the global list after closing the row", marker)
}
