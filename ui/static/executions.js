// Executions: lists with state colours and the execution page, refreshed while it runs.
import { h, replace, when, duration, stateBadge, absolute, confirm, toast } from './dom.js';
import { getJSON, getExact, request, enc } from './api.js';

const DONE = new Set(['SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED']);

// stateOf reads an execution's or task run's state.
export function stateOf(x) {
  const s = x && x.state;
  return String((s && typeof s === 'object' ? s.current : s) || 'CREATED').toUpperCase();
}
const startOf = (x) => x.startDate || (x.state && x.state.startDate) || x.created;
const endOf = (x) => x.endDate || (x.state && x.state.endDate);

export async function listExecutions(query) {
  return getJSON('/executions', query);
}

export function executionsTable(execs, { showNamespace = true, showFlow = true } = {}) {
  if (!execs.length) return h('p', { class: 'empty' }, 'No executions yet.');
  const cols = ['Execution', showNamespace && 'Namespace', showFlow && 'Flow', 'Trigger', 'State', 'Started', 'Duration'].filter(Boolean);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
    h('caption', { class: 'sr-only' }, 'Executions'),
    h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, execs.map((x) => {
      const start = startOf(x);
      const end = endOf(x);
      return h('tr', null,
        h('th', { scope: 'row', 'data-label': 'Execution' }, h('a', { href: `#/executions/${enc(x.id)}`, class: 'mono' }, shortId(x.id))),
        showNamespace && h('td', { 'data-label': 'Namespace' }, h('a', { href: `#/ns/${enc(x.namespace)}/executions` }, x.namespace)),
        showFlow && h('td', { 'data-label': 'Flow' }, h('a', { href: `#/ns/${enc(x.namespace)}/flows/${enc(x.flowId)}` }, x.flowId)),
        h('td', { 'data-label': 'Trigger', class: 'trigger' }, triggerLabel(x)),
        h('td', { 'data-label': 'State' }, stateBadge(stateOf(x))),
        h('td', { 'data-label': 'Started' }, when(start)),
        h('td', { 'data-label': 'Duration' }, start ? duration(new Date(end || Date.now()) - new Date(start)) : '—'));
    }))));
}

// triggerKind names a trigger's type: KV for io.kvflow.kv.Trigger, else its
// last part (Schedule, Webhook, Flow).
export const triggerKind = (t) => (t.type === 'io.kvflow.kv.Trigger' ? 'KV' : String(t.type).split('.').pop());

// triggerLabel says what started an execution: a trigger's id and kind, or "Manual".
export function triggerLabel(x) {
  if (!x.trigger) return h('span', { class: 'muted' }, 'Manual');
  return [h('span', { class: 'mono' }, x.trigger.id), h('span', { class: 'muted' }, ` (${triggerKind(x.trigger)})`)];
}

const shortId = (id) => (String(id).length > 24 ? String(id).slice(0, 24) + '…' : String(id));

// executionsList renders executions with a flow filter and refreshes while any runs.
async function executionsList(body, query, flows, view) {
  const flowSel = flows && h('select', { id: 'exec-flow' }, h('option', { value: '' }, 'All flows'), flows.map((f) => h('option', { value: f.id }, f.id)));
  const list = h('div', null, h('p', { class: 'muted' }, 'Loading executions…'));
  let timer;
  const load = async () => {
    clearTimeout(timer);
    let execs;
    try {
      execs = await listExecutions({ ...query, flowId: flowSel ? flowSel.value : '' });
    } catch (e) {
      if (view.alive) replace(list, h('p', { class: 'error' }, e.message));
      return;
    }
    if (!view.alive) return;
    replace(list, executionsTable(execs, { showNamespace: !query.namespace }));
    if (execs.some((x) => !DONE.has(stateOf(x)))) timer = setTimeout(load, 2000);
  };
  view.onLeave(() => clearTimeout(timer));
  if (flowSel) flowSel.addEventListener('change', load);
  replace(body,
    h('div', { class: 'section-head' }, h('h2', null, 'Executions'),
      flowSel && h('div', { class: 'field compact' }, h('label', { for: 'exec-flow' }, 'Flow'), flowSel)),
    list);
  await load();
}

export async function executionsTab(body, ns, view) {
  const flows = await getJSON('/flows', { namespace: ns }).catch(() => []);
  return executionsList(body, { namespace: ns }, flows, view);
}

export async function executionsPage(main, _q, view) {
  document.title = 'Executions · kvflow';
  const body = h('div');
  replace(main, h('div', { class: 'page-head' }, h('h1', null, 'Executions')), body);
  return executionsList(body, {}, null, view);
}

// jsonBlock shows a value as JSON: inline when short, else folded under its keys.
function jsonBlock(v, label) {
  if (v == null || (typeof v === 'object' && !Object.keys(v).length)) return h('span', { class: 'muted' }, '—');
  const short = typeof v === 'string' ? v : JSON.stringify(v);
  if (short.length <= 80) return h('code', { class: 'inline-value', 'aria-label': label }, short);
  const summary = typeof v === 'object' && !Array.isArray(v) ? Object.keys(v).join(', ') : `${short.slice(0, 60)}…`;
  return h('details', { class: 'json' }, h('summary', null, summary),
    h('pre', { class: 'value', tabindex: 0, 'aria-label': label }, typeof v === 'string' ? v : JSON.stringify(v, null, 2)));
}

