// The UI's entry point: hash routes to pages.
import { h, replace, refreshTimes } from './dom.js';
import { hasToken, forgetToken } from './api.js';
import { namespacesPage, namespacePage } from './namespaces.js';
import { flowPage, newFlowPage } from './flows.js';
import { executionsPage, executionPage } from './executions.js';
import { globalKvPage } from './kv.js';

const main = document.getElementById('main');

// routes: [pattern, page]; a page is (main, params, view) and may register cleanups with view.onLeave.
const routes = [
  [/^\/?$/, namespacesPage],
  [/^\/namespaces$/, namespacesPage],
  [/^\/ns\/([^/]+)\/new-flow$/, (m, [ns], v) => newFlowPage(m, ns, v)],
  [/^\/ns\/([^/]+)\/flows\/([^/]+)(?:\/(edit|run))?$/, (m, [ns, id, mode], v) => flowPage(m, ns, id, mode || 'view', v)],
  [/^\/ns\/([^/]+)(?:\/(overview|flows|kv|executions))?$/, (m, [ns, tab], v) => namespacePage(m, ns, tab || 'overview', v)],
  [/^\/kv$/, (m, _, v) => globalKvPage(m, v)],
  [/^\/executions$/, (m, _, v) => executionsPage(m, {}, v)],
  [/^\/executions\/([^/]+)$/, (m, [id], v) => executionPage(m, id, v)],
];

let current = null;

async function route() {
  if (current) current.leave();
  const cleanups = [];
  let alive = true;
  const view = {
    get alive() { return alive; },
    onLeave(fn) { cleanups.push(fn); },
    leave() { alive = false; cleanups.forEach((fn) => fn()); },
  };
  current = view;
  const path = decodeURIComponentSafe(location.hash.replace(/^#/, '').split('?')[0]);
  const section = path.startsWith('/executions') ? 'executions' : path.startsWith('/kv') ? 'kv' : 'namespaces';
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const [re, page] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    const params = m.slice(1).map((p) => (p == null ? p : decodeURIComponentSafe(p)));
    try {
      await page(main, params, view);
    } catch (e) {
      if (view.alive) showError(e);
    }
    return;
  }
  document.title = 'Not found · kvflow';
  replace(main, h('h1', null, 'Page not found'), h('p', null, 'There is no page at ', h('code', null, location.hash), '. ',
    h('a', { href: '#/namespaces' }, 'Go to namespaces'), '.'));
}

function decodeURIComponentSafe(s) {
  try { return decodeURIComponent(s); } catch { return s; }
}

function showError(e) {
  replace(main, h('h1', null, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, e.message || String(e)),
    h('p', null, h('button', { type: 'button', onclick: route }, 'Try again')));
}

// Focus moves to the page's content on navigation, for keyboard and screen-reader users,
// unless the user is already typing in it while the page was still loading.
window.addEventListener('hashchange', () => {
  route().then(() => { if (!main.contains(document.activeElement)) main.focus({ preventScroll: true }); });
});

const forget = document.getElementById('forget-token');
const syncToken = () => { forget.hidden = !hasToken(); };
forget.addEventListener('click', () => { forgetToken(); syncToken(); route(); });
document.addEventListener('kvflow:token', syncToken);
syncToken();
// "3 minutes ago" stays true while the page is open.
setInterval(() => refreshTimes(main), 15000);
route();
