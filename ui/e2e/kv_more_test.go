package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// set writes ns/key through the API.
func (e *env) set(nsName, key, body string, o client.SetOptions) {
	e.t.Helper()
	if err := e.Client.Set(context.Background(), nsName, key, body, o); err != nil {
		e.t.Fatalf("set %s/%s: %v", nsName, key, err)
	}
}

// inheritedRows lists the inherited table as "ns/key status".
func (e *env) inheritedRows() []string {
	e.t.Helper()
	return evalTo[[]string](e, `[...document.querySelectorAll('table.kv-inherited tbody tr')].map(r =>
		r.dataset.ns + '/' + r.dataset.key + ' ' + r.querySelector('td[data-label=Status]').textContent)`)
}

func TestKV_InheritedPairs_NearestFirstShadowedMarked(t *testing.T) {
	e := start(t, options{})
	e.set("company", "shared", "from company", client.SetOptions{})
	e.set("company", "region", "eu", client.SetOptions{})
	e.set("company", "Bucket", "b", client.SetOptions{})
	e.set("company.team", "shared", "from team", client.SetOptions{})
	e.set("company.team.app", "region", "us", client.SetOptions{})
	e.set("other", "region", "no", client.SetOptions{})
	e.open("#/ns/company.team.app/kv")
	e.waitJS("the inherited pairs", `document.querySelectorAll('table.kv-inherited tbody tr').length === 4`)
	want := []string{
		"company.team/shared Inherited",
		"company/Bucket Inherited",
		"company/region Shadowed by company.team.app",
		"company/shared Shadowed by company.team",
	}
	if got := e.inheritedRows(); !reflect.DeepEqual(got, want) {
		t.Errorf("inherited = %v, want %v", got, want)
	}
	e.screenshot("inherited")
	if got := e.rows(); !reflect.DeepEqual(got, []string{"region"}) {
		t.Errorf("own keys = %v, want region", got)
	}
	// The search filters the inherited pairs too, anywhere in the key and in any case.
	e.typeInto("#kv-search", "bucK")
	e.waitJS("the filtered inherited pairs", `document.querySelectorAll('table.kv-inherited tbody tr').length === 1`)
	if got := e.inheritedRows(); !reflect.DeepEqual(got, []string{"company/Bucket Inherited"}) {
		t.Errorf("inherited matching bucK = %v", got)
	}
	// A top-level namespace has no parents: no inherited section.
	e.open("#/ns/company/kv")
	e.waitJS("company's keys", `document.querySelectorAll('table.kv tbody tr[data-key]').length === 3`)
	if e.visible("#kv-inherited") {
		t.Error("a top-level namespace shows an inherited section")
	}
}

// globalRows lists the global table as "ns/key".
func (e *env) globalRows() []string {
	e.t.Helper()
	return evalTo[[]string](e, `[...document.querySelectorAll('table.kv-global tbody tr[data-key]')].map(r => r.dataset.ns + '/' + r.dataset.key)`)
}

