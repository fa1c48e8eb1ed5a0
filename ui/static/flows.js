// The Flows tab and the flow page: view the YAML, edit it, run the flow.
import { h, replace, field, setError, toast, confirm, when, absolute } from './dom.js';
import { request, getJSON, enc, ApiError } from './api.js';
import { namespaceHeader } from './namespaces.js';
import { executionsTable, listExecutions, triggerKind } from './executions.js';

export async function listFlows(ns) {
  return getJSON('/flows', { namespace: ns });
}

// getFlow returns the flow as the API describes it, with its YAML source.
async function getFlow(ns, id) {
  return getJSON(`/flows/${enc(ns)}/${enc(id)}`);
}

export async function flowsTab(body, ns, view) {
  replace(body, h('p', { class: 'muted' }, 'Loading flows…'));
  let flows;
  try {
    flows = await listFlows(ns);
  } catch (e) {
    if (view.alive) replace(body, h('h2', null, 'Flows'), h('p', { class: 'error' }, e.message));
    return;
  }
  if (!view.alive) return;
  const row = (f) => h('tr', null,
    h('th', { scope: 'row', 'data-label': 'Flow' }, h('a', { href: flowHref(ns, f.id) }, f.id)),
    h('td', { 'data-label': 'Description', class: 'desc' }, f.error ? h('span', { class: 'error small' }, f.error) : f.description || ''),
    h('td', { 'data-label': 'Tasks', class: 'num' }, String((f.tasks || []).length)),
    h('td', { 'data-label': 'Triggers', class: 'triggers' }, triggerSummary(f.triggers || [])),
    h('td', { class: 'actions-cell' },
      h('a', { class: 'button', href: flowHref(ns, f.id, 'run'), 'aria-label': `Run ${f.id}` }, 'Run'),
      h('a', { class: 'button', href: flowHref(ns, f.id, 'edit'), 'aria-label': `Edit ${f.id}` }, 'Edit')));
  replace(body,
    h('div', { class: 'section-head' }, h('h2', null, 'Flows'), h('a', { class: 'button primary', href: `#/ns/${enc(ns)}/new-flow` }, 'New flow')),
    flows.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('caption', { class: 'sr-only' }, `Flows in ${ns}`),
        h('thead', null, h('tr', null, ['Flow', 'Description', 'Tasks', 'Triggers', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, flows.map(row))))
      : h('p', { class: 'empty' }, 'No flows in this namespace yet.'));
}

// webhookURL is where a Webhook trigger listens, on this server.
const webhookURL = (t) => location.origin + t.webhookPath;

// triggerSummary shows each trigger in a line: kind, and the next schedule date.
function triggerSummary(triggers) {
  if (!triggers.length) return h('span', { class: 'muted' }, '—');
  return h('ul', { class: 'plain' }, triggers.map((t) => h('li', { 'data-trigger': t.id },
    h('span', { class: 'type' }, triggerKind(t)), ' ', t.id,
    t.disabled ? h('span', { class: 'muted' }, ' (disabled)') : null,
    t.nextDate ? [h('span', { class: 'muted' }, ' · next '), when(t.nextDate)] : null)));
}

// conditionText reads a Flow trigger's condition: "flow etl in company.data",
// "namespace company or below", "state SUCCESS or WARNING, not FAILED".
function conditionText(c) {
  const parts = [];
  if (c.flowId) parts.push(`flow ${c.flowId}${c.namespace ? ` in ${c.namespace}` : ''}`);
  else if (c.namespace) parts.push(`namespace ${c.namespace}${c.prefix ? ' or below' : ''}`);
  if (c.in) parts.push(`state ${c.in.join(' or ')}`);
  if (c.notIn) parts.push(`${c.in ? '' : 'state '}not ${c.notIn.join(' or ')}`);
  return parts.join(', ');
}

