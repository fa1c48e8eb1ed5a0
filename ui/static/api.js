// The REST API client: fetch with the session's token, and errors as ApiError.

const BASE = '/api/v1';
const TOKEN = 'kvflow.token';

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function hasToken() { return !!sessionStorage.getItem(TOKEN); }
export function forgetToken() {
  sessionStorage.removeItem(TOKEN);
  document.dispatchEvent(new Event('kvflow:token'));
}

// One token prompt at a time, however many requests got a 401.
let asking = null;
function askToken(refused) {
  if (asking) return asking;
  const dlg = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  document.getElementById('token-why').textContent = refused
    ? 'The server refused the token. Enter a valid API token.'
    : 'This server needs an API token. It is kept for this browser session only.';
  input.value = '';
  asking = new Promise((resolve) => {
    const done = () => {
      dlg.removeEventListener('close', done);
      asking = null;
      const ok = dlg.returnValue === 'ok' && input.value.trim() !== '';
      if (ok) sessionStorage.setItem(TOKEN, input.value.trim());
      document.dispatchEvent(new Event('kvflow:token'));
      resolve(ok);
    };
    dlg.addEventListener('close', done);
    document.getElementById('token-cancel').onclick = () => dlg.close('cancel');
    dlg.returnValue = '';
    dlg.showModal();
    input.focus();
  });
  return asking;
}

// request calls the API. query is an object of parameters (empty ones dropped).
// It returns the Response; a status of 400 or more throws ApiError with the server's message.
export async function request(method, path, { query, headers, body, json } = {}) {
  let url = BASE + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v != null && v !== '') q.set(k, v);
    if ([...q].length) url += '?' + q;
  }
  if (json !== undefined) {
    body = JSON.stringify(json);
    headers = { 'Content-Type': 'application/json', ...headers };
  }
  for (let refused = false; ;) {
    const hs = new Headers(headers);
    const token = sessionStorage.getItem(TOKEN);
    if (token) hs.set('Authorization', `Bearer ${token}`);
    let res;
    try {
      res = await fetch(url, { method, headers: hs, body });
    } catch (e) {
      throw new ApiError(0, `Cannot reach the server: ${e.message}.`);
    }
    if (res.status === 401) {
      if (token) forgetToken();
      if (await askToken(refused || !!token)) { refused = true; continue; }
    }
    if (res.status >= 400) {
      const text = await res.text();
      let data = null;
      try { data = JSON.parse(text); } catch { /* not JSON */ }
      const msg = (data && data.message) || text.trim() || `${res.status} ${res.statusText}`;
      throw new ApiError(res.status, msg, data);
    }
    return res;
  }
}

// getJSON returns the decoded body of a GET.
export async function getJSON(path, query) {
  const res = await request('GET', path, { query });
  return res.json();
}

// exactJSON parses a body keeping every number digit for digit: one a double
// cannot hold (12345678901234567890, 0.10000000000000000001) comes back as
// JSON.rawJSON of its text, which JSON.stringify prints as written.
export function exactJSON(text) {
  return JSON.parse(text, (k, x, c) => (typeof x === 'number' && c && c.source !== undefined && String(x) !== c.source ? JSON.rawJSON(c.source) : x));
}

// getExact returns the decoded body of a GET, every number exact.
export async function getExact(path, query) {
  return exactJSON(await (await request('GET', path, { query })).text());
}

// plain prints a scalar from exactJSON as it was written.
export const plain = (x) => (JSON.isRawJSON(x) ? x.rawJSON : String(x));

export const enc = encodeURIComponent;

// ifMatch is the header that makes a write happen only at version (an ETag).
export const ifMatch = (version) => ({ 'If-Match': `"${version}"` });
