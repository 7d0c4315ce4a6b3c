// Calls to Jarvis's API with the session cookie, the CSRF header on state changes, and a few
// DOM and formatting helpers the pages share. See docs/api.md, Dashboard.

let csrf = null;
let onSignedOut = () => {};

export function setCsrf(token) { csrf = token; }
export function whenSignedOut(fn) { onSignedOut = fn; }

export class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  // A route this server does not have (yet): the analytics and trace APIs arrive separately.
  get missingRoute() { return this.status === 404 && /no such route/.test(this.message); }
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-Jarvis-CSRF'] = csrf;
  const response = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let json = null;
  try { json = await response.json(); } catch { json = null; }
  if (!response.ok || !json || json.success === false) {
    const err = json && json.error ? json.error : {};
    const e = new HttpError(response.status, err.code || 'http_' + response.status,
      err.message || response.statusText || 'request failed');
    if (response.status === 401 && !path.startsWith('/ui/')) onSignedOut();
    throw e;
  }
  return json.data;
}

// The data of a route that may be missing on this server: null when it answers 404 "no such route".
export async function optional(path) {
  try { return await api(path); } catch (e) {
    if (e instanceof HttpError && e.missingRoute) return null;
    throw e;
  }
}

// h('p', {class: 'x'}, 'text', child…): an element; text is never parsed as HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}
export function fmtPct(rate) { return rate === null || rate === undefined ? '–' : fmtNum(rate * 100, 1) + ' %'; }
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  return ms >= 10000 ? fmtNum(ms / 1000, 1) + ' s' : fmtNum(ms) + ' ms';
}
export function fmtUsd(v) { return v === null || v === undefined ? '–' : '$' + Number(v).toFixed(v < 1 ? 4 : 2); }
export function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString('en-GB', { hour12: false });
}

const GOOD = new Set(['CLOSED', 'up', 'pass', 'succeeded', 'success', 'ok']);
const BAD = new Set(['OPEN', 'down', 'fail', 'failed', 'failure', 'error']);
export function badge(text) {
  const cls = GOOD.has(text) ? 'good' : BAD.has(text) ? 'bad' : (text === 'HALF_OPEN' || text === 'degraded' || text === 'warn') ? 'warn' : '';
  return h('span', { class: 'badge ' + cls }, text);
}

// A table in a keyboard-scrollable region: columns [{label, num?}], rows of cells.
export function table(label, columns, rows, empty = 'Nothing yet.') {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'scroll', role: 'region', 'aria-label': label, tabindex: '0' },
    h('table', {},
      h('caption', { class: 'sr-only' }, label),
      h('thead', {}, h('tr', {}, columns.map(c => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
      h('tbody', {}, rows.map(r => h('tr', {}, r.map((cell, i) => h('td', { class: columns[i] && columns[i].num ? 'num' : null }, cell)))))));
}

export function unavailable(what) {
  return h('p', { class: 'note' }, `${what} is not available on this server yet (its API answered 404).`);
}

export function errorNote(e) {
  return h('p', { class: 'error', role: 'alert' }, `Could not load: ${e.message}`);
}

export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? '?' + s : '';
}