func TestKVGlobal_AcrossNamespaces_FilterSearchPagesAndScope(t *testing.T) {
	// The server lets the API reach company and below only.
	e := start(t, options{cfg: func(c *api.Config, p testpair.Pair) { c.Namespaces = []string{"company.*"} }})
	ctx := context.Background()
	for _, kv := range [][2]string{{"company", "top"}, {"company.team", "Alpha"}, {"company.team", "beta"}, {"company.team.app", "alpha_2"}, {"company.web", "gamma"}} {
		e.set(kv[0], kv[1], "v", client.SetOptions{})
	}
	// Written behind the API's back: outside its scope, never shown.
	if _, err := e.Store.Set(ctx, "secret", "alpha_secret", storage.String("x"), storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	e.open("#/kv")
	e.waitJS("the global list", `document.querySelectorAll('table.kv-global tbody tr[data-key]').length === 5`)
	e.everyControlLabelled()
	want := []string{"company/top", "company.team/Alpha", "company.team/beta", "company.team.app/alpha_2", "company.web/gamma"}
	if got := e.globalRows(); !reflect.DeepEqual(got, want) {
		t.Errorf("global list = %v, want %v", got, want)
	}
	if strings.Contains(e.pageText(), "secret") {
		t.Error("a namespace outside the server's scope is shown")
	}
	e.screenshot("global")
	if got := e.text("#gkv-count"); got != "5 keys" {
		t.Errorf("count = %q, want 5 keys", got)
	}
	// The namespace filter offers parents and keeps a namespace with those below it.
	e.waitJS("the namespace options", `[...document.querySelectorAll('#gkv-ns option')].some(o => o.value === 'company.team')`)
	e.choose("#gkv-ns", "company.team")
	e.waitJS("the filtered list", `document.querySelectorAll('table.kv-global tbody tr[data-key]').length === 3`)
	if got := e.globalRows(); !reflect.DeepEqual(got, []string{"company.team/Alpha", "company.team/beta", "company.team.app/alpha_2"}) {
		t.Errorf("company.team and below = %v", got)
	}
	if got := evalTo[string](e, `location.hash`); got != "#/kv?namespace=company.team" {
		t.Errorf("hash = %q, want the filter in it", got)
	}
	e.typeInto("#gkv-search", "ALPHA")
	e.waitJS("the search", `document.querySelectorAll('table.kv-global tbody tr[data-key]').length === 2`)
	if got := e.globalRows(); !reflect.DeepEqual(got, []string{"company.team/Alpha", "company.team.app/alpha_2"}) {
		t.Errorf("ALPHA in company.team = %v", got)
	}
	// Paging across namespace boundaries.
	e.choose("#gkv-ns", "")
	e.typeInto("#gkv-search", "")
	for i := range 30 {
		e.set("company.web", fmt.Sprintf("page_%02d", i), "v", client.SetOptions{})
	}
	e.choose("#gkv-limit", "25")
	e.waitJS("page 1 of 2", `(document.querySelector('#gkv-count').textContent === '35 keys') && document.querySelectorAll('table.kv-global tbody tr[data-key]').length === 25`)
	e.click("#gkv-next")
	e.waitJS("page 2", `document.querySelectorAll('table.kv-global tbody tr[data-key]').length === 10`)
	if got := e.globalRows(); got[0] != "company.web/page_20" || got[9] != "company.web/page_29" {
		t.Errorf("page 2 = %v, want company.web/page_20 … page_29", got)
	}
	// Opening a link with the filter shows it applied.
	e.open("#/kv?namespace=company.team.app")
	e.waitJS("the linked filter", `document.querySelectorAll('table.kv-global tbody tr[data-key]').length === 1 && document.querySelector('#gkv-ns').value === 'company.team.app'`)
}

func TestKV_HistoryDrawer_DiffBetweenAnyTwoAndRestore(t *testing.T) {
	e := start(t, options{})
	e.seed("cfg", `{"a": 1, "b": 2}`, client.SetOptions{Type: storage.JSON})
	e.seed("cfg", `{"b": 3, "a": 1, "c": 4}`, client.SetOptions{Type: storage.JSON})
	ctx := storage.WithWriter(context.Background(), "flow:company.team/etl")
	if _, err := e.Store.Set(ctx, ns, "cfg", storage.Value{Type: storage.JSON, V: map[string]any{"a": int64(5)}}, storage.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	e.open("#/ns/" + ns + "/kv")
	e.click(`button[aria-label="History of cfg"]`)
	e.waitJS("the versions", `document.querySelectorAll('dialog[open] table.history tbody tr').length === 3`)
	e.everyControlLabelled()
	rows := evalTo[[]string](e, `[...document.querySelectorAll('dialog[open] table.history tbody tr')].map(r => r.dataset.version + ' ' + r.querySelector('.writer').textContent)`)
	if len(rows) != 3 || rows[0] != "3 flow:company.team/etl" || !strings.HasPrefix(rows[1], "2 ") || !strings.HasPrefix(rows[2], "1 ") || strings.Contains(rows[1], "unknown") {
		t.Errorf("versions = %v, want 3 (by the flow), 2, 1 with their writers", rows)
	}
	if e.visible(`dialog[open] button[aria-label="Restore version 3"]`) {
		t.Error("the current version offers Restore")
	}
	// Default: the two newest. v2 → v3.
	e.waitJS("the default diff", `!!document.querySelector('#hist-diff pre.diff')`)
	diff := func() (del, add []string) {
		del = evalTo[[]string](e, `[...document.querySelectorAll('#hist-diff .del')].map(s => s.textContent.trim())`)
		add = evalTo[[]string](e, `[...document.querySelectorAll('#hist-diff .add')].map(s => s.textContent.trim())`)
		return
	}
	// Keys are compared sorted, so v1 → v2 shows only b and c changed, whatever order they were written in.
	e.choose("#hist-from", "1")
	e.choose("#hist-to", "2")
	e.waitJS("the v1→v2 diff", `!!document.querySelector('#hist-diff pre.diff')?.getAttribute('aria-label').includes('version 1 to version 2')`)
	del, add := diff()
	if !reflect.DeepEqual(del, []string{`-   "b": 2`}) || !reflect.DeepEqual(add, []string{`+   "b": 3,`, `+   "c": 4`}) {
		t.Errorf("v1→v2 diff: removed %q, added %q", del, add)
	}
	e.choose("#hist-to", "3")
	e.waitJS("the v1→v3 diff", `!!document.querySelector('#hist-diff pre.diff')?.getAttribute('aria-label').includes('version 1 to version 3')`)
	e.screenshot("history-diff")
	del, add = diff()
	if !reflect.DeepEqual(del, []string{`-   "a": 1,`, `-   "b": 2`}) || !reflect.DeepEqual(add, []string{`+   "a": 5`}) {
		t.Errorf("v1→v3 diff: removed %q, added %q", del, add)
	}

	// Restore v1 only after confirming; Cancel writes nothing.
	e.click(`dialog[open] button[aria-label="Restore version 1"]`)
	e.waitJS("the confirmation", `!!document.querySelector('dialog[open] .confirm')`)
	e.click("dialog[open] .confirm button:not(.danger)")
	e.waitJS("the confirmation to close", `!document.querySelector('dialog[open] .confirm')`)
	if d := e.detail("cfg"); d.Version != 3 {
		t.Fatalf("version after cancelling = %d, want 3", d.Version)
	}
	e.click(`dialog[open] button[aria-label="Restore version 1"]`)
	e.click("dialog[open] .confirm button.danger")
	e.waitJS("version 4 listed", `document.querySelectorAll('dialog[open] table.history tbody tr').length === 4`)
	d := e.detail("cfg")
	jsonEqual(t, "cfg after restoring v1", d.Value, `{"a": 1, "b": 2}`)
	if d.Version != 4 {
		t.Errorf("version after restore = %d, want 4", d.Version)
	}

	// A write made while the drawer is open makes Restore fail (If-Match), writing nothing.
	e.seed("cfg", `{"z": 0}`, client.SetOptions{Type: storage.JSON})
	e.click(`dialog[open] button[aria-label="Restore version 2"]`)
	e.click("dialog[open] .confirm button.danger")
	e.waitJS("the refusal", `document.querySelector('#toast').classList.contains('bad') && document.querySelector('#toast').textContent.includes('changed')`)
	d = e.detail("cfg")
	jsonEqual(t, "cfg after the refused restore", d.Value, `{"z": 0}`)
	if d.Version != 5 {
		t.Errorf("version after the refused restore = %d, want 5", d.Version)
	}
	// Closing the drawer puts the focus back on the key's row.
	e.click(`dialog[open] .drawer-body .section-head button`)
	e.waitJS("the focus on the row", `!document.querySelector('dialog[open]') && document.activeElement.closest('tr') && document.activeElement.closest('tr').dataset.key === 'cfg'`)
}

func TestKV_FocusReturnsToTheTableAfterEditAndDelete(t *testing.T) {
	e := start(t, options{})
	for _, k := range []string{"a_key", "b_key", "c_key"} {
		e.seed(k, "1", client.SetOptions{})
	}
	e.open("#/ns/" + ns + "/kv")
	e.click(`button[aria-label="Edit b_key"]`)
	e.waitJS("the edit dialog", `!!document.querySelector('dialog[open] #kv-value')`)
	e.typeInto("#kv-value", "2")
	e.click("dialog[open] button[type=submit]")
	e.waitJS("the focus on b_key", `!document.querySelector('dialog[open]') && document.activeElement.matches('tr[data-key="b_key"] button.key')`)
	e.click(`button[aria-label="Delete b_key"]`)
	e.click("dialog[open] .confirm button.danger")
	e.waitJS("the focus on the next row", `!document.querySelector('tr[data-key="b_key"]') && document.activeElement.matches('tr[data-key="c_key"] button.key')`)
	e.click(`button[aria-label="Delete c_key"]`)
	e.click("dialog[open] .confirm button.danger")
	e.waitJS("the focus on the row before", `!document.querySelector('tr[data-key="c_key"]') && document.activeElement.matches('tr[data-key="a_key"] button.key')`)
}

func TestKV_AbsoluteDatesNameTheTimeZone(t *testing.T) {
	e := start(t, options{})
	e.seed("greeting", "hi", client.SetOptions{TTL: "P1D"})
	e.do("Paris time", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Europe/Paris"})
		return err
	}))
	e.open("#/ns/" + ns + "/kv")
	abs := e.text(`tr[data-key="greeting"] td[data-label="Expiry"] .abs`)
	if !strings.Contains(abs, "GMT+1") && !strings.Contains(abs, "GMT+2") && !strings.Contains(abs, "CET") {
		t.Errorf("absolute expiry reads %q, want Paris's time zone named", abs)
	}
	if rel := e.text(`tr[data-key="greeting"] td[data-label="Expiry"] .rel`); rel != "tomorrow" && rel != "in 1 day" && rel != "in 24 hours" {
		t.Errorf("relative expiry reads %q, want tomorrow", rel)
	}
	// The relative text follows the clock: two days on, the same expiry is in the past.
	e.eval(`(() => { const real = Date.now; Date.now = () => real() + 2 * 864e5; })()`)
	e.waitJS("the refreshed relative date", `document.querySelector('tr[data-key="greeting"] td[data-label="Expiry"] .rel').textContent === 'yesterday'`)
}

