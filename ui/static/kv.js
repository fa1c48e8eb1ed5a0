// The KV Store tab: a paged table of keys and the New/Edit Key-Value dialog.
import { h, replace, field, setError, toast, modal, confirm, when, debounce } from './dom.js';
import { openHistory } from './history.js';
import { request, getJSON, getExact, plain, enc, ifMatch, ApiError } from './api.js';

export const TYPES = ['STRING', 'NUMBER', 'BOOLEAN', 'DATETIME', 'DATE', 'DURATION', 'JSON'];
export const MASK = '******';

// sensitiveBadge marks an entry whose value is encrypted and masked.
export const sensitiveBadge = (e) => (e.sensitive
  ? h('span', { class: 'badge sensitive', title: 'Sensitive: encrypted at rest, shown as ****** until revealed' }, 'sensitive') : null);
const KEY_RE = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;
const NUMBER_RE = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/;
// The durations kvflow reads: days, hours, minutes and seconds (no years, months or weeks).
const DURATION_RE = /^[-+]?P(?:[-+]?\d+D)?(?:T(?=[-+\d])(?:[-+]?\d+H)?(?:[-+]?\d+M)?(?:[-+]?\d+(?:[.,]\d{0,9})?S)?)?$/i;
const EXPIRATIONS = [['', 'Never'], ['PT1H', '1 hour'], ['P1D', '1 day'], ['P7D', '7 days'], ['P30D', '30 days'], ['P365D', '1 year'], ['custom', 'Custom duration…']];

export function checkKey(key) {
  if (key === '') return 'Enter a key.';
  if (key.length > 350) return `A key is at most 350 characters; this one has ${key.length}.`;
  if (!KEY_RE.test(key)) {
    return 'A key must start with a letter or a digit and contain only letters, digits, dots (.), underscores (_) and hyphens (-).';
  }
  return '';
}

export function checkDuration(s) {
  if (!DURATION_RE.test(s) || /^[-+]?PT?$/i.test(s)) return 'Enter an ISO-8601 duration such as PT30M, PT12H, P3D or P1DT6H.';
  return '';
}

// checkValue returns what is wrong with the text of a value of type t, or ''.
export function checkValue(t, text) {
  const s = text.trim();
  switch (t) {
    case 'NUMBER':
      return NUMBER_RE.test(s) ? '' : 'Enter a number such as 42, -7 or 123.45.';
    case 'DURATION':
      return s === '' ? 'Enter a duration such as PT5M.' : checkDuration(s);
    case 'DATE':
      return /^\d{4}-\d{2}-\d{2}$/.test(s) ? '' : 'Pick a date.';
    case 'DATETIME':
      return s && !isNaN(new Date(s).getTime()) ? '' : 'Pick a date and a time.';
    case 'JSON': {
      if (s === '') return 'Enter a JSON object or array.';
      let v;
      try { v = JSON.parse(s); } catch (e) { return `Invalid JSON: ${e.message}.`; }
      return v !== null && typeof v === 'object' ? '' : 'Enter a JSON object ({…}) or array ([…]).';
    }
  }
  return '';
}

// listKeys fetches one page of entries with the number of all that match.
async function listKeys(ns, { q, ci, limit, offset }) {
  const res = await request('GET', `/namespaces/${enc(ns)}/kv`, { query: { q, ci: q && ci ? 'true' : '', limit, offset, total: 'true' } });
  const entries = await res.json();
  return { entries, total: Number(res.headers.get('X-Total-Count') || entries.length) };
}

// matches reports whether key contains q (ignoring case when ci), as the API's q= does.
export const matches = (key, q, ci) => (ci ? key.toLowerCase().includes(q.toLowerCase()) : key.includes(q));

// pageNumbers returns the pages to offer around cur (0-based) among n: the
// first, the last and two either side, with null for each gap.
export function pageNumbers(cur, n) {
  const out = [];
  for (let p = 0; p < n; p++) {
    if (p === 0 || p === n - 1 || Math.abs(p - cur) <= 2) out.push(p);
    else if (out[out.length - 1] !== null) out.push(null);
  }
  return out;
}

// pager builds Previous, page numbers and Next; go(p) shows page p (0-based).
export function pager(idPrefix, go) {
  const prev = h('button', { type: 'button', id: `${idPrefix}-prev`, disabled: true }, '← Previous');
  const next = h('button', { type: 'button', id: `${idPrefix}-next`, disabled: true }, 'Next →');
  const pages = h('span', { class: 'pages' });
  const status = h('p', { class: 'muted pager-status', 'aria-live': 'polite' });
  const el = h('nav', { class: 'pager', 'aria-label': 'Pages', hidden: true }, prev, h('div', { class: 'pager-mid' }, pages, status), next);
  let cur = 0;
  prev.addEventListener('click', () => go(cur - 1));
  next.addEventListener('click', () => go(cur + 1));
  // update shows page (0-based) of count entries shown, total matching, limit a page.
  const update = (page, count, total, limit, what) => {
    cur = page;
    const n = Math.max(1, Math.ceil(total / limit));
    const first = page * limit + 1;
    status.textContent = count ? `Page ${page + 1} of ${n} · ${first}–${first + count - 1} of ${total} ${what}` : '';
    prev.disabled = page === 0;
    next.disabled = first + count - 1 >= total;
    replace(pages, pageNumbers(page, n).map((p) => (p === null ? h('span', { class: 'gap', 'aria-hidden': 'true' }, '…')
      : h('button', { type: 'button', class: 'page', 'aria-label': `Page ${p + 1}`, 'aria-current': p === page ? 'page' : null, onclick: () => go(p) }, String(p + 1)))));
    pages.hidden = n < 2;
    el.hidden = n < 2 && !count;
  };
  return { el, update };
}

