// The dashboard's shell: sign-in, navigation (hash routes), live events (server-sent events,
// with a periodic refresh as the fallback), the theme toggle and the confirmation dialog.
import { api, setCsrf, whenSignedOut, h } from './api.js';
import { pages, heard } from './pages.js';

const $ = id => document.getElementById(id);
const REFRESH_MS = 10000;
let current = null;      // {name, view}
let events = null;       // EventSource
let refreshTimer = null;
let signedIn = false;

// Theme: the system's unless chosen; the choice is kept in this browser.
const THEMES = ['system', 'light', 'dark'];
function applyTheme(t) {
  if (t === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  $('theme').textContent = 'Theme: ' + t;
  $('theme').setAttribute('aria-label', `Theme: ${t} (change)`);
}
applyTheme(localStorage.getItem('jarvis-theme') || 'system');
$('theme').addEventListener('click', () => {
  const now = localStorage.getItem('jarvis-theme') || 'system';
  const next = THEMES[(THEMES.indexOf(now) + 1) % THEMES.length];
  localStorage.setItem('jarvis-theme', next);
  applyTheme(next);
});

// Asks before an operator action; resolves true when confirmed.
export function confirmAction(title, text, okLabel) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  return new Promise(resolve => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

function showLogin(message) {
  signedIn = false;
  setCsrf(null);
  stopLive();
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('page').replaceChildren();
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  document.title = 'Sign in · Jarvis';
  $('token').focus();
}

function showApp(session) {
  signedIn = true;
  setCsrf(session.csrf);
  $('login').hidden = true;
  $('nav').hidden = false;
  $('signout').hidden = false;
  startLive();
  route();
}

whenSignedOut(() => { if (signedIn) showLogin('Your session has ended. Sign in again.'); });

$('login-form').addEventListener('submit', async ev => {
  ev.preventDefault();
  const token = $('token').value;
  $('login-error').textContent = '';
  try {
    const session = await api('/ui/login', { method: 'POST', body: { token } });
    $('token').value = '';
    showApp(session);
  } catch (e) {
    $('login-error').textContent = e.status === 401 ? 'That token is not valid.' : `Sign-in failed: ${e.message}`;
    $('token').select();
  }
});

$('signout').addEventListener('click', async () => {
  try { await api('/ui/logout', { method: 'POST' }); } catch { /* signed out either way */ }
  showLogin('Signed out.');
});

// Live events: each page decides what an event changes; a lagged stream reloads the page's data.
function startLive() {
  stopLive();
  events = new EventSource('/api/v1/events');
  const live = $('live');
  events.addEventListener('hello', () => { live.textContent = 'live'; live.classList.add('on'); });
  for (const type of ['breaker', 'service', 'task', 'lagged']) {
    events.addEventListener(type, ev => {
      let data = null;
      try { data = JSON.parse(ev.data); } catch { return; }
      heard(type, data);
      if (current && current.view.onEvent) current.view.onEvent(type, data);
    });
  }
  events.onerror = () => {
    live.textContent = 'reconnecting…';
    live.classList.remove('on');
    // A stream refused because the session ended: find out, and show the sign-in form.
    api('/ui/session').catch(() => { if (signedIn) showLogin('Your session has ended. Sign in again.'); });
  };
  refreshTimer = setInterval(() => {
    if (current && current.view.refresh && !document.hidden) current.view.refresh();
  }, REFRESH_MS);
}

function stopLive() {
  if (events) { events.close(); events = null; }
  if (refreshTimer) { clearInterval(refreshTimer); refreshTimer = null; }
  $('live').textContent = 'not connected';
  $('live').classList.remove('on');
}

function route() {
  if (!signedIn) return;
  const [name, ...rest] = (location.hash.replace(/^#\/?/, '') || 'overview').split('/');
  const page = pages[name] || pages.overview;
  const key = pages[name] ? name : 'overview';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === '#/' + key) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (current && current.view.leave) current.view.leave();
  const root = h('div', {});
  $('page').replaceChildren(root);
  document.title = `${page.title} · Jarvis`;
  current = { name: key, view: page.mount(root, rest.map(decodeURIComponent), { confirmAction }) };
}

window.addEventListener('hashchange', () => {
  route();
  $('main').focus();
});

api('/ui/session').then(showApp, () => showLogin());