func TestKV_ExportImportAndDeleteAll(t *testing.T) {
	e := start(t, options{})
	e.seed("n", "12345678901234567890", client.SetOptions{Type: storage.NUMBER})
	e.seed("j", `{"x": [1, 2]}`, client.SetOptions{Type: storage.JSON, Description: "a list"})
	e.seed("s", "hello", client.SetOptions{TTL: "P7D"})
	e.open("#/ns/" + ns + "/kv")
	e.waitJS("the keys", `document.querySelectorAll('table.kv tbody tr[data-key]').length === 3`)
	// Export: catch the download the button starts.
	e.eval(`(() => { window.__dl = null; const click = HTMLAnchorElement.prototype.click;
		const url = URL.createObjectURL; let blob;
		URL.createObjectURL = (b) => { blob = b; return url(b); };
		HTMLAnchorElement.prototype.click = function () {
			if (!this.download) return click.call(this);
			const d = window.__dl = { name: this.download };
			blob.text().then(t => { d.text = t; });
		}; })()`)
	e.click("#kv-export")
	e.waitJS("the export", `!!(window.__dl && window.__dl.text)`)
	if name := evalTo[string](e, `window.__dl.name`); name != ns+".kv.jsonl" {
		t.Errorf("download named %q", name)
	}
	export := evalTo[string](e, `window.__dl.text`)
	if n := strings.Count(strings.TrimSpace(export), "\n") + 1; n != 3 || !strings.Contains(export, "12345678901234567890") {
		t.Fatalf("export has %d lines:\n%s", n, export)
	}

	// Delete all keys, after a confirmation naming the count.
	e.click("#kv-delete-all")
	e.waitJS("the confirmation", `!!document.querySelector('dialog[open] .confirm')`)
	if got := e.text("dialog[open] .confirm p"); !strings.Contains(got, "All 3 keys") || !strings.Contains(got, "history") {
		t.Errorf("confirmation reads %q, want the count and that the history keeps the values", got)
	}
	e.click("dialog[open] .confirm button.danger")
	e.waitJS("the empty list", `!!document.querySelector('.tab-body .table-wrap .empty')`)
	if keys, err := e.Client.Keys(context.Background(), ns, ""); err != nil || len(keys) != 0 {
		t.Fatalf("keys after delete all = %v, %v", keys, err)
	}

	// Import the export back.
	file := filepath.Join(t.TempDir(), "kv.jsonl")
	if err := os.WriteFile(file, []byte(export), 0o600); err != nil {
		t.Fatal(err)
	}
	e.do("choose the file", chromedp.SetUploadFiles(chromedp.CSS(`input[type=file]`), []string{file}))
	e.waitJS("the import dialog", `!!document.querySelector('dialog[open] #kv-import-mode')`)
	e.everyControlLabelled()
	e.click("dialog[open] button[type=submit]")
	e.waitJS("the imported keys", `!document.querySelector('dialog[open]') && document.querySelectorAll('table.kv tbody tr[data-key]').length === 3`)
	if got := e.text("#toast"); !strings.Contains(got, "3 written") {
		t.Errorf("toast reads %q, want 3 written", got)
	}
	d := e.detail("j")
	jsonEqual(t, "j after import", d.Value, `{"x": [1, 2]}`)
	if d.Description != "a list" {
		t.Errorf("j description = %q", d.Description)
	}
	if d := e.detail("s"); d.ExpirationDate.IsZero() || time.Until(d.ExpirationDate.Time) < 6*24*time.Hour {
		t.Errorf("s expiry after import = %v, want about 7 days", d.ExpirationDate)
	}
	jsonEqual(t, "n after import", e.detail("n").Value, `12345678901234567890`)

	// A bad line stops an import with the lines before it written: the
	// dialog says how many, and the table shows them.
	line := func(k string) string {
		return `{"namespace":"company.team","key":"` + k + `","type":"STRING","value":"v"}` + "\n"
	}
	if err := os.WriteFile(file, []byte(line("p1")+line("p2")+"{\n"+line("p3")), 0o600); err != nil {
		t.Fatal(err)
	}
	e.do("choose the broken file", chromedp.SetUploadFiles(chromedp.CSS(`input[type=file]`), []string{file}))
	e.click("dialog[open] button[type=submit]")
	e.waitJS("the error", `!document.querySelector('dialog[open] .import-form .error').hidden`)
	if got := e.text("dialog[open] .import-form .error"); !strings.Contains(got, "Line 3") || !strings.Contains(got, "2 written, 0 skipped") {
		t.Errorf("import error reads %q, want line 3 and the counts so far", got)
	}
	e.waitJS("the written keys listed", `document.querySelectorAll('table.kv tbody tr[data-key]').length === 5`)
	e.click("dialog[open] .import-form .actions button:not([type=submit])")
	e.waitJS("the dialog to close", `!document.querySelector('dialog[open]')`)
	if got := e.text("#kv-count"); got != "5 keys" {
		t.Errorf("count after the failed import reads %q, want 5 keys", got)
	}
}