export async function kvTab(body, ns, view) {
  const state = { q: '', ci: true, limit: 50, page: 0, total: 0, entries: [] };
  const search = h('input', { id: 'kv-search', type: 'search', autocomplete: 'off', spellcheck: 'false', placeholder: 'Part of a key' });
  const ci = h('input', { id: 'kv-ci', type: 'checkbox', checked: true });
  const limit = h('select', { id: 'kv-limit' }, [25, 50, 100, 200].map((n) => h('option', { value: n, selected: n === state.limit }, String(n))));
  const count = h('p', { id: 'kv-count', class: 'muted count' });
  const table = h('div', { class: 'table-wrap' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const pg = pager('kv', (p) => { state.page = p; load(); });
  const inherited = h('section', { id: 'kv-inherited', 'aria-labelledby': 'kv-inherited-title', hidden: !ns.includes('.') });
  const newBtn = h('button', { type: 'button', class: 'primary', id: 'kv-new', onclick: async () => {
    const key = await openKvForm(ns);
    if (key) load({ focus: key });
  } }, 'New Key-Value');
  const importInput = h('input', { type: 'file', accept: '.jsonl,.ndjson,application/x-ndjson,application/json', hidden: true, 'aria-label': 'File to import' });
  let seq = 0;
  let inheritedAll = [];

  // load shows the current page; focus names a key whose row gets the focus
  // (or, when it is gone, the table gets it).
  async function load({ focus } = {}) {
    const my = ++seq;
    let page;
    try {
      page = await listKeys(ns, { q: state.q, ci: state.ci, limit: state.limit, offset: state.page * state.limit });
      // A page emptied by a delete shows the one before it.
      if (!page.entries.length && state.page > 0 && page.total > 0) {
        state.page = Math.ceil(page.total / state.limit) - 1;
        page = await listKeys(ns, { q: state.q, ci: state.ci, limit: state.limit, offset: state.page * state.limit });
      }
    } catch (e) {
      if (my !== seq || !view.alive) return;
      error.textContent = e.message;
      error.hidden = false;
      if (e.status === 422) setError(search, e.message);
      return;
    }
    if (my !== seq || !view.alive) return;
    error.hidden = true;
    setError(search, '');
    state.entries = page.entries;
    state.total = page.total;
    renderRows(page.entries);
    count.textContent = state.q
      ? `${page.total} ${page.total === 1 ? 'key contains' : 'keys contain'} “${state.q}”${state.ci ? ' (any case)' : ''}`
      : `${page.total} ${page.total === 1 ? 'key' : 'keys'}`;
    pg.update(state.page, page.entries.length, page.total, state.limit, 'keys');
    renderInherited();
    if (focus !== undefined) {
      const btn = table.querySelector(`tr[data-key="${CSS.escape(focus || '')}"] button.key`);
      (btn || table.querySelector('table') || table).focus();
    }
  }

  function reset() {
    state.page = 0;
    load();
  }

  function renderRows(entries) {
    if (!entries.length) {
      replace(table, h('p', { class: 'empty', tabindex: -1 }, state.q
        ? `No key contains “${state.q}”.`
        : 'No keys in this namespace yet. Use “New Key-Value” to add one.'));
      return;
    }
    const tbody = h('tbody');
    for (const e of entries) tbody.append(...row(e));
    replace(table, h('table', { class: 'table kv', tabindex: -1 },
      h('caption', { class: 'sr-only' }, `Keys in ${ns}`),
      h('thead', null, h('tr', null, ['Key', 'Type', 'Description', 'Last update', 'Expiry', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody));
  }

  function row(e) {
    const detail = h('tr', { class: 'detail', hidden: true }, h('td', { colspan: 6 }));
    const toggle = h('button', { type: 'button', class: 'link key', 'aria-expanded': 'false', title: 'Show the value', onclick: () => showValue(ns, e, toggle, detail) }, e.key);
    const tr = h('tr', { 'data-key': e.key },
      h('th', { scope: 'row', 'data-label': 'Key' }, toggle, sensitiveBadge(e)),
      h('td', { 'data-label': 'Type' }, h('span', { class: 'type' }, e.type || '—')),
      h('td', { 'data-label': 'Description', class: 'desc' }, e.description || ''),
      h('td', { 'data-label': 'Last update' }, when(e.updateDate)),
      h('td', { 'data-label': 'Expiry' }, when(e.expirationDate, 'Never')),
      h('td', { class: 'actions-cell' },
        h('button', { type: 'button', 'aria-label': `History of ${e.key}`, onclick: async () => {
          if (await openHistory(ns, e.key)) load({ focus: e.key });
          else focusRow(e.key);
        } }, 'History'),
        h('button', { type: 'button', 'aria-label': `Edit ${e.key}`, onclick: () => edit(e) }, 'Edit'),
        h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${e.key}`, onclick: () => del(e) }, 'Delete')));
    return [tr, detail];
  }

  function focusRow(key) {
    const btn = table.querySelector(`tr[data-key="${CSS.escape(key)}"] button.key`);
    if (btn) btn.focus();
  }

  async function edit(e) {
    let cur;
    try {
      // The detail, masked: a sensitive value stays on the server until the form reveals it.
      cur = await getExact(`/namespaces/${enc(ns)}/kv/${enc(e.key)}/detail`);
    } catch (err) {
      toast(err.message, 'bad');
      if (err.status === 404 || err.status === 410) load({ focus: null });
      return;
    }
    const saved = await openKvForm(ns, cur);
    if (saved === RELOAD) return edit(e);
    if (saved) load({ focus: e.key });
    else focusRow(e.key);
  }

  async function del(e) {
    const yes = await confirm(`Delete ${e.key}?`, `The key “${e.key}” will be deleted from namespace ${ns}. Its history keeps the value, so Undo can bring it back.`);
    if (!yes) { focusRow(e.key); return; }
    let deleted;
    try {
      deleted = await (await request('DELETE', `/namespaces/${enc(ns)}/kv/${enc(e.key)}`)).json();
    } catch (err) {
      toast(err.message, 'bad');
      return;
    }
    toast(`Deleted ${e.key}.`, 'ok', deleted ? { label: 'Undo', run: () => undelete(e.key) } : null);
    // The focus goes to the next row (or the previous one at the end).
    const i = state.entries.findIndex((x) => x.key === e.key);
    const near = state.entries[i + 1] || state.entries[i - 1];
    load({ focus: near ? near.key : null });
  }

  // undelete restores the version a delete removed, unless the key was
  // written since (If-Match names the delete's tombstone).
  async function undelete(key) {
    const base = `/namespaces/${enc(ns)}/kv/${enc(key)}`;
    const again = `${key} was written again since the delete: nothing was restored.`;
    try {
      const [gone, was] = await getJSON(`${base}/versions`, { limit: 2 });
      if (gone.change !== 'DELETE' || !was || was.change !== 'SET') throw new Error(again);
      await request('POST', `${base}/restore`, { json: { version: was.version }, headers: ifMatch(gone.version) });
    } catch (err) {
      toast(err.status === 412 ? again : err.message, 'bad');
      return;
    }
    toast(`Restored ${key}.`);
    load({ focus: key });
  }

  async function loadInherited() {
    if (!ns.includes('.')) return;
    try {
      inheritedAll = await getJSON(`/namespaces/${enc(ns)}/kv/inheritance`, { shadowed: 'true' });
    } catch (e) {
      inheritedAll = e;
    }
    if (view.alive) renderInherited();
  }

  // renderInherited lists the parents' pairs that match the search, nearest
  // namespace first; a pair hidden by a nearer key of the same name is marked.
  function renderInherited() {
    if (!ns.includes('.')) return;
    const title = h('h2', { id: 'kv-inherited-title' }, 'Inherited from parent namespaces');
    if (inheritedAll instanceof Error) return replace(inherited, title, h('p', { class: 'error' }, inheritedAll.message));
    const rows = inheritedAll.filter((e) => !state.q || matches(e.key, state.q, state.ci));
    const shadowed = rows.filter((e) => e.shadowedBy).length;
    replace(inherited, title,
      h('p', { class: 'muted' }, `Flows in ${ns} read these with kv() when ${ns} has no key of the same name. `,
        rows.length ? `${rows.length} ${rows.length === 1 ? 'pair' : 'pairs'}${shadowed ? `, ${shadowed} shadowed` : ''}.` : ''),
      rows.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'table kv-inherited' },
        h('caption', { class: 'sr-only' }, `Keys ${ns} inherits`),
        h('thead', null, h('tr', null, ['Key', 'From', 'Type', 'Description', 'Last update', 'Status'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, rows.map((e) => h('tr', { 'data-key': e.key, 'data-ns': e.namespace, class: e.shadowedBy ? 'shadowed' : null },
          h('th', { scope: 'row', 'data-label': 'Key', class: 'key' }, e.key, sensitiveBadge(e)),
          h('td', { 'data-label': 'From' }, h('a', { href: `#/ns/${enc(e.namespace)}/kv` }, e.namespace)),
          h('td', { 'data-label': 'Type' }, h('span', { class: 'type' }, e.type || '—')),
          h('td', { 'data-label': 'Description', class: 'desc' }, e.description || ''),
          h('td', { 'data-label': 'Last update' }, when(e.updateDate)),
          h('td', { 'data-label': 'Status' }, e.shadowedBy
            ? h('span', { class: 'badge shadow', title: `${e.shadowedBy} has a key ${e.key}, which is the one read` }, `Shadowed by ${e.shadowedBy}`)
            : h('span', { class: 'badge' }, 'Inherited'))))))) 
        : h('p', { class: 'muted none' }, state.q ? `No inherited key contains “${state.q}”.` : 'The parent namespaces hold no keys.'));
  }

  async function exportAll() {
    let blob;
    try {
      const res = await request('GET', `/namespaces/${enc(ns)}/kv/export`);
      blob = await res.blob();
    } catch (e) {
      toast(e.message, 'bad');
      return;
    }
    const a = h('a', { href: URL.createObjectURL(blob), download: `${ns}.kv.jsonl` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    toast(`Exported ${ns}.`);
  }

  async function deleteAll() {
    const n = state.q ? null : state.total;
    const yes = await confirm(`Delete every key of ${ns}?`,
      `All ${n == null ? '' : n + ' '}keys of namespace ${ns} will be deleted (not those of its parents or children). Each key's history keeps its value: kvflow kv restore brings one back.`, 'Delete all keys');
    if (!yes) return;
    let deleted;
    try {
      deleted = await deleteAllKeys(ns);
    } catch (e) {
      toast(e.message, 'bad');
      load({ focus: null });
      return;
    }
    toast(deleted == null ? `Deleted every key of ${ns}.` : `Deleted ${deleted} ${deleted === 1 ? 'key' : 'keys'} from ${ns}.`);
    state.page = 0;
    load({ focus: null });
  }

  importInput.addEventListener('change', async () => {
    const file = importInput.files[0];
    importInput.value = '';
    if (!file) return;
    // A failed import keeps the lines before the bad one: show them at once.
    const res = await openImport(ns, file, () => load());
    if (res) load({ focus: null });
  });

  search.addEventListener('input', debounce(() => {
    const q = search.value.trim();
    if (q === state.q) return;
    state.q = q;
    reset();
  }, 250));
  ci.addEventListener('change', () => { state.ci = ci.checked; if (state.q) reset(); });
  limit.addEventListener('change', () => { state.limit = Number(limit.value); reset(); });

  replace(body,
    h('div', { class: 'section-head' }, h('h2', null, 'KV Store'),
      h('div', { class: 'head-actions' },
        h('button', { type: 'button', id: 'kv-export', onclick: exportAll }, 'Export'),
        h('button', { type: 'button', id: 'kv-import', onclick: () => importInput.click() }, 'Import…'), importInput,
        h('button', { type: 'button', id: 'kv-delete-all', class: 'danger', onclick: deleteAll }, 'Delete all keys'),
        newBtn)),
    h('div', { class: 'toolbar' },
      field('Search keys', search, 'Matches anywhere in the key.'),
      h('div', { class: 'field compact' }, ci, h('label', { for: 'kv-ci' }, 'Ignore case')),
      h('div', { class: 'field compact' }, h('label', { for: 'kv-limit' }, 'Per page'), limit)),
    count, error, table, pg.el, inherited);
  loadInherited();
  await load();
}

// deleteAllKeys deletes every key of ns and returns how many went (null when
// the server does not say):
// DELETE ?all=true where the server has it, else the listed keys in batches.
async function deleteAllKeys(ns) {
  const path = `/namespaces/${enc(ns)}/kv`;
  try {
    const res = await request('DELETE', path, { query: { all: 'true' } });
    const body = await res.json().catch(() => null);
    if (body && typeof body.deleted === 'number') return body.deleted;
    if (body && Array.isArray(body.keys)) return body.keys.length;
    return null; // done, count not given
  } catch (e) {
    if (e.status !== 422 && e.status !== 400) throw e; // a server without ?all=true asks for a body
  }
  const keys = (await getJSON(path)).map((e) => e.key);
  let n = 0;
  for (let i = 0; i < keys.length; i += 1000) {
    const res = await request('DELETE', path, { json: { keys: keys.slice(i, i + 1000) } });
    n += (await res.json()).keys.length;
  }
  return n;
}

// importCounts says what an import wrote: "3 written, 1 skipped".
const importCounts = (res) => `${res.written ?? 0} written, ${res.skipped ?? 0} skipped${res.expired ? `, ${res.expired} expired` : ''}`;

// openImport asks how to treat existing keys, then imports file; it
// resolves with the server's counts, or undefined when cancelled. A failed
// import shows the counts of the lines it wrote before stopping, and calls
// written when there are some.
function openImport(ns, file, written) {
  return modal((close) => {
    const mode = h('select', { id: 'kv-import-mode' },
      h('option', { value: 'skip' }, 'Keep the existing value (skip)'),
      h('option', { value: 'overwrite' }, 'Replace it (overwrite)'),
      h('option', { value: 'fail' }, 'Stop the import (fail)'));
    const err = h('p', { class: 'error', role: 'alert', hidden: true });
    const go = h('button', { type: 'submit', class: 'primary' }, 'Import');
    const form = h('form', { class: 'import-form' },
      h('h2', { id: 'kv-import-title' }, `Import into ${ns}`),
      h('p', null, 'File ', h('strong', null, file.name), ` (${file.size} bytes), JSON Lines as Export writes them.`),
      err,
      field('When a key already exists', mode),
      h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => close() }, 'Cancel'), go));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      go.disabled = true;
      err.hidden = true;
      let res;
      try {
        res = await (await request('POST', `/namespaces/${enc(ns)}/kv/import`, { query: { onConflict: mode.value }, headers: { 'Content-Type': 'application/x-ndjson' }, body: file })).json();
      } catch (e) {
        go.disabled = false;
        const sofar = e.body && typeof e.body.written === 'number' ? e.body : null;
        err.textContent = sofar ? `${e.message} Before it stopped: ${importCounts(sofar)}.` : e.message;
        err.hidden = false;
        if (sofar && sofar.written) written();
        return;
      }
      toast(`Imported into ${ns}: ${importCounts(res)}.`);
      close(res);
    });
    queueMicrotask(() => mode.focus());
    return form;
  }, 'kv-import-title');
}

