// The KV Store tab: a paged table of keys and the New/Edit Key-Value dialog.
import { h, replace, field, setError, toast, modal, confirm, when, debounce } from './dom.js';
import { request, getJSON, enc, ApiError } from './api.js';

export const TYPES = ['STRING', 'NUMBER', 'BOOLEAN', 'DATETIME', 'DATE', 'DURATION', 'JSON'];
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

// listKeys fetches one page of entries; next is the cursor of the following page or ''.
async function listKeys(ns, { prefix, limit, cursor }) {
  const res = await request('GET', `/namespaces/${enc(ns)}/kv`, { query: { prefix, limit, cursor } });
  const entries = await res.json();
  return { entries, next: res.headers.get('X-Next-Cursor') || '' };
}

export async function kvTab(body, ns, view) {
  const state = { prefix: '', limit: 50, cursors: [''], page: 0, next: '' };
  const search = h('input', { id: 'kv-search', type: 'search', autocomplete: 'off', spellcheck: 'false', placeholder: 'Key prefix' });
  const limit = h('select', { id: 'kv-limit' }, [25, 50, 100, 200].map((n) => h('option', { value: n, selected: n === state.limit }, String(n))));
  const table = h('div', { class: 'table-wrap' });
  const status = h('p', { class: 'muted pager-status', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', disabled: true, onclick: () => go(state.page - 1) }, '← Previous');
  const next = h('button', { type: 'button', disabled: true, onclick: () => go(state.page + 1) }, 'Next →');
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const pager = h('div', { class: 'pager', hidden: true }, prev, status, next);
  const newBtn = h('button', { type: 'button', class: 'primary', onclick: async () => { if (await openKvForm(ns)) load(); } }, 'New Key-Value');
  let seq = 0;

  async function load() {
    const my = ++seq;
    let page;
    try {
      page = await listKeys(ns, { prefix: state.prefix, limit: state.limit, cursor: state.cursors[state.page] });
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
    state.next = page.next;
    renderRows(page.entries);
    const first = state.page * state.limit + 1;
    status.textContent = page.entries.length
      ? `Page ${state.page + 1} · keys ${first}–${first + page.entries.length - 1}${state.prefix ? ` starting with “${state.prefix}”` : ''}`
      : '';
    prev.disabled = state.page === 0;
    next.disabled = !state.next;
    pager.hidden = prev.disabled && next.disabled;
  }

  function go(p) {
    if (p > state.page) state.cursors[p] = state.next;
    state.page = p;
    load();
  }

  function reset() {
    state.cursors = [''];
    state.page = 0;
    load();
  }

  function renderRows(entries) {
    if (!entries.length) {
      replace(table, h('p', { class: 'empty' }, state.prefix
        ? `No key starts with “${state.prefix}”.`
        : 'No keys in this namespace yet. Use “New Key-Value” to add one.'));
      return;
    }
    const tbody = h('tbody');
    for (const e of entries) tbody.append(...row(e));
    replace(table, h('table', { class: 'table kv' },
      h('caption', { class: 'sr-only' }, `Keys in ${ns}`),
      h('thead', null, h('tr', null, ['Key', 'Type', 'Description', 'Last update', 'Expiry', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody));
  }

  function row(e) {
    const detail = h('tr', { class: 'detail', hidden: true }, h('td', { colspan: 6 }));
    const toggle = h('button', { type: 'button', class: 'link key', 'aria-expanded': 'false', title: 'Show the value', onclick: () => showValue(ns, e, toggle, detail) }, e.key);
    const tr = h('tr', { 'data-key': e.key },
      h('th', { scope: 'row', 'data-label': 'Key' }, toggle),
      h('td', { 'data-label': 'Type' }, h('span', { class: 'type' }, e.type || '—')),
      h('td', { 'data-label': 'Description', class: 'desc' }, e.description || ''),
      h('td', { 'data-label': 'Last update' }, when(e.updateDate)),
      h('td', { 'data-label': 'Expiry' }, when(e.expirationDate, 'Never')),
      h('td', { class: 'actions-cell' },
        h('button', { type: 'button', 'aria-label': `Edit ${e.key}`, onclick: () => edit(e) }, 'Edit'),
        h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${e.key}`, onclick: () => del(e) }, 'Delete')));
    return [tr, detail];
  }

  async function edit(e) {
    let cur;
    try {
      cur = await getJSON(`/namespaces/${enc(ns)}/kv/${enc(e.key)}`);
    } catch (err) {
      toast(err.message, 'bad');
      if (err.status === 404 || err.status === 410) load();
      return;
    }
    if (await openKvForm(ns, e, cur)) load();
  }

  async function del(e) {
    const yes = await confirm(`Delete ${e.key}?`, `The key “${e.key}” and its value will be deleted from namespace ${ns}. This cannot be undone.`);
    if (!yes) return;
    try {
      await request('DELETE', `/namespaces/${enc(ns)}/kv/${enc(e.key)}`);
    } catch (err) {
      toast(err.message, 'bad');
      return;
    }
    toast(`Deleted ${e.key}.`);
    load();
  }

  search.addEventListener('input', debounce(() => {
    const p = search.value.trim();
    if (p === state.prefix) return;
    state.prefix = p;
    reset();
  }, 250));
  limit.addEventListener('change', () => { state.limit = Number(limit.value); reset(); });

  replace(body,
    h('div', { class: 'section-head' }, h('h2', null, 'KV Store'), newBtn),
    h('div', { class: 'toolbar' },
      field('Search by key prefix', search),
      h('div', { class: 'field compact' }, h('label', { for: 'kv-limit' }, 'Per page'), limit)),
    error, table, pager);
  await load();
}

async function showValue(ns, e, toggle, detail) {
  const open = toggle.getAttribute('aria-expanded') === 'true';
  toggle.setAttribute('aria-expanded', String(!open));
  detail.hidden = open;
  if (open) return;
  const cell = detail.firstChild;
  replace(cell, h('span', { class: 'muted' }, 'Loading value…'));
  try {
    const v = await getJSON(`/namespaces/${enc(ns)}/kv/${enc(e.key)}`);
    const text = v.type === 'JSON' ? JSON.stringify(v.value, null, 2) : String(v.value);
    replace(cell, h('div', { class: 'value-view' }, h('span', { class: 'type' }, v.type), h('pre', { class: 'value', tabindex: 0, 'aria-label': `Value of ${e.key}` }, text)));
  } catch (err) {
    replace(cell, h('p', { class: 'error' }, err.message));
  }
}

// localInput turns an ISO instant into a datetime-local input's value.
function localInput(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// openKvForm opens the New/Edit Key-Value dialog; it resolves true once saved.
// entry and current (the GET answer) are given when editing.
export function openKvForm(ns, entry, current) {
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
    const formError = h('p', { class: 'error', role: 'alert', hidden: true });

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

    bool.addEventListener('change', () => { boolText.textContent = String(bool.checked); });

    // Each type keeps its own widget, so switching types loses nothing.
    const widgetFor = (t) => (t === 'BOOLEAN' ? bool : t === 'DATE' ? date : t === 'DATETIME' ? datetime : text);
    const sync = () => {
      const t = type.value;
      textField.hidden = ['BOOLEAN', 'DATE', 'DATETIME'].includes(t);
      boolField.hidden = t !== 'BOOLEAN';
      dateField.hidden = t !== 'DATE';
      datetimeField.hidden = t !== 'DATETIME';
      text.rows = t === 'JSON' || t === 'STRING' ? 6 : 2;
      text.placeholder = { NUMBER: '42', DURATION: 'PT5M', JSON: '{"name": "John Doe"}' }[t] || '';
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
      if (w === bool) return '';
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

    if (editing) {
      type.value = current.type || entry.type || 'STRING';
      desc.value = entry.description || '';
      const v = current.value;
      if (type.value === 'BOOLEAN') { bool.checked = v === true; boolText.textContent = String(bool.checked); }
      else if (type.value === 'DATE') date.value = v;
      else if (type.value === 'DATETIME') datetime.value = localInput(v);
      else text.value = type.value === 'JSON' ? JSON.stringify(v, null, 2) : String(v);
      ttl.value = keepLeft > 0 ? 'keep' : '';
    }

    // fieldFor picks the control an API error is about, from its status and its first word.
    const fieldFor = (e) => {
      const m = e.message;
      if (e.status === 409 || /^key\b/i.test(m)) return editing ? null : key;
      if (/^ttl\b/i.test(m)) return ttl.value === 'custom' ? custom : ttl;
      if (/^description\b/i.test(m)) return desc;
      if (e.status === 413 || /^(value|type)\b/i.test(m)) return widgetFor(type.value);
      return null;
    };

    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const form = h('form', { class: 'kv-form', novalidate: true },
      h('h2', { id: 'kv-form-title' }, editing ? `Edit ${entry.key}` : 'New Key-Value'),
      h('p', { class: 'muted' }, 'Namespace ', h('strong', null, ns)),
      formError,
      field('Key', key, editing ? 'The key cannot be changed.' : 'Letters, digits, dots, underscores and hyphens, starting with a letter or a digit.'),
      field('Type', type),
      textField, boolField, dateField, datetimeField,
      field('Description', desc),
      field('Expiration', ttl),
      customField,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => close(false) }, 'Cancel'),
        save));

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      formError.hidden = true;
      const problems = [checkKeyNow() && key, checkValueNow() && widgetFor(type.value), checkTtlNow() && custom].filter(Boolean);
      if (problems.length) { problems[0].focus(); return; }
      const headers = { 'Content-Type': 'text/plain; charset=utf-8', 'kv-type': type.value };
      const query = editing ? {} : { overwrite: 'false' };
      const ttlValue = ttl.value === 'keep' ? `PT${Math.max(1, Math.round((new Date(entry.expirationDate) - Date.now()) / 1000))}S`
        : ttl.value === 'custom' ? custom.value.trim() : ttl.value;
      if (ttlValue) headers.ttl = ttlValue;
      // A header carries only ASCII safely; other descriptions go as a query parameter.
      if (/^[\x20-\x7e]*$/.test(desc.value)) headers.description = desc.value;
      else query.description = desc.value;
      save.disabled = true;
      try {
        await request('PUT', `/namespaces/${enc(ns)}/kv/${enc(key.value)}`, { headers, query, body: valueText() });
      } catch (e) {
        save.disabled = false;
        const f = e instanceof ApiError ? fieldFor(e) : null;
        if (f) { setError(f, e.message); f.focus(); } else { formError.textContent = e.message; formError.hidden = false; }
        return;
      }
      toast(`Saved ${key.value}.`);
      close(true);
    });

    sync();
    queueMicrotask(() => (editing ? widgetFor(type.value) : key).focus());
    return form;
  }, 'kv-form-title');
}