func TestKV_NarrowWindow_GlobalPageInheritedAndDrawerFit(t *testing.T) {
	e := start(t, options{})
	e.set("company", "a_parent_key_with_a_long_name.and.dots", "v", client.SetOptions{})
	e.seed("a_rather_long_key_name.with.dots-and-dashes_0123456789", `{"a": 1}`, client.SetOptions{Type: storage.JSON})
	e.seed("a_rather_long_key_name.with.dots-and-dashes_0123456789", `{"a": 2, "b": "a long string value that needs wrapping in the diff view"}`, client.SetOptions{Type: storage.JSON})
	e.do("narrow window", chromedp.EmulateViewport(390, 844))
	e.open("#/ns/" + ns + "/kv")
	e.waitJS("the inherited pair", `document.querySelectorAll('table.kv-inherited tbody tr').length === 1`)
	e.noHorizontalScroll()
	e.click(`button[aria-label^="History of"]`)
	e.waitJS("the diff", `!!document.querySelector('#hist-diff pre.diff')`)
	e.noHorizontalScroll()
	e.screenshot("narrow-history")
	e.open("#/kv")
	e.waitJS("the global list", `document.querySelectorAll('table.kv-global tbody tr[data-key]').length === 2`)
	e.noHorizontalScroll()
	e.open("#/namespaces")
	e.waitJS("the namespace tree", `document.querySelectorAll('table.ns-tree tbody tr').length === 2`)
	e.noHorizontalScroll()
}