async function showValue(ns, e, toggle, detail) {
  const open = toggle.getAttribute('aria-expanded') === 'true';
  toggle.setAttribute('aria-expanded', String(!open));
  detail.hidden = open;
  const cell = detail.firstChild;
  if (open) {
    if (e.sensitive) replace(cell); // a revealed value leaves the page with its row
    return;
  }
  if (e.sensitive) {
    replace(cell, maskedValue(ns, e));
    return;
  }
  replace(cell, h('span', { class: 'muted' }, 'Loading value…'));
  try {
    const v = await getExact(`/namespaces/${enc(ns)}/kv/${enc(e.key)}`);
    replace(cell, h('div', { class: 'value-view' }, h('span', { class: 'type' }, v.type), h('pre', { class: 'value', tabindex: 0, 'aria-label': `Value of ${e.key}` }, shownText(v))));
  } catch (err) {
    replace(cell, h('p', { class: 'error' }, err.message));
  }
}

const shownText = (v) => (v.type === 'JSON' ? JSON.stringify(v.value, null, 2) : plain(v.value));

// maskedValue shows a sensitive value as ****** with a Reveal button that
// fetches it; Hide drops it from the page again.
function maskedValue(ns, e) {
  const pre = h('pre', { class: 'value masked', tabindex: 0, 'aria-label': `Value of ${e.key} (hidden)` }, MASK);
  const err = h('p', { class: 'error', role: 'alert', hidden: true });
  const btn = h('button', { type: 'button', class: 'reveal', 'aria-label': `Reveal the value of ${e.key}`, onclick: async () => {
    err.hidden = true;
    if (btn.textContent === 'Hide') {
      replace(pre, MASK);
      pre.classList.add('masked');
      pre.setAttribute('aria-label', `Value of ${e.key} (hidden)`);
      btn.textContent = 'Reveal';
      btn.setAttribute('aria-label', `Reveal the value of ${e.key}`);
      return;
    }
    btn.disabled = true;
    try {
      const v = await getExact(`/namespaces/${enc(ns)}/kv/${enc(e.key)}`);
      replace(pre, shownText(v));
      pre.classList.remove('masked');
      pre.setAttribute('aria-label', `Value of ${e.key}`);
      btn.textContent = 'Hide';
      btn.setAttribute('aria-label', `Hide the value of ${e.key}`);
    } catch (x) {
      err.textContent = x.message;
      err.hidden = false;
    }
    btn.disabled = false;
    btn.focus();
  } }, 'Reveal');
  return [h('div', { class: 'value-view' }, h('span', { class: 'type' }, e.type), pre, btn), err];
}

