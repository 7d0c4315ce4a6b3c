// End-to-end scenarios of the dashboard in headless Chromium (Debian's chromium, driven by
// playwright-core; no browser download), with axe-core on every page. Started by run.sh, which
// gives JARVIS_URL (a running `jarvis serve`), JARVIS_TOKEN and E2E_OUT (screenshots).
//
// The "flaky" service and the "e2e" agent are this file's own HTTP server on 127.0.0.1, made to
// fail on demand. Prints one line per check and exits 1 when any failed.
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const BASE = process.env.JARVIS_URL.replace(/\/$/, '');
const TOKEN = process.env.JARVIS_TOKEN;
const OUT = process.env.E2E_OUT || path.join(path.dirname(new URL(import.meta.url).pathname), 'out');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LIVE_MS = 15000; // "within seconds": well under the page's 10 s refresh plus a check cycle
fs.mkdirSync(OUT, { recursive: true });

let passed = 0, failed = 0;
const failures = [];
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   - ${name}`);
  } catch (e) {
    failed++;
    failures.push(name);
    console.log(`FAIL - ${name}\n       ${String(e && e.stack || e).split('\n').slice(0, 6).join('\n       ')}`);
  }
}
function assert(cond, message) { if (!cond) throw new Error(message); }

// ---- the service and agent this test controls
let healthy = true;
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', c => { body += c; });
  req.on('end', () => {
    if (req.url === '/health') {
      res.writeHead(healthy ? 200 : 503, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ status: healthy ? 'ok' : 'down' }));
      return;
    }
    if (req.url === '/agent' && req.method === 'POST') {
      const call = JSON.parse(body || '{}');
      const fail = call.parameters && call.parameters.fail;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(fail
        ? { success: false, error: `e2e failure on attempt ${call.attempt}` }
        : { success: true, output: { attempt: call.attempt }, costUsd: 0.0005, impactScore: 80 }));
      return;
    }
    res.writeHead(404);
    res.end();
  });
});
await new Promise(r => server.listen(0, '127.0.0.1', r));
const SERVICE = `http://127.0.0.1:${server.address().port}`;

async function apiCall(method, p, body, headers = {}) {
  const r = await fetch(BASE + p, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(json)}`);
  return json.data;
}

async function waitFor(fn, what, timeout = LIVE_MS) {
  const until = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const consoleErrors = [];
page.on('console', m => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', e => consoleErrors.push(String(e)));

// axe-core on the page as it is: no serious or critical violation. Evaluated through the
// DevTools protocol, so the page's Content-Security-Policy stays in force.
async function axe(name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical');
  assert(!bad.length, `${name}: ` + bad.map(v => `${v.impact} ${v.id}: ${v.help} (${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; ')})`).join('\n'));
}
async function shot(name) { await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true }); }
async function visit(hash, name, ready) {
  await page.evaluate(h => { location.hash = h; }, hash);
  if (ready) await ready();
  await page.waitForTimeout(300); // let the last region settle before the screenshot; not an assertion
  await shot(name);
  await axe(name);
}

