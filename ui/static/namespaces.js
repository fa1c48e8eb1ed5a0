// The Namespaces page and the namespace page's tabs.
import { h, replace, field, setError, toast } from './dom.js';
import { request, getJSON, enc, ApiError } from './api.js';
import { kvTab, namespaceTree } from './kv.js';
import { flowsTab } from './flows.js';
import { executionsTable, executionsTab, listExecutions } from './executions.js';

const NAMESPACE_RE = /^[a-z0-9][a-z0-9._-]*$/;

// checkNamespace returns what is wrong with a namespace name, or ''.
export function checkNamespace(ns) {
  if (ns === '') return 'Enter a namespace.';
  if (ns.length > 150) return `A namespace is at most 150 characters; this one has ${ns.length}.`;
  if (!NAMESPACE_RE.test(ns)) {
    return 'Use lowercase letters, digits, dots (.), underscores (_) and hyphens (-), starting with a letter or a digit.';
  }
  // As the server's rule (storage.ValidateNamespace).
  if (ns.includes('..') || ns.endsWith('.')) return 'Its dots must separate non-empty parts (no “..” and no trailing dot).';
  return '';
}

// listNamespaces returns [{id, flows, keys}] sorted by id.
export async function listNamespaces() {
  return getJSON('/namespaces');
}

export async function namespacesPage(main, _params, view) {
  document.title = 'Namespaces · kvflow';
  const input = h('input', { id: 'ns-name', name: 'namespace', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'company.team' });
  const list = h('div', { class: 'list' }, h('p', { class: 'muted' }, 'Loading namespaces…'));
  const filter = h('input', { id: 'ns-filter', type: 'search', autocomplete: 'off', placeholder: 'Filter' });
  let all = [];

  const check = () => { const msg = input.value === '' ? '' : checkNamespace(input.value); setError(input, msg); return !msg; };
  input.addEventListener('input', check);

  const form = h('form', { class: 'inline-form', novalidate: true, 'aria-labelledby': 'create-ns-title' },
    h('h2', { id: 'create-ns-title' }, 'Create namespace'),
    h('div', { class: 'row' },
      field('Namespace', input, 'Lowercase letters, digits, dots, underscores and hyphens; 1 to 150 characters.'),
      h('button', { type: 'submit', class: 'primary' }, 'Create')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const ns = input.value;
    const msg = checkNamespace(ns);
    if (msg) { setError(input, msg); input.focus(); return; }
    try {
      await request('POST', '/namespaces', { json: { id: ns } });
    } catch (e) {
      setError(input, e.message);
      input.focus();
      return;
    }
    toast(`Namespace ${ns} created.`);
    location.hash = `#/ns/${enc(ns)}/kv`;
  });

  // The list is a tree: parents first, implicit ones (holding nothing
  // themselves) included, each level indented.
  const render = () => {
    const q = filter.value.trim().toLowerCase();
    if (!all.length) return replace(list, h('p', { class: 'muted' }, 'No namespaces yet. Create one above, or set a key or save a flow in one.'));
    const tree = namespaceTree(all.map((n) => n.id));
    const count = (v, href) => (typeof v === 'number' ? h('a', { href }, String(v)) : h('span', { class: 'muted' }, '—'));
    const rows = all.filter((n) => n.id.includes(q)).map((n) => {
      const { id } = n;
      const { parent, depth } = tree.get(id);
      const name = h('td', { 'data-label': 'Namespace', class: 'ns-name', 'data-depth': depth },
        h('a', { href: `#/ns/${enc(id)}` }, parent ? id.slice(parent.length + 1) : id),
        parent ? h('span', { class: 'sr-only' }, ` (${id})`) : null,
        n.implicit ? h('span', { class: 'badge muted', title: 'A parent of other namespaces; it was never created and holds nothing itself' }, 'parent') : null);
      name.style.paddingLeft = `${0.75 + depth * 1.25}rem`;
      return h('tr', { 'data-ns': id, class: n.implicit ? 'implicit' : null },
        name,
        h('td', { class: 'num', 'data-label': 'Flows' }, count(n.flows, `#/ns/${enc(id)}/flows`)),
        h('td', { class: 'num', 'data-label': 'Keys' }, count(n.keys, `#/ns/${enc(id)}/kv`)));
    });
    replace(list, h('table', { class: 'table ns-tree' },
      h('caption', { class: 'sr-only' }, 'Namespaces, parents before children'),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Namespace'), h('th', { scope: 'col', class: 'num' }, 'Flows'), h('th', { scope: 'col', class: 'num' }, 'Keys'))),
      h('tbody', null, rows)),
    rows.length ? null : h('p', { class: 'muted' }, 'No namespace matches the filter.'));
  };
  filter.addEventListener('input', render);

  replace(main,
    h('div', { class: 'page-head' }, h('h1', null, 'Namespaces')),
    form,
    h('section', { 'aria-labelledby': 'ns-list-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'ns-list-title' }, 'All namespaces'),
        h('div', { class: 'field compact' }, h('label', { for: 'ns-filter', class: 'sr-only' }, 'Filter namespaces'), filter)),
      list));
  all = await listNamespaces();
  if (view.alive) render();
}

const TABS = [['overview', 'Overview'], ['flows', 'Flows'], ['kv', 'KV Store'], ['executions', 'Executions']];

export function namespaceHeader(ns, tab) {
  return [
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/namespaces' }, 'Namespaces'), ' / ',
      ns.split('.').slice(0, -1).map((_, i, a) => { const p = a.slice(0, i + 1).join('.'); return [h('a', { href: `#/ns/${enc(p)}/${tab}` }, p), ' / ']; }),
      h('span', null, ns)),
    h('div', { class: 'page-head' }, h('h1', null, ns)),
    h('nav', { class: 'tabs', 'aria-label': 'Namespace sections' }, TABS.map(([id, label]) =>
      h('a', { href: `#/ns/${enc(ns)}/${id}`, 'aria-current': id === tab ? 'page' : null }, label))),
  ];
}

export async function namespacePage(main, ns, tab, view) {
  const label = TABS.find(([id]) => id === tab)[1];
  document.title = `${label} · ${ns} · kvflow`;
  const body = h('div', { class: 'tab-body' });
  replace(main, namespaceHeader(ns, tab), body);
  if (tab === 'kv') return kvTab(body, ns, view);
  if (tab === 'flows') return flowsTab(body, ns, view);
  if (tab === 'executions') return executionsTab(body, ns, view);
  return overviewTab(body, ns, view);
}

async function overviewTab(body, ns, view) {
  replace(body, h('p', { class: 'muted' }, 'Loading…'));
  const [all, execs] = await Promise.all([
    listNamespaces(),
    listExecutions({ namespace: ns, limit: 10 }).catch((e) => e),
  ]);
  if (!view.alive) return;
  const me = all.find((n) => n.id === ns) || { flows: 0, keys: 0 };
  replace(body,
    h('div', { class: 'cards' },
      h('a', { class: 'card', href: `#/ns/${enc(ns)}/flows` }, h('span', { class: 'big' }, String(me.flows)), me.flows === 1 ? ' flow' : ' flows'),
      h('a', { class: 'card', href: `#/ns/${enc(ns)}/kv` }, h('span', { class: 'big' }, String(me.keys)), me.keys === 1 ? ' key' : ' keys')),
    h('section', { 'aria-labelledby': 'recent-title' },
      h('h2', { id: 'recent-title' }, 'Recent executions'),
      execs instanceof ApiError ? h('p', { class: 'error' }, execs.message) : executionsTable(execs.slice(0, 10), { showNamespace: false })));
}