// triggersSection lists a flow's triggers with what each needs: the cron,
// its time zone and next date, the webhook's URL, the KV changes watched or
// the conditions on another flow's end.
function triggersSection(flow) {
  const ts = flow.triggers || [];
  const detail = (t) => {
    if (t.cron) {
      return [h('div', null, h('code', null, t.cron), t.timezone ? ` in ${t.timezone}` : ''),
        t.nextDate ? h('div', { class: 'next-date' }, 'Next: ', when(t.nextDate),
          t.timezone && t.timezone !== 'UTC' ? h('div', { class: 'muted small' }, `${absolute(t.nextDate, t.timezone)} in ${t.timezone}`) : null)
          : h('div', { class: 'muted' }, 'Not scheduled while disabled.')];
    }
    if (t.webhookPath) {
      const url = webhookURL(t);
      return h('div', { class: 'webhook' }, h('code', { class: 'webhook-url' }, url), ' ',
        h('button', { type: 'button', class: 'small', 'aria-label': `Copy the URL of ${t.id}`, onclick: async () => {
          try { await navigator.clipboard.writeText(url); toast('Webhook URL copied.'); } catch { toast('Copy the URL by hand: the browser refused.', 'bad'); }
        } }, 'Copy'),
        h('div', { class: 'hint' }, 'POST (or GET) starts an execution; the body is trigger.body. The key in the URL is its secret.'));
    }
    if (t.on) {
      const which = t.key ? ['key ', h('code', null, t.key)] : t.prefix ? ['keys starting with ', h('code', null, t.prefix)] : 'any key';
      return h('div', null, `${t.on.join(', ')} of `, which, ' in ', h('strong', null, t.namespace));
    }
    if (t.conditions) {
      return [h('div', null, 'Runs when an execution ends that meets every condition:'),
        h('ul', { class: 'plain conditions' }, t.conditions.map((c) => h('li', null, conditionText(c))))];
    }
    return '';
  };
  return h('section', { 'aria-labelledby': 'trg-title' }, h('h2', { id: 'trg-title' }, 'Triggers'),
    ts.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'table triggers' },
      h('caption', { class: 'sr-only' }, `Triggers of ${flow.id}`),
      h('thead', null, h('tr', null, ['Trigger', 'Type', 'When or where', 'State'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, ts.map((t) => h('tr', { 'data-trigger': t.id },
        h('th', { scope: 'row', 'data-label': 'Trigger' }, t.id),
        h('td', { 'data-label': 'Type' }, h('span', { class: 'type', title: t.type }, triggerKind(t))),
        h('td', { 'data-label': 'When or where' }, detail(t)),
        h('td', { 'data-label': 'State' }, t.disabled ? h('span', { class: 'muted' }, 'Disabled') : 'Enabled'))))))
      : h('p', { class: 'muted' }, 'No triggers: this flow runs when started from here, the API or the CLI.'));
}

export function flowHref(ns, id, mode) {
  return `#/ns/${enc(ns)}/flows/${enc(id)}${mode ? `/${mode}` : ''}`;
}

function flowHeader(ns, id, mode) {
  return [
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/namespaces' }, 'Namespaces'), ' / ', h('a', { href: `#/ns/${enc(ns)}/flows` }, ns), ' / ', h('span', null, id)),
    h('div', { class: 'page-head' }, h('h1', null, id),
      h('div', { class: 'head-actions' },
        mode !== 'run' && h('a', { class: 'button primary', href: flowHref(ns, id, 'run') }, 'Run'),
        mode !== 'edit' && h('a', { class: 'button', href: flowHref(ns, id, 'edit') }, 'Edit'),
        mode !== 'view' && h('a', { class: 'button', href: flowHref(ns, id) }, 'View'))),
  ];
}

export async function flowPage(main, ns, id, mode, view) {
  document.title = `${id} · ${ns} · kvflow`;
  replace(main, flowHeader(ns, id, mode), h('p', { class: 'muted' }, 'Loading flow…'));
  const flow = await getFlow(ns, id);
  if (!view.alive) return;
  const body = h('div');
  replace(main, flowHeader(ns, id, mode), body);
  if (mode === 'edit') return editor(body, ns, flow.source, async (yaml) => request('PUT', `/flows/${enc(ns)}/${enc(id)}`, { headers: { 'Content-Type': 'application/x-yaml' }, body: yaml }),
    () => { location.hash = flowHref(ns, id); }, view);
  if (mode === 'run') return runForm(body, ns, flow);
  const execs = await listExecutions({ namespace: ns, flowId: id, limit: 10 }).catch((e) => e);
  if (!view.alive) return;
  replace(body,
    flow.error && h('p', { class: 'error', role: 'alert' }, flow.error),
    flow.description && h('p', { class: 'lead' }, flow.description),
    triggersSection(flow),
    h('section', { 'aria-labelledby': 'src-title' }, h('h2', { id: 'src-title' }, 'Source'),
      h('pre', { class: 'code', tabindex: 0, 'aria-label': `YAML source of ${id}` }, flow.source)),
    h('section', { 'aria-labelledby': 'fx-title' }, h('h2', { id: 'fx-title' }, 'Recent executions'),
      execs instanceof ApiError ? h('p', { class: 'error' }, execs.message) : executionsTable(execs, { showNamespace: false, showFlow: false })),
    h('p', null, h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!(await confirm(`Delete flow ${id}?`, `The flow ${id} will be deleted from namespace ${ns}. Its executions are kept.`))) return;
      try { await request('DELETE', `/flows/${enc(ns)}/${enc(id)}`); } catch (e) { toast(e.message, 'bad'); return; }
      toast(`Deleted flow ${id}.`);
      location.hash = `#/ns/${enc(ns)}/flows`;
    } }, 'Delete flow')));
}