try {
  await check('first load of the dashboard is under 300 KB transferred', async () => {
    let bytes = 0;
    const count = r => r.request().sizes().then(s => { bytes += s.responseBodySize + s.responseHeadersSize; }).catch(() => {});
    const pending = [];
    const listener = r => pending.push(count(r));
    page.on('response', listener);
    await page.goto(BASE + '/', { waitUntil: 'load' });
    await page.locator('#login-form').waitFor();
    await Promise.all(pending);
    page.off('response', listener);
    console.log(`       first load: ${bytes} bytes`);
    assert(bytes > 10000 && bytes < 300 * 1024, `first load was ${bytes} bytes`);
  });

  await check('sign-in page: a wrong token is refused; accessible', async () => {
    await shot('login');
    await axe('login');
    await page.fill('#token', 'not-the-token');
    await page.click('#login-form button[type=submit]');
    await page.locator('#login-error', { hasText: 'not valid' }).waitFor();
  });

  await check('sign in with the token: the overview shows; no token in the URL or cookie', async () => {
    await page.fill('#token', TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.locator('#nav').waitFor();
    await page.locator('#overview-cards .card').first().waitFor();
    assert(!page.url().includes(TOKEN), 'token in the URL');
    const cookies = await context.cookies();
    const session = cookies.find(c => c.name === 'jarvis_session');
    assert(session && session.httpOnly && session.sameSite === 'Strict', 'an HttpOnly SameSite=Strict session cookie');
    assert(!cookies.some(c => c.value.includes(TOKEN)), 'token in a cookie');
    await page.locator('#live', { hasText: 'live' }).waitFor();
  });

  // What the scenarios watch: a service this test can make fail, an agent whose tasks fail on demand.
  await apiCall('PUT', '/api/v1/services/flaky', { url: `${SERVICE}/health`, intervalMs: 200, timeoutMs: 1000 });
  await apiCall('PUT', '/api/v1/agents/e2e', { url: `${SERVICE}/agent`, timeoutMs: 5000 });

  await check('a service that starts failing turns red and its circuit shows OPEN, without a reload', async () => {
    await page.evaluate(() => { location.hash = '#/services'; window.__noReload = 'still here'; });
    await page.locator('[data-service-status="flaky"] .badge', { hasText: /^up$/ }).waitFor({ timeout: LIVE_MS });
    healthy = false;
    const started = Date.now();
    await page.locator('[data-service-status="flaky"] .badge.bad', { hasText: /^down$/ }).waitFor({ timeout: LIVE_MS });
    await page.locator('[data-service-breaker="flaky"] .badge.bad', { hasText: /^OPEN$/ }).waitFor({ timeout: LIVE_MS });
    console.log(`       down and OPEN ${Date.now() - started} ms after the service began failing`);
    assert(await page.evaluate(() => window.__noReload) === 'still here', 'the page was reloaded');
    await shot('services-failing');
    await axe('services-failing');
  });

  await check('breakers page: "reset" (confirmed in a dialog) closes the circuit', async () => {
    await visit('#/breakers', 'breakers-open', () =>
      page.locator('[data-breaker-state="flaky"] .badge', { hasText: /^OPEN$/ }).waitFor({ timeout: LIVE_MS }));
    // The transition to OPEN happened while another page was shown: heard live all the same.
    await page.locator('#breakers-transitions-data tr', { hasText: 'flaky' }).filter({ hasText: 'OPEN' }).first().waitFor({ timeout: LIVE_MS });
    healthy = true;
    await page.click('button[aria-label="reset breaker flaky"]');
    const dialog = page.locator('dialog#confirm');
    await dialog.waitFor();
    await shot('breakers-confirm');
    await axe('breakers-confirm');
    await page.click('#confirm-ok');
    await page.locator('[data-breaker-state="flaky"] .badge', { hasText: /^CLOSED$/ }).waitFor({ timeout: LIVE_MS });
    const b = await apiCall('GET', '/api/v1/circuit-breakers/flaky');
    assert(b.flaky.state === 'CLOSED', `the API says ${b.flaky.state}`);
  });

  await check('the service turns green again once it answers', async () => {
    await page.evaluate(() => { location.hash = '#/services/flaky'; });
    await page.locator('[data-service-status="flaky"] .badge.good', { hasText: /^up$/ }).waitFor({ timeout: LIVE_MS });
    await shot('service-history');
    await axe('service-history');
  });

  const traceId = `e2e-trace-${Date.now()}`;
  await check('the tasks page shows the statistics of the tasks this test submitted', async () => {
    for (let i = 0; i < 3; i++) {
      await apiCall('POST', '/api/v1/tasks?wait=true', { domain: 'e2e', action: 'work', parameters: { n: i } });
    }
    await apiCall('POST', '/api/v1/tasks?wait=true', { domain: 'e2e', action: 'work', parameters: { fail: true }, maxAttempts: 2 },
      { 'X-Correlation-ID': traceId });
    // And one through the page's own form (cookie + CSRF header).
    await page.evaluate(() => { location.hash = '#/tasks'; });
    await page.fill('#f-domain', 'e2e');
    await page.fill('#f-action', 'work');
    await page.fill('#f-parameters', '{"n": 99}');
    await page.click('#submit-form button[type=submit]');
    await page.locator('#submit-form [role=status]', { hasText: 'Submitted task' }).waitFor();
    // 3 + 1 succeeded, 2 failed attempts: 6 attempts of e2e/work, seen without a reload.
    const row = page.locator('tr', { has: page.locator('[data-stats="e2e/work"]') });
    await waitFor(async () => (await row.count()) && /\b6\b.*\b4\b.*\b2\b/.test(await row.innerText()), 'e2e/work: 6 attempts, 4 succeeded, 2 failed');
    await shot('tasks');
    await axe('tasks');
    await visit('#/tasks/e2e/work', 'tasks-detail', () =>
      page.locator('#tasks-detail-data', { hasText: 'e2e failure on attempt' }).waitFor({ timeout: LIVE_MS }));
  });

  await check('the trace page shows a submitted task\'s timeline with its attempts', async () => {
    await visit('#/trace/' + traceId, 'trace', () => page.locator('.timeline li[data-kind="attempt"]').nth(1).waitFor({ timeout: LIVE_MS }));
    const attempts = await page.locator('.timeline li[data-kind="attempt"]').count();
    assert(attempts === 2, `expected 2 attempts, saw ${attempts}`);
    const usesTraceApi = !(await page.locator('text=The trace API is not on this server yet').count());
    console.log(`       timeline from ${usesTraceApi ? 'the trace API' : 'tasks and execution records (the trace API is not on this server)'}`);
  });

  await check('overview, AI pages: accessible; light and dark; a phone\'s width', async () => {
    await visit('#/overview', 'overview', () => page.locator('#overview-cards .card').first().waitFor());
    await visit('#/ai', 'ai', () => page.locator('#ai-budgets-data > *').first().waitFor());
    await page.click('#theme'); // system -> light
    await page.click('#theme'); // light -> dark
    assert(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'dark theme chosen');
    await visit('#/overview', 'overview-dark', () => page.locator('#overview-cards .card').first().waitFor());
    await visit('#/services/flaky', 'services-dark', () => page.locator('[data-service-status="flaky"]').waitFor());
    await page.setViewportSize({ width: 390, height: 844 });
    await visit('#/tasks', 'tasks-phone', () => page.locator('[data-stats="e2e/work"]').waitFor());
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `the page is ${overflow}px wider than a phone's screen`);
    await page.click('#theme'); // dark -> system
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await check('keyboard: the skip link is the first stop and moves focus to the content', async () => {
    await page.goto('about:blank');
    await page.goto(BASE + '/#/overview');
    await page.locator('#overview-cards .card').first().waitFor();
    await page.keyboard.press('Tab');
    const first = await page.evaluate(() => document.activeElement.outerHTML.slice(0, 80));
    assert(first.includes('class="skip"'), `first Tab stop is the skip link, not ${first}`);
    await page.keyboard.press('Enter');
    await waitFor(() => page.evaluate(() => location.hash === '#main' || document.activeElement.id === 'main'), 'focus on main', 2000);
  });

  await check('signing out removes access (the old cookie is refused too)', async () => {
    const cookie = (await context.cookies()).find(c => c.name === 'jarvis_session');
    await page.evaluate(() => { location.hash = '#/overview'; });
    await page.click('#signout');
    await page.locator('#login-form').waitFor();
    const status = await page.evaluate(() => fetch('/api/v1/circuit-breakers').then(r => r.status));
    assert(status === 401, `after sign-out the API answered ${status}`);
    const r = await fetch(BASE + '/api/v1/circuit-breakers', { headers: { Cookie: `jarvis_session=${cookie.value}` } });
    assert(r.status === 401, `the old cookie got ${r.status}`);
    await shot('signed-out');
  });

  await check('no error in the browser console (CSP violations included)', async () => {
    const relevant = consoleErrors.filter(e => !/401|Unauthorized|503|Failed to load resource/.test(e));
    assert(!relevant.length, relevant.join('\n'));
  });
} finally {
  await browser.close();
  server.close();
}

console.log(`e2e: ${passed} passed, ${failed} failed${failed ? ' (' + failures.join('; ') + ')' : ''}; screenshots in ${OUT}`);
process.exit(failed ? 1 : 0);