export async function executionPage(main, id, view) {
  document.title = `Execution ${shortId(id)} · kvflow`;
  let timer;
  view.onLeave(() => clearTimeout(timer));
  const head = h('div');
  const runs = h('section', { 'aria-labelledby': 'runs-title' });
  const logs = h('section', { 'aria-labelledby': 'logs-title' });
  replace(main, head, runs, logs);
  const logBox = h('div', { class: 'logs', tabindex: 0, role: 'log', 'aria-label': 'Logs' });

  const load = async () => {
    const [x, lines] = await Promise.all([getExact(`/executions/${enc(id)}`), getJSON(`/executions/${enc(id)}/logs`)]);
    if (!view.alive) return;
    const state = stateOf(x);
    const running = !DONE.has(state);
    const start = startOf(x);
    const end = endOf(x);
    document.title = `${state} · ${x.flowId} · kvflow`;
    replace(head,
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
        h('a', { href: '#/namespaces' }, 'Namespaces'), ' / ', h('a', { href: `#/ns/${enc(x.namespace)}/executions` }, x.namespace), ' / ',
        h('a', { href: `#/ns/${enc(x.namespace)}/flows/${enc(x.flowId)}` }, x.flowId), ' / ', h('span', null, 'Execution')),
      h('div', { class: 'page-head' }, h('h1', null, 'Execution ', h('span', { class: 'mono' }, x.id)),
        h('div', { class: 'head-actions' }, h('span', { id: 'exec-state', 'aria-live': 'polite' }, stateBadge(state)),
          running ? h('button', { type: 'button', class: 'button danger', id: 'kill', onclick: async () => {
            if (!(await confirm(`Kill execution ${shortId(x.id)}?`, 'It stops on the worker that runs it and ends KILLED.', 'Kill'))) return;
            try {
              await request('DELETE', `/executions/${enc(x.id)}/kill`);
              toast('Kill requested.');
              clearTimeout(timer);
              await load();
            } catch (e) { toast(e.message, 'bad'); }
          } }, 'Kill') : null,
          h('a', { class: 'button', href: `#/ns/${enc(x.namespace)}/flows/${enc(x.flowId)}/run` }, 'Run again'))),
      h('dl', { class: 'facts' },
        h('dt', null, 'Flow'), h('dd', null, `${x.namespace} / ${x.flowId}`),
        h('dt', null, 'Trigger'), h('dd', { id: 'exec-trigger' }, triggerLabel(x)),
        x.worker ? [h('dt', null, 'Worker'), h('dd', { class: 'mono' }, x.worker)] : null,
        h('dt', null, 'Started'), h('dd', null, when(start)),
        h('dt', null, 'Ended'), h('dd', null, running ? h('span', { class: 'muted' }, 'still running…') : when(end)),
        h('dt', null, 'Duration'), h('dd', null, start ? duration(new Date(end || Date.now()) - new Date(start)) : '—'),
        x.inputs && Object.keys(x.inputs).length ? [h('dt', null, 'Inputs'), h('dd', null, jsonBlock(x.inputs, 'Inputs'))] : null,
        x.outputs && Object.keys(x.outputs).length ? [h('dt', null, 'Outputs'), h('dd', null, jsonBlock(x.outputs, 'Flow outputs'))] : null),
      x.error ? h('p', { class: 'error', role: 'alert' }, x.error.message || String(x.error)) : null);

    const taskRuns = x.taskRunList || x.taskRuns || [];
    replace(runs, h('h2', { id: 'runs-title' }, 'Task runs'),
      taskRuns.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('caption', { class: 'sr-only' }, 'Task runs'),
        h('thead', null, h('tr', null, ['Task', 'State', 'Started', 'Duration', 'Outputs'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, taskRuns.map((t) => {
          const ts = startOf(t);
          const te = endOf(t);
          return h('tr', null,
            h('th', { scope: 'row', 'data-label': 'Task' }, h('span', { class: 'mono' }, t.taskId), t.value ? h('span', { class: 'muted small' }, ` (${t.value})`) : null),
            h('td', { 'data-label': 'State' }, stateBadge(stateOf(t)),
              (t.attempts || []).length > 1 ? h('span', { class: 'muted small' }, ` ${t.attempts.length} attempts`) : null,
              t.error ? h('p', { class: 'error small' }, t.error) : null),
            h('td', { 'data-label': 'Started' }, when(ts)),
            h('td', { 'data-label': 'Duration' }, ts ? duration(new Date(te || Date.now()) - new Date(ts)) : '—'),
            h('td', { 'data-label': 'Outputs' }, jsonBlock(t.outputs, `Outputs of ${t.taskId}`)));
        }))))
        : h('p', { class: 'muted' }, running ? 'Waiting for the first task…' : 'No task ran.'));

    const atBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 8;
    replace(logBox, lines.length ? lines.map((l) => h('div', { class: `log log-${String(l.level || 'INFO').toLowerCase()}` },
      h('time', { datetime: l.timestamp, title: l.timestamp ? absolute(l.timestamp) : null }, l.timestamp ? new Date(l.timestamp).toLocaleTimeString() : ''),
      h('span', { class: 'level' }, l.level || 'INFO'),
      h('span', { class: 'task' }, l.taskId || ''),
      h('span', { class: 'msg' }, l.message))) : h('p', { class: 'muted' }, running ? 'No logs yet.' : 'No logs.'));
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
    if (!logs.firstChild) replace(logs, h('h2', { id: 'logs-title' }, 'Logs'), logBox);
    if (running) timer = setTimeout(() => load().catch(() => { timer = setTimeout(load, 3000); }), 1000);
  };
  await load();
}
