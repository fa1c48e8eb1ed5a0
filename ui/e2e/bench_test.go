package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kvflow/kvflow/api"
	"github.com/kvflow/kvflow/internal/testpair"
)

// seedMany adds n listed keys key.000000… to ns straight into the SQLite
// metadata table, in one statement: the list and the UI read only metadata,
// and Store.Set takes about 12 ms a key here, so 100,000 keys would take
// twenty minutes. Their values do not exist; the benchmark never reads one.
func seedMany(tb testing.TB, pair testpair.Pair, n int) {
	tb.Helper()
	_, err := pair.DB.X.ExecContext(context.Background(), `
		WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?)
		INSERT INTO kv_entries (namespace, key, type, object, version, size, hash, description, created_at, updated_at)
		SELECT ?, printf('key.%06d', i), 'STRING', printf('bench/%06d', i), 1, 1, '', 'seeded', 0, 0 FROM seq`, n, ns)
	if err != nil {
		tb.Fatalf("seeding %d keys: %v", n, err)
	}
}

// untilFirstKey runs act in the page and returns the milliseconds until the
// KV table's first row is want, timed in the page with a MutationObserver.
const untilFirstKey = `(async () => {
  const first = () => (document.querySelector('table.kv tbody tr[data-key]') || {}).dataset?.key;
  const t0 = performance.now();
  (%s)();
  await new Promise((resolve) => {
    const mo = new MutationObserver(() => { if (first() === %q) { mo.disconnect(); resolve(); } });
    mo.observe(document.querySelector('.tab-body'), { childList: true, subtree: true });
  });
  return performance.now() - t0;
})()`

// timeInPage runs untilFirstKey and reports its time.
func timeInPage(e *env, act, want string) float64 {
	e.t.Helper()
	return run(e, "wait for "+want, chromedp.Evaluate[float64](fmt.Sprintf(untilFirstKey, act, want), chromedp.EvalAwaitPromise))
}

// BenchmarkKVTab_NextPage_100kKeys measures a click on Next in the KV Store
// tab of a namespace with 100,000 keys, 100 per page: the request with the
// cursor, the answer and the table drawn (ms/page, timed in the page).
func BenchmarkKVTab_NextPage_100kKeys(b *testing.B) {
	e := start(b, options{cfg: func(_ *api.Config, p testpair.Pair) { seedMany(b, p, 100_000) }})
	e.open("#/ns/" + ns + "/kv")
	e.waitJS("the first page", `document.querySelectorAll('table.kv tbody tr[data-key]').length === 50`)
	e.choose("#kv-limit", "100")
	e.waitJS("100 rows", `document.querySelectorAll('table.kv tbody tr[data-key]').length === 100`)
	var ms float64
	for i := 0; b.Loop(); i++ {
		page := i % 999 // 1,000 pages: Next works 999 times, then start again
		if page == 0 && i > 0 {
			e.choose("#kv-limit", "100")
			e.waitJS("page 1", `(document.querySelector('table.kv tbody tr[data-key]') || {}).dataset?.key === 'key.000000'`)
		}
		ms += timeInPage(e, `() => document.querySelector('.pager button:last-child').click()`, fmt.Sprintf("key.%06d", (page+1)*100))
	}
	b.ReportMetric(ms/float64(b.N), "ms/page")
}

// BenchmarkKVTab_PrefixSearch_100kKeys measures a prefix entered in the
// search box of a namespace with 100,000 keys until its first page shows
// (ms/search, timed in the page, the 250 ms typing debounce included).
func BenchmarkKVTab_PrefixSearch_100kKeys(b *testing.B) {
	e := start(b, options{cfg: func(_ *api.Config, p testpair.Pair) { seedMany(b, p, 100_000) }})
	e.open("#/ns/" + ns + "/kv")
	e.waitJS("the first page", `document.querySelectorAll('table.kv tbody tr[data-key]').length === 50`)
	var ms float64
	for i := 0; b.Loop(); i++ {
		prefix := fmt.Sprintf("key.%03d", (i*37+50)%100) // key.0NN: 1,000 keys each
		ms += timeInPage(e, fmt.Sprintf(`() => { const s = document.querySelector('#kv-search'); s.value = %q;
			s.dispatchEvent(new Event('input', { bubbles: true })); }`, prefix), prefix+"000")
	}
	b.ReportMetric(ms/float64(b.N), "ms/search")
}
