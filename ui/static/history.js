// The history drawer of one key: its versions, who wrote each and when, a
// diff between any two, and Restore.
import { h, replace, modal, confirm, toast, when } from './dom.js';
import { request, getExact, enc, ifMatch } from './api.js';
import { canonical, diffLines } from './diff.js';

// valueText prints a version's value for the diff: JSON field by field.
function valueText(v) {
  if (v.type === 'JSON') return canonical(v.value);
  return typeof v.value === 'string' ? v.value : JSON.stringify(v.value);
}

// openHistory shows the drawer; it resolves true when a version was restored.
export function openHistory(ns, key) {
  const base = `/namespaces/${enc(ns)}/kv/${enc(key)}`;
  return modal((close) => {
    let restored = false;
    let versions = [];
    let cursor = '';
    const values = new Map(); // version → its value, fetched once
    let revealed = false; // sensitive versions are compared only once revealed
    const list = h('div', { class: 'table-wrap' }, h('p', { class: 'muted' }, 'Loading versions…'));
    const more = h('button', { type: 'button', hidden: true, onclick: () => fetchPage() }, 'Older versions');
    const from = h('select', { id: 'hist-from' });
    const to = h('select', { id: 'hist-to' });
    const diff = h('div', { id: 'hist-diff', class: 'diff-view', 'aria-live': 'polite' });
    const compare = h('section', { class: 'compare', 'aria-labelledby': 'hist-compare-title', hidden: true },
      h('h3', { id: 'hist-compare-title' }, 'Compare two versions'),
      h('div', { class: 'toolbar' },
        h('div', { class: 'field compact' }, h('label', { for: 'hist-from' }, 'From'), from),
        h('div', { class: 'field compact' }, h('label', { for: 'hist-to' }, 'To'), to)),
      diff);

    // live is the version the key is at, or 0 when it is deleted.
    const live = () => (versions.length && versions[0].change === 'SET' ? versions[0].version : 0);
    const withValue = () => versions.filter((v) => v.change === 'SET');

    async function fetchPage() {
      let res;
      try {
        res = await request('GET', `${base}/versions`, { query: { limit: 100, cursor } });
      } catch (e) {
        replace(list, h('p', { class: 'error' }, e.message));
        return;
      }
      versions = versions.concat(await res.json());
      cursor = res.headers.get('X-Next-Cursor') || '';
      more.hidden = !cursor;
      render();
    }

    function render() {
      if (!versions.length) { replace(list, h('p', { class: 'empty' }, 'This key has no recorded versions.')); return; }
      replace(list, h('table', { class: 'table history' },
        h('caption', { class: 'sr-only' }, `Versions of ${key}, newest first`),
        h('thead', null, h('tr', null, ['Version', 'Change', 'Type', 'Written by', 'When', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, versions.map((v) => h('tr', { 'data-version': v.version },
          h('th', { scope: 'row', 'data-label': 'Version' }, `v${v.version}`, v.version === live() ? h('span', { class: 'badge' }, 'current') : null,
            v.sensitive ? h('span', { class: 'badge sensitive', title: 'Sensitive: the value is hidden until revealed' }, 'sensitive') : null),
          h('td', { 'data-label': 'Change' }, v.change),
          h('td', { 'data-label': 'Type' }, v.type ? h('span', { class: 'type' }, v.type) : '—'),
          h('td', { 'data-label': 'Written by', class: 'writer' }, v.writer || h('span', { class: 'muted' }, 'unknown')),
          h('td', { 'data-label': 'When' }, when(v.updateDate)),
          h('td', { class: 'actions-cell' }, v.change === 'SET' && v.version !== live()
            ? h('button', { type: 'button', 'aria-label': `Restore version ${v.version}`, onclick: () => restore(v) }, 'Restore') : null))))));
      const opts = withValue();
      compare.hidden = opts.length < 2;
      if (opts.length < 2) return;
      const keep = [from.value, to.value];
      const fill = (sel, def) => {
        replace(sel, opts.map((v) => h('option', { value: v.version }, `v${v.version}${v.version === live() ? ' (current)' : ''}`)));
        sel.value = keep[sel === from ? 0 : 1] || String(def);
      };
      fill(from, opts[1].version);
      fill(to, opts[0].version);
      showDiff();
    }

    async function valueOf(version) {
      if (!values.has(version)) values.set(version, getExact(base, { version }));
      return values.get(version);
    }

    let diffSeq = 0;
    async function showDiff() {
      const my = ++diffSeq;
      const a = Number(from.value);
      const b = Number(to.value);
      const hidden = [a, b].filter((n) => versions.some((v) => v.version === n && v.sensitive));
      if (hidden.length && !revealed) {
        replace(diff, h('div', { class: 'hidden-value' },
          h('p', { class: 'hint', id: 'hist-hidden-note' }, `${hidden.map((n) => `v${n}`).join(' and ')} ${hidden.length === 1 ? 'is' : 'are'} sensitive: the values are hidden.`),
          h('button', { type: 'button', id: 'hist-reveal', 'aria-describedby': 'hist-hidden-note', onclick: () => {
            revealed = true;
            showDiff().then(() => diff.querySelector('pre.diff')?.focus());
          } }, 'Reveal and compare')));
        return;
      }
      replace(diff, h('p', { class: 'muted' }, 'Loading values…'));
      let va;
      let vb;
      try {
        [va, vb] = await Promise.all([valueOf(a), valueOf(b)]);
      } catch (e) {
        if (my === diffSeq) replace(diff, h('p', { class: 'error' }, e.message));
        return;
      }
      if (my !== diffSeq) return;
      const lines = diffLines(valueText(va), valueText(vb));
      const changed = lines.filter((l) => l.op !== ' ').length;
      replace(diff,
        h('p', { class: 'muted diff-summary' }, a === b ? 'The same version on both sides.'
          : changed ? `${lines.filter((l) => l.op === '-').length} lines only in v${a}, ${lines.filter((l) => l.op === '+').length} only in v${b}${va.type !== vb.type ? ` (type ${va.type} → ${vb.type})` : ''}.`
            : `v${a} and v${b} hold the same value.`),
        h('pre', { class: 'diff', tabindex: 0, 'aria-label': `Changes from version ${a} to version ${b}` }, lines.map((l) =>
          h('span', { class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : null }, `${l.op} ${l.text}\n`))));
    }
    from.addEventListener('change', showDiff);
    to.addEventListener('change', showDiff);

    async function restore(v) {
      const cur = live();
      const yes = await confirm(`Restore version ${v.version} of ${key}?`,
        `A new version of “${key}” will hold the value, type and description of version ${v.version}${cur ? `; version ${cur} stays in the history` : ''}.`, 'Restore');
      if (!yes) return;
      try {
        // If-Match: refused when someone wrote the key since this list was read.
        await request('POST', `${base}/restore`, { json: { version: v.version }, headers: cur ? ifMatch(cur) : {} });
      } catch (e) {
        toast(e.status === 412 ? `${key} changed since the history was shown: ${e.message}` : e.message, 'bad');
        return reload();
      }
      restored = true;
      toast(`Restored version ${v.version} of ${key}.`);
      return reload();
    }

    function reload() {
      versions = [];
      cursor = '';
      return fetchPage().then(() => dlgFocus());
    }
    const closeBtn = h('button', { type: 'button', onclick: () => close(restored) }, 'Close');
    const dlgFocus = () => closeBtn.focus();

    const panel = h('div', { class: 'drawer-body' },
      h('div', { class: 'section-head' }, h('h2', { id: 'hist-title' }, 'History of ', h('code', null, key)), closeBtn),
      h('p', { class: 'muted' }, 'Namespace ', h('strong', null, ns), '. Newest first.'),
      list, more, compare);
    // Escape closes the dialog with no value: report a restore all the same.
    queueMicrotask(() => {
      panel.closest('dialog').classList.add('drawer');
      panel.closest('dialog').addEventListener('cancel', (ev) => { ev.preventDefault(); close(restored); });
      closeBtn.focus();
    });
    fetchPage();
    return panel;
  }, 'hist-title');
}