// localInput turns an ISO instant into a datetime-local input's value.
function localInput(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// RELOAD is what the Edit dialog resolves with when the user asks to start
// again from the key as it now is.
const RELOAD = Symbol('reload');

// openKvForm opens the New/Edit Key-Value dialog; it resolves with the key once saved.
// entry, the key's detail (GET …/detail, a sensitive value masked), is given
// when editing. A sensitive value is not in the form until Reveal; left
// untouched, it is kept. An edit saves only over the version it opened
// (If-Match); when the key changed meanwhile the form says so and offers to
// overwrite it anyway or to reload.
export function openKvForm(ns, entry) {
  const editing = !!entry;
  return modal((close) => {
    const key = h('input', { id: 'kv-key', name: 'key', autocomplete: 'off', spellcheck: 'false', required: true, value: editing ? entry.key : '', readonly: editing });
    const type = h('select', { id: 'kv-type', name: 'type' }, TYPES.map((t) => h('option', { value: t }, t)));
    const text = h('textarea', { id: 'kv-value', name: 'value', rows: 6, spellcheck: 'false' });
    const bool = h('input', { id: 'kv-bool', name: 'bool', type: 'checkbox', role: 'switch' });
    const boolText = h('span', { class: 'switch-text', 'aria-hidden': 'true' }, 'false');
    const date = h('input', { id: 'kv-date', name: 'date', type: 'date' });
    const datetime = h('input', { id: 'kv-datetime', name: 'datetime', type: 'datetime-local', step: 1 });
    const desc = h('input', { id: 'kv-description', name: 'description', autocomplete: 'off', maxlength: 1000 });
    const ttl = h('select', { id: 'kv-ttl', name: 'ttl' });
    const custom = h('input', { id: 'kv-ttl-custom', name: 'ttlCustom', autocomplete: 'off', spellcheck: 'false', placeholder: 'P2DT12H' });
    const sensitive = h('input', { id: 'kv-sensitive', name: 'sensitive', type: 'checkbox', checked: editing && !!entry.sensitive, 'aria-describedby': 'kv-sensitive-hint' });
    const formError = h('p', { class: 'error', role: 'alert', hidden: true });
    const conflict = h('div', { class: 'error conflict', role: 'alert', hidden: true });
    // hiddenValue: editing a sensitive entry whose value has not been revealed.
    let hiddenValue = editing && entry.sensitive && entry.value === MASK;
    // cond guards the save: the version the form opened, or after a conflict the one found.
    let cond = editing ? ifMatch(entry.version) : {};
    let boolTouched = false;

    const keepLeft = editing && entry.expirationDate ? Math.round((new Date(entry.expirationDate) - Date.now()) / 1000) : 0;
    if (keepLeft > 0) ttl.append(h('option', { value: 'keep' }, `Keep current expiry (${when(entry.expirationDate).firstChild.textContent})`));
    for (const [v, label] of EXPIRATIONS) ttl.append(h('option', { value: v }, label));

    const textField = field('Value', text);
    const boolField = h('div', { class: 'field' },
      h('span', { class: 'label', id: 'kv-bool-label' }, 'Value'),
      h('label', { class: 'switch', for: 'kv-bool' }, bool, h('span', { class: 'slider', 'aria-hidden': 'true' }), boolText, h('span', { class: 'sr-only' }, 'Value: true when on')));
    const dateField = field('Value (date)', date);
    const datetimeField = field('Value (date and time, your local time)', datetime, 'Saved as a UTC instant.');
    const customField = field('Custom duration', custom, 'ISO-8601, for example PT30M, PT12H, P3D or P1DT6H.');

    bool.addEventListener('change', () => { boolText.textContent = String(bool.checked); boolTouched = true; });

    const revealBtn = h('button', { type: 'button', id: 'kv-reveal', 'aria-describedby': 'kv-hidden-note' }, 'Reveal current value');
    const hiddenNote = h('div', { class: 'hidden-value', hidden: !hiddenValue },
      h('p', { class: 'hint', id: 'kv-hidden-note' }, `The current value is hidden (${MASK}). Enter a new one, or leave it empty to keep it.`), revealBtn);
    // keepsValue: the user neither revealed nor entered a value, so the current one is kept.
    const keepsValue = () => hiddenValue && (widgetFor(type.value) === bool ? !boolTouched : widgetFor(type.value).value === '');
    revealBtn.addEventListener('click', async () => {
      revealBtn.disabled = true;
      let v;
      try {
        v = await getExact(`/namespaces/${enc(ns)}/kv/${enc(entry.key)}`);
      } catch (e) {
        revealBtn.disabled = false;
        formError.textContent = e.message;
        formError.hidden = false;
        return;
      }
      hiddenValue = false;
      hiddenNote.hidden = true;
      type.value = v.type;
      fill(v.value);
      sync();
      widgetFor(type.value).focus();
    });

    // Each type keeps its own widget, so switching types loses nothing.
    const widgetFor = (t) => (t === 'BOOLEAN' ? bool : t === 'DATE' ? date : t === 'DATETIME' ? datetime : text);
    const sync = () => {
      const t = type.value;
      textField.hidden = ['BOOLEAN', 'DATE', 'DATETIME'].includes(t);
      boolField.hidden = t !== 'BOOLEAN';
      dateField.hidden = t !== 'DATE';
      datetimeField.hidden = t !== 'DATETIME';
      text.rows = t === 'JSON' || t === 'STRING' ? 6 : 2;
      text.placeholder = hiddenValue ? `${MASK} (hidden: leave empty to keep it)` : { NUMBER: '42', DURATION: 'PT5M', JSON: '{"name": "John Doe"}' }[t] || '';
      customField.hidden = ttl.value !== 'custom';
      checkValueNow(false);
    };
    const valueText = () => {
      switch (type.value) {
        case 'BOOLEAN': return String(bool.checked);
        case 'DATE': return date.value;
        case 'DATETIME': return datetime.value ? new Date(datetime.value).toISOString().replace('.000Z', 'Z') : '';
        case 'STRING': return text.value;
        case 'JSON': return text.value;
        default: return text.value.trim();
      }
    };
    // checkValueNow shows a value problem; quiet skips empty values the user has not typed yet.
    const checkValueNow = (loud = true) => {
      for (const w of [text, date, datetime]) if (w !== widgetFor(type.value)) setError(w, '');
      const w = widgetFor(type.value);
      if (w === bool || keepsValue()) { setError(w, ''); return ''; }
      const msg = checkValue(type.value, w === datetime ? datetime.value : w.value);
      setError(w, !loud && w.value === '' ? '' : msg);
      return msg;
    };
    const checkKeyNow = (loud = true) => {
      const msg = checkKey(key.value);
      setError(key, !loud && key.value === '' ? '' : msg);
      return msg;
    };
    const checkTtlNow = (loud = true) => {
      if (ttl.value !== 'custom') { setError(custom, ''); return ''; }
      const msg = custom.value.trim() === '' ? (loud ? 'Enter a duration, or choose one from the list.' : '') : checkDuration(custom.value.trim());
      setError(custom, msg);
      return msg;
    };

    key.addEventListener('input', () => checkKeyNow(false));
    text.addEventListener('input', () => checkValueNow(false));
    date.addEventListener('input', () => checkValueNow(false));
    datetime.addEventListener('input', () => checkValueNow(false));
    type.addEventListener('change', sync);
    ttl.addEventListener('change', () => { sync(); if (ttl.value === 'custom') custom.focus(); });
    custom.addEventListener('input', () => checkTtlNow(false));

    // fill puts a value of the selected type in its widget.
    const fill = (v) => {
      if (type.value === 'BOOLEAN') { bool.checked = v === true; boolText.textContent = String(bool.checked); }
      else if (type.value === 'DATE') date.value = v;
      else if (type.value === 'DATETIME') datetime.value = localInput(v);
      else text.value = type.value === 'JSON' ? JSON.stringify(v, null, 2) : plain(v);
    };
    if (editing) {
      type.value = entry.type || 'STRING';
      desc.value = entry.description || '';
      if (!hiddenValue) fill(entry.value);
      ttl.value = keepLeft > 0 ? 'keep' : '';
    }

    // fieldFor picks the control an API error is about, from its status and its first word.
    const fieldFor = (e) => {
      const m = e.message;
      if (e.status === 409 || /^key\b/i.test(m)) return editing ? null : key;
      if (/^(ttl|expiration date)\b/i.test(m)) return ttl.value === 'custom' ? custom : ttl;
      if (/^description\b/i.test(m)) return desc;
      if (e.status === 413 || /^(value|type)\b/i.test(m)) return widgetFor(type.value);
      return null;
    };

    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const form = h('form', { class: 'kv-form', novalidate: true },
      h('h2', { id: 'kv-form-title' }, editing ? `Edit ${entry.key}` : 'New Key-Value'),
      h('p', { class: 'muted' }, 'Namespace ', h('strong', null, ns)),
      formError, conflict,
      field('Key', key, editing ? 'The key cannot be changed.' : 'Letters, digits, dots, underscores and hyphens, starting with a letter or a digit.'),
      field('Type', type),
      hiddenNote, textField, boolField, dateField, datetimeField,
      h('div', { class: 'field compact check' }, sensitive, h('label', { for: 'kv-sensitive' }, 'Sensitive')),
      h('p', { class: 'hint check-hint', id: 'kv-sensitive-hint' }, `Encrypted at rest and shown as ${MASK} in lists, logs and outputs until revealed.`),
      field('Description', desc),
      field('Expiration', ttl),
      customField,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => close(false) }, 'Cancel'),
        save));

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      formError.hidden = true;
      conflict.hidden = true;
      const problems = [checkKeyNow() && key, checkValueNow() && widgetFor(type.value), checkTtlNow() && custom].filter(Boolean);
      if (problems.length) { problems[0].focus(); return; }
      const headers = { 'Content-Type': 'text/plain; charset=utf-8', 'kv-type': type.value, ...cond };
      const query = editing ? {} : { overwrite: 'false' };
      const ttlValue = ttl.value === 'custom' ? custom.value.trim() : ttl.value;
      // A kept expiry goes as the instant it is, so the edit does not move it.
      if (ttlValue === 'keep') headers.expirationDate = entry.expirationDate;
      else if (ttlValue) headers.ttl = ttlValue;
      if (sensitive.checked) headers.sensitive = 'true'; // a write without it stores a plain version
      // A header carries only ASCII safely; other descriptions go as a query parameter.
      if (/^[\x20-\x7e]*$/.test(desc.value)) headers.description = desc.value;
      else query.description = desc.value;
      save.disabled = true;
      try {
        // A hidden value left as it was is read at the last moment, never shown.
        const body = keepsValue() ? await keptBody(`/namespaces/${enc(ns)}/kv/${enc(entry.key)}`) : valueText();
        await request('PUT', `/namespaces/${enc(ns)}/kv/${enc(key.value)}`, { headers, query, body });
      } catch (e) {
        save.disabled = false;
        if (e.status === 412) return showConflict(e.body && e.body.version);
        const f = e instanceof ApiError ? fieldFor(e) : null;
        if (f) { setError(f, e.message); f.focus(); } else { formError.textContent = e.message; formError.hidden = false; }
        return;
      }
      toast(`Saved ${key.value}.`);
      close(key.value);
    });

    // showConflict says the key moved from the version the save expected to
    // now (null: deleted), and offers to write over it or start again.
    let seen = entry?.version;
    function showConflict(now) {
      const overwrite = h('button', { type: 'button', id: 'kv-overwrite', onclick: () => {
        cond = now == null ? { 'If-None-Match': '*' } : ifMatch(now);
        seen = now;
        form.requestSubmit(save);
      } }, 'Overwrite anyway');
      replace(conflict,
        h('p', null, now == null ? `“${entry.key}” was deleted while this form was open (it was at version ${seen}).`
          : `“${entry.key}” changed while this form was open: version ${seen} → ${now}. Saving now would overwrite that change.`),
        h('div', { class: 'actions' },
          h('button', { type: 'button', id: 'kv-reload', onclick: () => close(RELOAD) }, 'Reload'), overwrite));
      conflict.hidden = false;
      overwrite.focus();
    }

    sync();
    queueMicrotask(() => (hiddenValue ? revealBtn : editing ? widgetFor(type.value) : key).focus());
    return form;
  }, 'kv-form-title');
}

