package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/storage"
)

const ns = "company.team"

// kvForm is what a user enters in the New/Edit Key-Value dialog.
type kvForm struct {
	key, typ, value, description, ttl, custom string
}

// openNewKV opens the New Key-Value dialog.
func (e *env) openNewKV() {
	e.t.Helper()
	e.click(".section-head button.primary")
	e.waitJS("the key-value dialog", `document.activeElement && document.activeElement.id === 'kv-key'`)
}

// fillKV fills the open dialog; empty fields are left as they are.
func (e *env) fillKV(f kvForm) {
	e.t.Helper()
	if f.key != "" {
		e.typeInto("#kv-key", f.key)
	}
	if f.typ != "" {
		e.choose("#kv-type", f.typ)
	}
	if f.value != "" {
		e.typeInto("#kv-value", f.value)
	}
	if f.description != "" {
		e.typeInto("#kv-description", f.description)
	}
	if f.ttl != "" {
		e.choose("#kv-ttl", f.ttl)
	}
	if f.custom != "" {
		e.typeInto("#kv-ttl-custom", f.custom)
	}
}

// saveKV clicks Save and waits for the dialog to close and the key to be listed.
func (e *env) saveKV(key string) {
	e.t.Helper()
	e.click("dialog[open] button[type=submit]")
	e.waitJS("the dialog to close and "+key+" to be listed",
		fmt.Sprintf(`!document.querySelector('dialog[open]') && !!document.querySelector('tr[data-key=%q]')`, key))
}

func (e *env) detail(key string) *client.EntryDetail {
	e.t.Helper()
	d, err := e.Client.Detail(context.Background(), ns, key)
	if err != nil {
		e.t.Fatalf("GET %s through the API: %v", key, err)
	}
	return d
}

func (e *env) seed(key, body string, o client.SetOptions) {
	e.t.Helper()
	if err := e.Client.Set(context.Background(), ns, key, body, o); err != nil {
		e.t.Fatalf("seed %s: %v", key, err)
	}
}