const NEW_FLOW = (ns) => `id: hello
namespace: ${ns}

inputs:
  - id: name
    type: STRING
    defaults: world

tasks:
  - id: say_hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.name }}"
`;

export async function newFlowPage(main, ns, view) {
  document.title = `New flow · ${ns} · kvflow`;
  const body = h('div');
  replace(main, namespaceHeader(ns, 'flows'), h('h2', null, 'New flow'), body);
  return editor(body, ns, NEW_FLOW(ns), async (yaml) => request('POST', '/flows', { headers: { 'Content-Type': 'application/x-yaml' }, body: yaml }),
    async (res) => {
      const f = await res.json().catch(() => null);
      location.hash = f && f.id ? flowHref(f.namespace || ns, f.id) : `#/ns/${enc(ns)}/flows`;
    }, view);
}

// validationErrors reads the API's list of problems from a 422 answer as
// [{line, message}], line 0 when unknown. An item is {line, field, message}
// or a string such as "flow.yaml:12: tasks[1].ttl: message".
export function validationErrors(e) {
  const list = (e.body && e.body.errors) || [];
  if (!list.length) return [{ line: 0, message: e.message }];
  return list.map((x) => {
    if (typeof x !== 'string') return { line: x.line || 0, message: x.field ? `${x.field}: ${x.message}` : x.message };
    const m = /^(?:[^\s:]*:)?(\d+): (.*)$/s.exec(x);
    return m ? { line: Number(m[1]), message: m[2] } : { line: 0, message: x };
  });
}

// editor is a YAML textarea with line numbers; problems are shown at their line.
function editor(body, ns, source, save, saved, view) {
  const ta = h('textarea', { id: 'flow-yaml', class: 'code', spellcheck: 'false', wrap: 'off', rows: 24, 'aria-describedby': 'flow-problems' });
  ta.value = source || '';
  const gutter = h('pre', { class: 'gutter', 'aria-hidden': 'true' });
  const problems = h('div', { id: 'flow-problems', class: 'problems', role: 'alert' });
  let bad = new Map();
  const numbers = () => {
    const n = ta.value.split('\n').length;
    replace(gutter, Array.from({ length: n }, (_, i) => h('span', { class: bad.has(i + 1) ? 'bad' : null, title: bad.get(i + 1) || null }, `${i + 1}\n`)));
    gutter.scrollTop = ta.scrollTop;
  };
  ta.addEventListener('input', numbers);
  ta.addEventListener('scroll', () => { gutter.scrollTop = ta.scrollTop; });
  ta.addEventListener('keydown', (ev) => {
    if (ev.key === 'Tab' && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey) { // two spaces; Escape then Tab leaves the editor
      if (ta.dataset.tabOut === '1') { ta.dataset.tabOut = ''; return; }
      ev.preventDefault();
      ta.setRangeText('  ', ta.selectionStart, ta.selectionEnd, 'end');
      numbers();
    } else if (ev.key === 'Escape') {
      ta.dataset.tabOut = '1';
    } else {
      ta.dataset.tabOut = '';
    }
  });
  const goLine = (line) => {
    const lines = ta.value.split('\n');
    const start = lines.slice(0, line - 1).reduce((a, l) => a + l.length + 1, 0);
    ta.focus();
    ta.setSelectionRange(start, start + (lines[line - 1] || '').length);
    const lh = parseFloat(getComputedStyle(ta).lineHeight) || 20;
    ta.scrollTop = Math.max(0, (line - 3) * lh);
  };
  const saveBtn = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const form = h('form', { class: 'editor-form', novalidate: true },
    h('label', { for: 'flow-yaml' }, 'Flow YAML'),
    h('p', { class: 'hint' }, 'Tab indents; press Escape then Tab to leave the editor.'),
    h('div', { class: 'editor' }, gutter, ta),
    problems,
    h('div', { class: 'actions' }, saveBtn));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    saveBtn.disabled = true;
    let res;
    try {
      res = await save(ta.value);
    } catch (e) {
      saveBtn.disabled = false;
      if (!view.alive) return;
      const errs = e instanceof ApiError && (e.status === 422 || e.status === 400) ? validationErrors(e) : [{ line: 0, message: e.message }];
      bad = new Map(errs.filter((x) => x.line).map((x) => [x.line, x.message]));
      numbers();
      replace(problems, h('h3', null, errs.length === 1 ? '1 problem' : `${errs.length} problems`),
        h('ul', null, errs.map((x) => h('li', null, x.line
          ? h('button', { type: 'button', class: 'link', onclick: () => goLine(x.line) }, `Line ${x.line}`)
          : null, x.line ? ': ' : '', x.message))));
      return;
    }
    toast('Flow saved.');
    saved(res);
  });
  numbers();
  replace(body, form);
  ta.focus();
}