func TestKV_BigNumbers_ShownAndKeptDigitForDigit(t *testing.T) {
	e := start(t, options{})
	e.seed("big", "12345678901234567890", client.SetOptions{Type: storage.NUMBER})
	e.seed("dec", "0.10000000000000000001", client.SetOptions{Type: storage.NUMBER})
	e.seed("doc", `{"id": 12345678901234567890, "ratio": 0.1}`, client.SetOptions{Type: storage.JSON})
	e.seed("doc", `{"id": 12345678901234567891, "ratio": 0.1}`, client.SetOptions{Type: storage.JSON})
	e.open("#/ns/" + ns + "/kv")
	shown := func(key string) string {
		e.click(fmt.Sprintf(`tr[data-key=%q] button.key`, key))
		sel := fmt.Sprintf(`pre.value[aria-label="Value of %s"]`, key)
		e.waitJS("the value of "+key, fmt.Sprintf(`!!document.querySelector(%q)`, sel))
		return e.text(sel)
	}
	if got := shown("big"); got != "12345678901234567890" {
		t.Errorf("big reads %q", got)
	}
	if got := shown("dec"); got != "0.10000000000000000001" {
		t.Errorf("dec reads %q", got)
	}
	if got := shown("doc"); !strings.Contains(got, `"id": 12345678901234567891`) || !strings.Contains(got, `"ratio": 0.1`) {
		t.Errorf("doc reads %q", got)
	}

	// Editing shows the stored digits, and saving unchanged keeps them.
	e.click(`tr[data-key="big"] button[aria-label="Edit big"]`)
	e.waitJS("the edit dialog", `!!document.querySelector('dialog[open] #kv-value')`)
	if got := e.value("#kv-value"); got != "12345678901234567890" {
		t.Errorf("edit field = %q", got)
	}
	e.click("dialog[open] button[type=submit]")
	e.waitJS("the dialog to close", `!document.querySelector('dialog[open]')`)
	if d := e.detail("big"); d.Version != 2 {
		t.Errorf("big version %d after saving, want 2", d.Version)
	} else {
		jsonEqual(t, "big after saving", d.Value, `12345678901234567890`)
	}

	// The history diff tells two integers apart past 2^53. The list is
	// redrawn after the save: click the button of the redrawn one.
	e.waitJS("the history drawer", `(() => {
		if (document.querySelector('dialog[open]')) return !!document.querySelector('dialog[open] table.history');
		document.querySelector('button[aria-label="History of doc"]')?.click();
		return false; })()`)
	e.waitJS("the diff", `!!document.querySelector('#hist-diff pre.diff')`)
	del := evalTo[[]string](e, `[...document.querySelectorAll('#hist-diff .del')].map(s => s.textContent.trim())`)
	add := evalTo[[]string](e, `[...document.querySelectorAll('#hist-diff .add')].map(s => s.textContent.trim())`)
	if !reflect.DeepEqual(del, []string{`-   "id": 12345678901234567890,`}) || !reflect.DeepEqual(add, []string{`+   "id": 12345678901234567891,`}) {
		t.Errorf("diff: removed %q, added %q", del, add)
	}
}