// jsonEqual compares a value as the API answered it with want, as JSON.
func jsonEqual(t testing.TB, what string, got any, want string) {
	t.Helper()
	raw, ok := got.(json.RawMessage)
	if !ok {
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		raw = b
	}
	var g, w any
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func TestKV_NewKeyValueForm_StoresStringWithTTLAndJSONAndNumber(t *testing.T) {
	e := start(t, options{})
	e.open("#/ns/" + ns + "/kv")
	e.waitJS("the empty KV list", `!!document.querySelector('.tab-body .empty')`)

	before := time.Now()
	e.openNewKV()
	e.fillKV(kvForm{key: "greeting", typ: "STRING", value: "Hello World", description: "A greeting", ttl: "PT1H"})
	e.saveKV("greeting")
	d := e.detail("greeting")
	if d.Type != "STRING" || d.Description != "A greeting" {
		t.Errorf("greeting: type %q description %q, want STRING and %q", d.Type, d.Description, "A greeting")
	}
	jsonEqual(t, "greeting value", d.Value, `"Hello World"`)
	if exp := d.ExpirationDate.Time; exp.Before(before.Add(time.Hour-time.Second)) || exp.After(time.Now().Add(time.Hour+time.Second)) {
		t.Errorf("greeting expires at %v, want about an hour after %v", exp, before)
	}

	e.openNewKV()
	e.fillKV(kvForm{key: "my_json_key", typ: "JSON", value: `{"name": "John Doe", "age": 32, "address": {"city": "Paris"}}`})
	e.saveKV("my_json_key")
	d = e.detail("my_json_key")
	if d.Type != "JSON" || !d.ExpirationDate.IsZero() {
		t.Errorf("my_json_key: type %q expiration %v, want JSON and none", d.Type, d.ExpirationDate)
	}
	jsonEqual(t, "my_json_key value", d.Value, `{"name":"John Doe","age":32,"address":{"city":"Paris"}}`)

	e.openNewKV()
	e.fillKV(kvForm{key: "answer", typ: "NUMBER", value: "42"})
	e.saveKV("answer")
	d = e.detail("answer")
	if d.Type != "NUMBER" {
		t.Errorf("answer: type %q, want NUMBER", d.Type)
	}
	jsonEqual(t, "answer value", d.Value, `42`)

	// The chosen type wins over what the text looks like.
	e.openNewKV()
	e.fillKV(kvForm{key: "literal", typ: "STRING", value: "true"})
	e.saveKV("literal")
	if d := e.detail("literal"); d.Type != "STRING" {
		t.Errorf("literal: type %q, want the chosen STRING", d.Type)
	}

	if got, want := e.rows(), []string{"answer", "greeting", "literal", "my_json_key"}; !reflect.DeepEqual(got, want) {
		t.Errorf("listed keys = %v, want %v", got, want)
	}
	if got := e.text(`tr[data-key="greeting"] td[data-label="Expiry"]`); !strings.Contains(got, "in 1 hour") {
		t.Errorf("greeting's expiry reads %q, want it to say \"in 1 hour\"", got)
	}
	if got := e.text(`tr[data-key="my_json_key"] td[data-label="Type"]`); got != "JSON" {
		t.Errorf("my_json_key's type reads %q, want JSON", got)
	}

	// Opening a row fetches and shows its value.
	e.click(`tr[data-key="my_json_key"] button.key`)
	if got := e.text(`tr.detail:not([hidden]) pre.value`); !strings.Contains(got, `"John Doe"`) {
		t.Errorf("opened value reads %q, want the JSON document", got)
	}
	e.noHorizontalScroll()
}

func TestKV_EditRow_OverwritesValueWithKeyFixed(t *testing.T) {
	e := start(t, options{})
	e.seed("greeting", "Hello", client.SetOptions{Type: storage.STRING, Description: "A greeting", TTL: "P1D"})
	e.seed("flag", "true", client.SetOptions{Type: storage.BOOLEAN})
	expires := e.detail("greeting").ExpirationDate
	e.open("#/ns/" + ns + "/kv")

	e.click(`tr[data-key="greeting"] button[aria-label="Edit greeting"]`)
	e.waitJS("the edit dialog", `!!document.querySelector('dialog[open] #kv-key')`)
	if !evalTo[bool](e, `document.querySelector('#kv-key').readOnly`) {
		t.Error("the key can be changed while editing")
	}
	if got, want := e.value("#kv-value"), "Hello"; got != want {
		t.Errorf("value field = %q, want the stored %q", got, want)
	}
	if got, want := e.value("#kv-description"), "A greeting"; got != want {
		t.Errorf("description field = %q, want %q", got, want)
	}
	e.typeInto("#kv-value", "Hello again")
	e.click("dialog[open] button[type=submit]")
	e.waitJS("the dialog to close", `!document.querySelector('dialog[open]')`)
	d := e.detail("greeting")
	jsonEqual(t, "greeting value", d.Value, `"Hello again"`)
	if d.Description != "A greeting" || d.Version != 2 {
		t.Errorf("description %q version %d, want the description kept and version 2", d.Description, d.Version)
	}
	if !d.ExpirationDate.Equal(expires.Time) {
		t.Errorf("expiry after the edit = %v, want the kept %v", d.ExpirationDate, expires)
	}

	// A change made while the form is open is not overwritten unasked.
	edit := func(value string) {
		e.click(`tr[data-key="greeting"] button[aria-label="Edit greeting"]`)
		e.waitJS("the edit dialog", `!!document.querySelector('dialog[open] #kv-value')`)
		e.seed("greeting", "From elsewhere", client.SetOptions{})
		e.typeInto("#kv-value", value)
		e.click("dialog[open] button[type=submit]")
		e.waitJS("the conflict", `!document.querySelector('dialog[open] .conflict').hidden`)
	}
	edit("Mine")
	e.screenshot("edit-conflict")
	if got := e.text("dialog[open] .conflict p"); !strings.Contains(got, "version 2 → 3") {
		t.Errorf("conflict reads %q, want version 2 → 3", got)
	}
	jsonEqual(t, "greeting after the refused save", e.detail("greeting").Value, `"From elsewhere"`)
	e.click("#kv-overwrite")
	e.waitJS("the dialog to close", `!document.querySelector('dialog[open]')`)
	if d := e.detail("greeting"); d.Version != 4 {
		t.Errorf("version after overwriting = %d, want 4", d.Version)
	} else {
		jsonEqual(t, "greeting after overwriting", d.Value, `"Mine"`)
	}
	// Reload opens the form again on the key as it now is.
	edit("Mine again")
	e.click("#kv-reload")
	e.waitJS("the form reloaded", `document.querySelector('dialog[open] #kv-value')?.value === 'From elsewhere'`)
	e.do("press Escape", chromedp.KeyEvent(kb.Escape))
	e.waitJS("the dialog to close", `!document.querySelector('dialog[open]')`)

	// A BOOLEAN is a toggle.
	e.click(`tr[data-key="flag"] button[aria-label="Edit flag"]`)
	e.waitJS("the toggle", `document.querySelector('#kv-bool') && document.querySelector('#kv-bool').checked === true`)
	e.everyControlLabelled()
	e.click("dialog[open] .switch")
	e.click("dialog[open] button[type=submit]")
	e.waitJS("the dialog to close", `!document.querySelector('dialog[open]')`)
	jsonEqual(t, "flag value", e.detail("flag").Value, `false`)
}

func TestKV_DeleteRow_OnlyAfterConfirming(t *testing.T) {
	e := start(t, options{})
	e.seed("keep_me", "1", client.SetOptions{})
	e.seed("remove_me", "2", client.SetOptions{})
	e.open("#/ns/" + ns + "/kv")

	del := `tr[data-key="remove_me"] button[aria-label="Delete remove_me"]`
	e.click(del)
	e.waitJS("the confirmation", `!!document.querySelector('dialog[open] .confirm')`)
	if got := e.text("dialog[open] .confirm p"); !strings.Contains(got, "remove_me") || !strings.Contains(got, "Undo") {
		t.Errorf("confirmation reads %q, want it to name the key and offer Undo", got)
	}
	// Escape cancels, and Cancel has the focus, so Enter cannot delete by mistake.
	if got := evalTo[string](e, `document.activeElement.textContent`); got != "Cancel" {
		t.Errorf("focused button is %q, want Cancel", got)
	}
	e.do("press Escape", chromedp.KeyEvent(kb.Escape))
	e.waitJS("the confirmation to close", `!document.querySelector('dialog[open]')`)
	if _, _, err := e.Client.Get(context.Background(), ns, "remove_me"); err != nil {
		t.Fatalf("remove_me after cancelling: %v", err)
	}

	e.click(del)
	e.click("dialog[open] .confirm button.danger")
	e.waitJS("the row to go", `!document.querySelector('tr[data-key="remove_me"]')`)
	if _, _, err := e.Client.Get(context.Background(), ns, "remove_me"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("remove_me after deleting: err = %v, want not found", err)
	}
	if got, want := e.rows(), []string{"keep_me"}; !reflect.DeepEqual(got, want) {
		t.Errorf("listed keys = %v, want %v", got, want)
	}

	// A delete is a tombstone in the key's history: Undo restores the value.
	e.click("#toast button")
	e.waitJS("the key back", `!!document.querySelector('tr[data-key="remove_me"]')`)
	if d := e.detail("remove_me"); d.Version != 3 {
		t.Errorf("remove_me after Undo: version %d, want 3 (after the tombstone 2)", d.Version)
	} else {
		jsonEqual(t, "remove_me after Undo", d.Value, `2`)
	}
}

func TestKV_BadKeyAndBadJSON_ErrorsAtTheFieldAndNothingLost(t *testing.T) {
	e := start(t, options{})
	e.seed("taken", "x", client.SetOptions{})
	e.open("#/ns/" + ns + "/kv")
	e.openNewKV()

	e.everyControlLabelled()
	e.fillKV(kvForm{key: "bad key!", typ: "JSON", value: `{"name": "John",`})
	if got := e.fieldError("kv-key"); !strings.Contains(got, "must start with a letter or a digit") {
		t.Errorf("key error = %q, want the key rule", got)
	}
	if got := e.fieldError("kv-value"); !strings.Contains(got, "Invalid JSON") {
		t.Errorf("value error = %q, want an invalid JSON message", got)
	}
	e.click("dialog[open] button[type=submit]")
	if got := evalTo[string](e, `document.activeElement.id`); got != "kv-key" {
		t.Errorf("after Save the focus is on %q, want the first bad field kv-key", got)
	}
	if !e.visible("dialog[open]") {
		t.Fatal("the dialog closed with errors in it")
	}
	e.screenshot("errors-typed")

	// An error only the server knows: the key exists already. It shows at the
	// key and the value typed stays.
	e.fillKV(kvForm{key: "taken", value: `{"name": "John"}`})
	if e.visible("#kv-key-error") || e.visible("#kv-value-error") {
		t.Error("errors still shown after fixing the fields")
	}
	e.click("dialog[open] button[type=submit]")
	e.waitJS("the conflict at the key", `!document.querySelector('#kv-key-error').hidden`)
	if got := e.fieldError("kv-key"); !strings.Contains(got, "taken") || !strings.Contains(got, "already exists") {
		t.Errorf("key error = %q, want the server's conflict message", got)
	}
	if got, want := e.value("#kv-value"), `{"name": "John"}`; got != want {
		t.Errorf("value after the error = %q, want %q kept", got, want)
	}
	jsonEqual(t, "taken value", e.detail("taken").Value, `"x"`)

	e.typeInto("#kv-key", "person")
	e.saveKV("person")
	jsonEqual(t, "person value", e.detail("person").Value, `{"name":"John"}`)
	if got, err := e.Client.Keys(context.Background(), ns, ""); err != nil || !reflect.DeepEqual(got, []string{"person", "taken"}) {
		t.Errorf("keys = %v, %v; want only person and taken", got, err)
	}
}

func TestKV_CustomDuration_SetsTTLAndBadOneIsRefused(t *testing.T) {
	e := start(t, options{})
	e.open("#/ns/" + ns + "/kv")
	e.openNewKV()
	e.fillKV(kvForm{key: "session", typ: "STRING", value: "abc", ttl: "custom", custom: "P1Y"})
	if got := e.fieldError("kv-ttl-custom"); !strings.Contains(got, "ISO-8601") {
		t.Errorf("custom duration error = %q, want the ISO-8601 hint", got)
	}
	e.typeInto("#kv-ttl-custom", "P2DT12H")
	before := time.Now()
	e.saveKV("session")
	exp := e.detail("session").ExpirationDate.Time
	if want := before.Add(60 * time.Hour); exp.Before(want.Add(-time.Second)) || exp.After(time.Now().Add(60*time.Hour+time.Second)) {
		t.Errorf("session expires at %v, want about %v", exp, want)
	}
}

func TestKV_SearchAnywhereIgnoringCase_TotalAndPageNumbers(t *testing.T) {
	e := start(t, options{})
	for i := range 30 {
		e.seed(fmt.Sprintf("app.%03d", i), "1", client.SetOptions{})
	}
	for i := range 60 {
		e.seed(fmt.Sprintf("db.%03d", i), "1", client.SetOptions{})
	}
	e.seed("legacy_DB_url", "x", client.SetOptions{})
	e.open("#/ns/" + ns + "/kv")
	e.waitJS("the first page", `document.querySelectorAll('table.kv tbody tr[data-key]').length === 50`)
	if got := e.text("#kv-count"); got != "91 keys" {
		t.Errorf("count reads %q, want 91 keys", got)
	}
	e.everyControlLabelled()
	e.choose("#kv-limit", "25")
	// "db" is found anywhere in the key, in any case: 60 db.* keys and legacy_DB_url.
	e.typeInto("#kv-search", "db")
	e.waitJS("the filtered page", `document.querySelector('#kv-count').textContent.startsWith('61 keys')`)

	want := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("db.%03d", i))
		}
		return out
	}
	if got := e.rows(); !reflect.DeepEqual(got, want(0, 25)) {
		t.Fatalf("page 1 = %v, want db.000–db.024", got)
	}
	if got := evalTo[[]string](e, `[...document.querySelectorAll('.pager .pages button')].map(b => b.textContent)`); !reflect.DeepEqual(got, []string{"1", "2", "3"}) {
		t.Errorf("page numbers = %v, want 1 2 3", got)
	}
	e.click("#kv-next")
	e.waitJS("page 2", `document.querySelector('table.kv tbody tr[data-key]').dataset.key === 'db.025'`)
	if got := e.rows(); !reflect.DeepEqual(got, want(25, 50)) {
		t.Fatalf("page 2 = %v, want db.025–db.049", got)
	}
	e.click(`.pager .pages button[aria-label="Page 3"]`)
	e.waitJS("page 3", `document.querySelector('table.kv tbody tr[data-key]').dataset.key === 'db.050'`)
	if got := e.rows(); !reflect.DeepEqual(got, append(want(50, 60), "legacy_DB_url")) {
		t.Fatalf("page 3 = %v, want db.050–db.059 and legacy_DB_url", got)
	}
	if !evalTo[bool](e, `document.querySelector('#kv-next').disabled`) {
		t.Error("Next is enabled on the last page")
	}
	if got := e.text(".pager-status"); !strings.Contains(got, "Page 3 of 3") || !strings.Contains(got, "51–61 of 61") {
		t.Errorf("pager reads %q, want page 3 of 3, keys 51–61 of 61", got)
	}
	if got := evalTo[string](e, `document.querySelector('.pager .pages button[aria-current=page]').textContent`); got != "3" {
		t.Errorf("current page button = %q, want 3", got)
	}
	e.click("#kv-prev")
	e.waitJS("back on page 2", `document.querySelector('table.kv tbody tr[data-key]').dataset.key === 'db.025'`)

	// Case kept: "DB" is only in legacy_DB_url.
	e.click("#kv-ci")
	e.typeInto("#kv-search", "DB")
	e.waitJS("the case-sensitive result", `document.querySelectorAll('table.kv tbody tr[data-key]').length === 1`)
	if got := e.rows(); !reflect.DeepEqual(got, []string{"legacy_DB_url"}) {
		t.Errorf("case-sensitive DB = %v, want legacy_DB_url", got)
	}
	if e.visible(".pager .pages") {
		t.Error("page numbers shown for a single page")
	}

	e.typeInto("#kv-search", "nothing")
	e.waitJS("the empty result", `!!document.querySelector('.tab-body .empty')`)
	if got := e.text(".tab-body .empty"); !strings.Contains(got, "nothing") {
		t.Errorf("empty result reads %q, want it to name the search", got)
	}
}

