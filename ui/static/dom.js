// Small DOM helpers. Text always goes in as text nodes, never as HTML.

// h builds an element: h('a', {href: '#/x', class: 'btn', onclick: fn}, 'text', child, [more]).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value' || k === 'checked' || k === 'hidden' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// replace swaps el's children.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// Absolute times name their time zone: "Jul 15, 2024, 08:10:33 CEST".
const ABS = { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' };
const abs = new Intl.DateTimeFormat(undefined, ABS);
const rel = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const units = [['year', 31536e6], ['month', 2592e6], ['day', 864e5], ['hour', 36e5], ['minute', 6e4], ['second', 1e3]];

// relative says how far iso is from now: "in 1 hour", "3 days ago". A unit is
// used from 95% of it, so a TTL of 1 hour just set reads "in 1 hour".
export function relative(iso, now = Date.now()) {
  const d = new Date(iso).getTime() - now;
  for (const [unit, ms] of units) {
    if (Math.abs(d) >= ms * 0.95 || unit === 'second') return rel.format(Math.round(d / ms), unit);
  }
}

// absolute prints iso in the browser's time zone, or in timeZone (an IANA name).
export function absolute(iso, timeZone) {
  if (timeZone) {
    try { return new Intl.DateTimeFormat(undefined, { ...ABS, timeZone }).format(new Date(iso)); } catch { /* unknown here: local */ }
  }
  return abs.format(new Date(iso));
}

// when shows a time as relative text with the absolute time beside it; the
// relative text is kept current by refreshTimes.
export function when(iso, empty = '—') {
  if (!iso) return h('span', { class: 'muted' }, empty);
  return h('time', { datetime: iso, title: iso }, h('span', { class: 'rel' }, relative(iso)), h('span', { class: 'abs' }, absolute(iso)));
}

// refreshTimes rewrites the relative text of every time when() made.
export function refreshTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('time[datetime] > .rel')) {
    const t = relative(el.parentElement.getAttribute('datetime'), now);
    if (el.textContent !== t) el.textContent = t;
  }
}

// duration formats milliseconds as "1.2 s", "3 min 4 s".
export function duration(ms) {
  if (ms == null || isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60e3) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60e3);
  return m < 60 ? `${m} min ${Math.round((ms % 60e3) / 1000)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

// field builds a labelled control with a hint and an error slot wired by aria-describedby.
export function field(label, control, hint) {
  const id = control.id;
  const err = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const described = [hint && `${id}-hint`, `${id}-error`].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', described);
  return h('div', { class: 'field' },
    h('label', { for: id }, label), control,
    hint && h('p', { class: 'hint', id: `${id}-hint` }, hint), err);
}

// setError shows msg under the control (or clears it when msg is empty).
export function setError(control, msg) {
  const err = document.getElementById(`${control.id}-error`);
  if (msg) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
  if (err) {
    err.textContent = msg || '';
    err.hidden = !msg;
  }
}

// toast announces a short message in the live region. action, {label, run},
// adds a button (Undo) and keeps the message longer.
let toastTimer;
export function toast(msg, kind = 'ok', action) {
  const el = document.getElementById('toast');
  const clear = () => { clearTimeout(toastTimer); el.textContent = ''; el.className = ''; };
  el.className = `toast ${kind}`;
  el.textContent = msg;
  if (action) el.append(' ', h('button', { type: 'button', class: 'link', onclick: () => { clear(); action.run(); } }, action.label));
  clearTimeout(toastTimer);
  toastTimer = setTimeout(clear, action ? 10000 : 5000);
}

// modal shows a <dialog> built by build(close) and resolves with what close is given.
// Escape resolves with undefined. The dialog is removed afterwards.
export function modal(build, labelledby) {
  return new Promise((resolve) => {
    let result;
    const dlg = h('dialog', { 'aria-labelledby': labelledby });
    const close = (v) => { result = v; dlg.close(); };
    append(dlg, [build(close)]);
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// confirm asks a yes/no question in a dialog; the safe answer has the focus.
export function confirm(title, text, yes = 'Delete') {
  return modal((close) => h('div', { class: 'confirm' },
    h('h2', { id: 'confirm-title' }, title),
    h('p', null, text),
    h('div', { class: 'actions' },
      h('button', { type: 'button', autofocus: true, onclick: () => close(false) }, 'Cancel'),
      h('button', { type: 'button', class: 'danger', onclick: () => close(true) }, yes))), 'confirm-title');
}

// stateBadge shows an execution or task state in its colour.
export function stateBadge(state) {
  const s = String(state || 'UNKNOWN').toUpperCase();
  return h('span', { class: `state state-${s.toLowerCase()}` }, s);
}

export function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}
