// Package e2e drives the web UI in headless Chromium (chromedp) against a
// real kvflow server on a random loopback port, on SQLite + a local directory.
package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/internal/netguard"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	_ "github.com/kvflow/kvflow/tasks/all"
	"github.com/kvflow/kvflow/ui"
)

// chromium returns the browser to drive. A missing browser fails the test:
// `make test` installs it.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{os.Getenv("KVFLOW_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "Chromium was not found (looked for $KVFLOW_CHROMIUM, /usr/bin/chromium and chromium on PATH): run `apt-get install -y chromium`"
	t.Fatal(msg)
	return ""
}

// env is one test's server and browser tab.
type env struct {
	t      testing.TB
	URL    string // the server's base URL
	Client *client.Client
	Store  *storage.Store
	ctx    context.Context // the browser tab

	mu     sync.Mutex
	jsErrs []string
}

type options struct {
	token  string
	engine bool            // run flows
	store  storage.Options // the store's (Keys for sensitive entries)
	cfg    func(*api.Config, testpair.Pair)
}

// start serves a fresh store with the UI and opens a 1280×800 browser tab
// on it. At the end the test's last state is saved as a PNG under its
// artifact directory (go test -artifacts keeps it), and any uncaught
// JavaScript error fails the test.
func start(t testing.TB, o options) *env {
	t.Helper()
	exe := chromium(t)
	pair := testpair.Local(t, o.store)
	cfg := api.Config{Store: pair.Store, DB: pair.DB, UI: ui.Handler(), Token: o.token, SweepInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if o.engine {
		cfg.Engine = engine.New(engine.Options{Store: pair.Store, Bucket: pair.Bucket, Repo: pair.DB, FlushInterval: 50 * time.Millisecond,
			HTTPClient: netguard.Client(netguard.MustParse("127.0.0.1"))}) // the flows download from a local server
	}
	if o.cfg != nil {
		o.cfg(&cfg, pair)
	}
	srv := api.New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, l) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	e := &env{t: t, URL: "http://" + l.Addr().String(), Store: pair.Store}
	e.Client = client.NewClient(e.URL, o.token)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	e.ctx = ctx
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	err = chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			e.jsError((&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				e.jsError("console.error: " + strings.Join(parts, " "))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: this one runs while the tab is still open.
	t.Cleanup(func() {
		e.screenshot("last")
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, msg := range e.jsErrs {
			t.Errorf("JavaScript error in the page: %s", msg)
		}
	})
	return e
}

func (e *env) jsError(msg string) {
	e.mu.Lock()
	e.jsErrs = append(e.jsErrs, msg)
	e.mu.Unlock()
}

// do runs browser steps; on failure it saves a screenshot and fails the test.
func (e *env) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	run(e, what, chromedp.Steps(steps...))
}

// run runs one action and returns its value; on failure it saves a
// screenshot and fails the test.
func run[T any](e *env, what string, a chromedp.Action[T]) T {
	e.t.Helper()
	v, err := try(e, a)
	if err != nil {
		e.fail(what, err)
	}
	return v
}

// try runs one action, with the harness's time limit.
func try[T any](e *env, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// fail saves a screenshot and fails the test with the page's text.
func (e *env) fail(what string, err error) {
	e.t.Helper()
	e.screenshot("failed")
	e.t.Fatalf("%s: %v\npage text:\n%s", what, err, e.pageText())
}

// pageText is the visible text of the page, for failure messages.
func (e *env) pageText() string {
	ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	return s
}

// screenshot saves the viewport as name.png in the test's artifact directory.
func (e *env) screenshot(name string) string {
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		e.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(e.t.ArtifactDir(), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		e.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	e.t.Logf("screenshot: %s", p)
	return p
}

// open loads the UI at a hash route, e.g. "#/ns/company.team/kv".
func (e *env) open(route string) {
	e.t.Helper()
	e.do("open "+route, chromedp.Navigate(e.URL+"/ui/"+route), chromedp.WaitReady(chromedp.CSS("#main")))
}

// eval evaluates a JavaScript expression for its effect.
func (e *env) eval(js string) {
	e.t.Helper()
	run(e, "evaluate "+js, chromedp.Evaluate[any](js))
}

// evalTo evaluates a JavaScript expression and decodes its value.
func evalTo[T any](e *env, js string) T {
	e.t.Helper()
	return run(e, "evaluate "+js, chromedp.Evaluate[T](js))
}

// waitJS waits until a JavaScript expression is true.
func (e *env) waitJS(what, js string) {
	e.t.Helper()
	run(e, "wait for "+what, chromedp.Poll[any](js, chromedp.WithPollingTimeout(15*time.Second)))
}

// text returns the text of the first element matching sel, once visible.
func (e *env) text(sel string) string {
	e.t.Helper()
	e.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	return strings.TrimSpace(run(e, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// typeInto clears a field and types text into it, key by key. The keys go
// to the focused field (KeyEvent): chromedp's SendKeys reads the node's
// attributes while its event loop changes them (a field whose aria-invalid
// flips as the user types), a data race the race detector reports.
func (e *env) typeInto(sel, text string) {
	e.t.Helper()
	e.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	e.eval(fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = ''; el.dispatchEvent(new Event('input', {bubbles: true})); el.focus(); })()`, sel))
	e.do("type into "+sel, chromedp.KeyEvent(text))
}

// choose selects an option of a <select> as a user would, firing change.
func (e *env) choose(sel, value string) {
	e.t.Helper()
	e.eval(fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q;
		if (s.value !== %q) throw new Error('no option ' + %q);
		s.dispatchEvent(new Event('change', {bubbles: true})); })()`, sel, value, value, value))
}

// click clicks what sel matches once it is visible.
func (e *env) click(sel string) {
	e.t.Helper()
	for attempt := 0; ; attempt++ {
		_, err := try(e, chromedp.Steps(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel))))
		if err == nil {
			return
		}
		// A list drawn again between finding the element and clicking it
		// (after a save) leaves the found node detached: nothing was
		// clicked, so click the new one.
		if attempt == 4 || !staleNode(err) {
			e.fail("click "+sel, err)
		}
	}
}

// staleNode reports whether err is the browser's answer for a node removed
// from the page after it was found.
func staleNode(err error) bool {
	return strings.Contains(err.Error(), "Could not find node with given id") || strings.Contains(err.Error(), "Node is detached")
}

// value returns the current value of a form control.
func (e *env) value(sel string) string {
	e.t.Helper()
	return run(e, "value of "+sel, chromedp.Value(chromedp.CSS(sel)))
}

// visible reports whether sel matches an element that is rendered.
func (e *env) visible(sel string) bool {
	e.t.Helper()
	return evalTo[bool](e, fmt.Sprintf(`(() => { const el = document.querySelector(%q); return !!el && el.getClientRects().length > 0; })()`, sel))
}

// fieldError returns the error text shown under the control with the given id.
func (e *env) fieldError(id string) string {
	return e.text("#" + id + "-error")
}

// rows returns the keys listed in the KV table, in order.
func (e *env) rows() []string {
	e.t.Helper()
	return evalTo[[]string](e, `[...document.querySelectorAll('table.kv tbody tr[data-key]')].map(r => r.dataset.key)`)
}

// noHorizontalScroll fails the test when the page is wider than the window.
func (e *env) noHorizontalScroll() {
	e.t.Helper()
	if over := evalTo[int](e, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
		e.t.Errorf("the page is %dpx wider than the window", over)
	}
}

// everyControlLabelled fails the test for a visible form control without a
// label (a <label>, aria-label or aria-labelledby).
func (e *env) everyControlLabelled() {
	e.t.Helper()
	bare := evalTo[[]string](e, `[...document.querySelectorAll('input, select, textarea')]
		.filter(el => el.getClientRects().length > 0 && el.type !== 'hidden')
		.filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
		.map(el => el.outerHTML)`)
	for _, html := range bare {
		e.t.Errorf("form control without a label: %s", html)
	}
}