// inputControl builds the control for one flow input.
function inputControl(inp) {
  const id = `input-${inp.id}`;
  const t = String(inp.type || 'STRING').toUpperCase();
  const d = inp.defaults ?? inp.default;
  const opts = { id, name: inp.id, required: inp.required && d == null };
  let c;
  switch (t) {
    case 'BOOLEAN':
    case 'BOOL':
      c = h('input', { ...opts, type: 'checkbox', checked: d === true || d === 'true', required: false });
      break;
    case 'INT':
    case 'INTEGER':
      c = h('input', { ...opts, type: 'number', step: 1, value: d ?? '' });
      break;
    case 'FLOAT':
    case 'NUMBER':
      c = h('input', { ...opts, type: 'number', step: 'any', value: d ?? '' });
      break;
    case 'DATE':
      c = h('input', { ...opts, type: 'date', value: d ?? '' });
      break;
    case 'DATETIME':
      c = h('input', { ...opts, type: 'text', value: d ?? '', placeholder: '2024-07-15T06:10:33Z' });
      break;
    case 'JSON':
      c = h('textarea', { ...opts, rows: 4, spellcheck: 'false' });
      c.value = d == null ? '' : typeof d === 'string' ? d : JSON.stringify(d, null, 2);
      break;
    case 'SELECT':
    case 'ENUM':
      c = h('select', opts, (inp.values || []).map((v) => h('option', { value: v, selected: v === d }, v)));
      break;
    default:
      c = h('input', { ...opts, type: 'text', value: d ?? '' });
  }
  return { control: c, type: t };
}

function runForm(body, ns, flow) {
  const inputs = (flow.inputs || []).map((inp) => ({ inp, ...inputControl(inp) }));
  const formError = h('p', { class: 'error', role: 'alert', hidden: true });
  const runBtn = h('button', { type: 'submit', class: 'primary' }, 'Run');
  const form = h('form', { class: 'run-form', novalidate: true, 'aria-labelledby': 'run-title' },
    h('h2', { id: 'run-title' }, `Run ${flow.id}`),
    inputs.length ? null : h('p', { class: 'muted' }, 'This flow has no inputs.'),
    inputs.map(({ inp, control, type }) => field(`${inp.displayName || inp.id}${control.required ? ' (required)' : ''}`, control,
      [inp.description, type !== 'STRING' ? type : ''].filter(Boolean).join(' · ') || null)),
    formError,
    h('div', { class: 'actions' }, runBtn));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formError.hidden = true;
    const values = {};
    let first = null;
    for (const { inp, control, type } of inputs) {
      setError(control, '');
      if (control.type === 'checkbox') { values[inp.id] = control.checked; continue; }
      const v = control.value;
      if (v === '') {
        if (control.required) { setError(control, `Enter a value for ${inp.id}.`); first ||= control; }
        continue;
      }
      if (type === 'JSON') {
        try { values[inp.id] = JSON.parse(v); } catch (e) { setError(control, `Invalid JSON: ${e.message}.`); first ||= control; }
        continue;
      }
      values[inp.id] = control.type === 'number' ? Number(v) : v;
    }
    if (first) { first.focus(); return; }
    runBtn.disabled = true;
    let exec;
    try {
      const res = await request('POST', `/executions/${enc(ns)}/${enc(flow.id)}`, { json: values });
      exec = await res.json();
    } catch (e) {
      runBtn.disabled = false;
      // A problem of an input (field inputs.<id>) shows next to it; others above Run.
      const rest = [];
      for (const x of (e.body && e.body.errors) || [{ message: e.message }]) {
        const hit = inputs.find(({ inp }) => x.field === `inputs.${inp.id}`);
        if (hit) { setError(hit.control, x.message); first ||= hit.control; } else rest.push(x.field ? `${x.field}: ${x.message}` : x.message);
      }
      formError.textContent = rest.join('\n');
      formError.hidden = !rest.length;
      if (first) first.focus();
      return;
    }
    toast(`Execution ${exec.id} started.`);
    location.hash = `#/executions/${enc(exec.id)}`;
  });
  replace(body, form);
  (inputs[0] ? inputs[0].control : runBtn).focus();
}