func TestKV_NarrowWindow_StacksRowsWithoutSideScroll(t *testing.T) {
	e := start(t, options{})
	e.seed("greeting", "Hello World", client.SetOptions{Type: storage.STRING, TTL: "P7D", Description: "A greeting shown on the home page"})
	e.seed("answer", "42", client.SetOptions{Type: storage.NUMBER})
	e.seed("a_rather_long_key_name.with.dots-and-dashes_0123456789", `{"a":1}`, client.SetOptions{Type: storage.JSON})
	e.do("narrow window", chromedp.EmulateViewport(390, 844))
	e.open("#/ns/" + ns + "/kv")
	e.waitJS("the rows", `document.querySelectorAll('table.kv tbody tr[data-key]').length === 3`)
	e.noHorizontalScroll()
	if got := evalTo[string](e, `getComputedStyle(document.querySelector('table.kv thead')).display`); got != "none" {
		t.Errorf("table header display = %q on a narrow window, want the stacked layout", got)
	}
	e.screenshot("narrow-list")
	e.openNewKV()
	e.fillKV(kvForm{key: "bad key", typ: "JSON", value: "{"})
	e.noHorizontalScroll()
}

func TestKV_DateAndDateTimePickers_StoreISOValuesInUTC(t *testing.T) {
	e := start(t, options{})
	// In Paris (UTC+2 in July) a local 08:10:33 is 06:10:33 UTC.
	e.do("Paris time", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Europe/Paris"})
		return err
	}))
	e.open("#/ns/" + ns + "/kv")
	setPicker := func(sel, v string) {
		e.eval(fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = %q; el.dispatchEvent(new Event('input', {bubbles: true})); })()`, sel, v))
	}

	e.openNewKV()
	e.fillKV(kvForm{key: "release_day", typ: "DATE"})
	e.everyControlLabelled()
	if !e.visible("#kv-date") || e.visible("#kv-value") {
		t.Fatal("DATE does not show a date picker in place of the text box")
	}
	setPicker("#kv-date", "2024-07-15")
	e.saveKV("release_day")
	if d := e.detail("release_day"); d.Type != "DATE" {
		t.Errorf("release_day type = %q, want DATE", d.Type)
	} else {
		jsonEqual(t, "release_day value", d.Value, `"2024-07-15"`)
	}

	e.openNewKV()
	e.fillKV(kvForm{key: "released_at", typ: "DATETIME"})
	setPicker("#kv-datetime", "2024-07-15T08:10:33")
	e.saveKV("released_at")
	if d := e.detail("released_at"); d.Type != "DATETIME" {
		t.Errorf("released_at type = %q, want DATETIME", d.Type)
	} else {
		jsonEqual(t, "released_at value", d.Value, `"2024-07-15T06:10:33Z"`)
	}
	// Editing shows it back in local time.
	e.click(`tr[data-key="released_at"] button[aria-label="Edit released_at"]`)
	e.waitJS("the edit dialog", `!!document.querySelector('dialog[open] #kv-datetime')`)
	if got := e.value("#kv-datetime"); got != "2024-07-15T08:10:33" {
		t.Errorf("datetime picker when editing = %q, want the local 2024-07-15T08:10:33", got)
	}
	e.do("press Escape", chromedp.KeyEvent(kb.Escape))
	e.waitJS("the dialog to close", `!document.querySelector('dialog[open]')`)

	e.openNewKV()
	e.fillKV(kvForm{key: "timeout", typ: "DURATION", value: "PT1H30M"})
	e.saveKV("timeout")
	jsonEqual(t, "timeout value", e.detail("timeout").Value, `"PT1H30M"`)
}