// keptBody reads a value as the body of a PUT that keeps it, digit for digit.
async function keptBody(path) {
  const v = await getExact(path);
  return v.type === 'JSON' ? JSON.stringify(v.value) : plain(v.value);
}

// globalKvPage lists pairs across every namespace the server lets this UI
// reach, with a namespace filter (that namespace and those below it).
export async function globalKvPage(main, view) {
  document.title = 'KV Store · kvflow';
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const state = { ns: params.get('namespace') || '', q: '', ci: true, limit: 50, page: 0 };
  const nsSel = h('select', { id: 'gkv-ns' }, h('option', { value: '' }, 'All namespaces'));
  const search = h('input', { id: 'gkv-search', type: 'search', autocomplete: 'off', spellcheck: 'false', placeholder: 'Part of a key' });
  const ci = h('input', { id: 'gkv-ci', type: 'checkbox', checked: true });
  const limit = h('select', { id: 'gkv-limit' }, [25, 50, 100, 200].map((n) => h('option', { value: n, selected: n === state.limit }, String(n))));
  const count = h('p', { id: 'gkv-count', class: 'muted count' });
  const table = h('div', { class: 'table-wrap' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const pg = pager('gkv', (p) => { state.page = p; load(); });
  let seq = 0;

  async function load() {
    const my = ++seq;
    let entries;
    let total;
    try {
      const res = await request('GET', '/kv', { query: { namespace: state.ns, q: state.q, ci: state.q && state.ci ? 'true' : '', limit: state.limit, offset: state.page * state.limit } });
      entries = await res.json();
      total = Number(res.headers.get('X-Total-Count') || entries.length);
    } catch (e) {
      if (my !== seq || !view.alive) return;
      error.textContent = e.message;
      error.hidden = false;
      return;
    }
    if (my !== seq || !view.alive) return;
    error.hidden = true;
    const where = state.ns ? ` in ${state.ns} and below` : '';
    count.textContent = state.q ? `${total} ${total === 1 ? 'key contains' : 'keys contain'} “${state.q}”${where}` : `${total} ${total === 1 ? 'key' : 'keys'}${where}`;
    pg.update(state.page, entries.length, total, state.limit, 'keys');
    if (!entries.length) {
      replace(table, h('p', { class: 'empty' }, state.q ? `No key contains “${state.q}”${where}.` : `No keys${where}.`));
      return;
    }
    const tbody = h('tbody');
    for (const e of entries) {
      const detail = h('tr', { class: 'detail', hidden: true }, h('td', { colspan: 6 }));
      const toggle = h('button', { type: 'button', class: 'link key', 'aria-expanded': 'false', title: 'Show the value', onclick: () => showValue(e.namespace, e, toggle, detail) }, e.key);
      tbody.append(h('tr', { 'data-key': e.key, 'data-ns': e.namespace },
        h('td', { 'data-label': 'Namespace' }, h('a', { href: `#/ns/${enc(e.namespace)}/kv` }, e.namespace)),
        h('th', { scope: 'row', 'data-label': 'Key' }, toggle, sensitiveBadge(e)),
        h('td', { 'data-label': 'Type' }, h('span', { class: 'type' }, e.type || '—')),
        h('td', { 'data-label': 'Description', class: 'desc' }, e.description || ''),
        h('td', { 'data-label': 'Last update' }, when(e.updateDate)),
        h('td', { 'data-label': 'Expiry' }, when(e.expirationDate, 'Never'))), detail);
    }
    replace(table, h('table', { class: 'table kv-global' },
      h('caption', { class: 'sr-only' }, 'Keys across namespaces'),
      h('thead', null, h('tr', null, ['Namespace', 'Key', 'Type', 'Description', 'Last update', 'Expiry'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody));
  }
  const reset = () => { state.page = 0; load(); };
  nsSel.addEventListener('change', () => {
    state.ns = nsSel.value;
    history.replaceState(null, '', state.ns ? `#/kv?namespace=${enc(state.ns)}` : '#/kv');
    reset();
  });
  search.addEventListener('input', debounce(() => { const q = search.value.trim(); if (q !== state.q) { state.q = q; reset(); } }, 250));
  ci.addEventListener('change', () => { state.ci = ci.checked; if (state.q) reset(); });
  limit.addEventListener('change', () => { state.limit = Number(limit.value); reset(); });

  replace(main,
    h('div', { class: 'page-head' }, h('h1', null, 'KV Store')),
    h('p', { class: 'muted' }, 'Key-value pairs of every namespace you may reach.'),
    h('div', { class: 'toolbar' },
      h('div', { class: 'field' }, h('label', { for: 'gkv-ns' }, 'Namespace'), nsSel),
      field('Search keys', search, 'Matches anywhere in the key.'),
      h('div', { class: 'field compact' }, ci, h('label', { for: 'gkv-ci' }, 'Ignore case')),
      h('div', { class: 'field compact' }, h('label', { for: 'gkv-limit' }, 'Per page'), limit)),
    count, error, table, pg.el);
  const nss = await getJSON('/namespaces').catch(() => []);
  if (!view.alive) return;
  const ids = nss.map((n) => n.id);
  if (state.ns && !ids.includes(state.ns)) ids.push(state.ns);
  for (const [id, { depth }] of namespaceTree(ids)) nsSel.append(h('option', { value: id }, '\u00a0\u00a0'.repeat(depth) + id));
  nsSel.value = state.ns;
  await load();
}

// namespaceTree maps each of ids (parents before their children, as the API
// lists them) to its nearest listed ancestor ('' for none) and its depth
// under it. A parent the API left out (outside the server's allow-list) is
// skipped, never added.
export function namespaceTree(ids) {
  const tree = new Map();
  for (const id of ids) {
    let p = id;
    do p = p.slice(0, Math.max(0, p.lastIndexOf('.'))); while (p && !tree.has(p));
    tree.set(id, { parent: p, depth: p ? tree.get(p).depth + 1 : 0 });
  }
  return tree;
}
