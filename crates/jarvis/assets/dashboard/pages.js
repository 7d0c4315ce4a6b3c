// The pages: each mounts itself into a root element and returns {refresh, onEvent, leave}.
// Data regions are refilled in place (focus kept), from the API routes of docs/api.md.
import { api, optional, h, badge, table, unavailable, errorNote, qs,
  fmtNum, fmtPct, fmtMs, fmtUsd, fmtTime } from './api.js';
import { lineChart, barChart } from './charts.js';

// Replaces a region's content, putting focus back on the control that had it (by data-key).
function fill(region, ...nodes) {
  const active = document.activeElement;
  const key = active && region.contains(active) ? active.dataset.key : null;
  region.replaceChildren(...nodes.flat().filter(Boolean));
  if (key) {
    const again = region.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

function debounce(fn, ms) {
  let t = null;
  return () => { if (!t) t = setTimeout(() => { t = null; fn(); }, ms); };
}

// Runs loaders for regions; a failing loader shows its error in its region only.
async function load(region, loader) {
  try { fill(region, await loader()); } catch (e) { fill(region, errorNote(e)); }
}

function section(root, title, id) {
  const region = h('div', { id: id + '-data' });
  root.append(h('section', { 'aria-labelledby': id }, h('h2', { id }, title), region));
  return region;
}

// Breaker transitions heard on the event stream since the dashboard was opened (any page).
const seenTransitions = [];
export function heard(type, data) {
  if (type === 'breaker') {
    seenTransitions.unshift({ at: data.at, breaker: data.name, from: data.from, to: data.to, origin: data.origin });
    seenTransitions.length = Math.min(seenTransitions.length, 200);
  }
}

const hoursAgo = n => new Date(Date.now() - n * 3600000).toISOString();
const link = (href, text) => h('a', { href }, text);

// ---------------------------------------------------------------- overview
const overview = {
  title: 'Overview',
  mount(root) {
    root.append(h('h1', {}, 'Overview'));
    const cards = h('div', { class: 'cards', id: 'overview-cards' });
    root.append(cards);
    const problems = section(root, 'Needs attention', 'overview-problems');
    const busiest = section(root, 'Busiest domains and actions', 'overview-tasks');
    async function refresh() {
      const since = hoursAgo(24);
      const [health, breakers, stats, analytics, usage] = await Promise.allSettled([
        api('/api/v1/health/services'), api('/api/v1/circuit-breakers'),
        api('/api/v1/tasks/history' + qs({ since })), optional('/api/v1/analytics/overview' + qs({ since })),
        api('/api/v1/ai/usage'),
      ]);
      const services = health.status === 'fulfilled' ? Object.entries(health.value.services || {}) : [];
      const open = breakers.status === 'fulfilled' ? Object.entries(breakers.value).filter(([, b]) => b.state !== 'CLOSED') : [];
      const down = services.filter(([, s]) => s.status === 'down');
      let overall = health.status === 'fulfilled' ? health.value.status : 'unknown';
      if (overall === 'pass' && open.length) overall = 'warn';
      let totals = null, range = '24 h';
      if (analytics.status === 'fulfilled' && analytics.value) {
        totals = analytics.value.totals;
        range = analytics.value.since ? `since ${fmtTime(analytics.value.since)}` : 'all time';
      }
      const statsRows = stats.status === 'fulfilled'
        ? (Array.isArray(stats.value) ? stats.value : (stats.value.items || [])) : [];
      if (!totals && stats.status === 'fulfilled') {
        const t = statsRows.reduce((a, r) => ({ total: a.total + r.total, succeeded: a.succeeded + r.succeeded, failed: a.failed + r.failed }), { total: 0, succeeded: 0, failed: 0 });
        totals = { ...t, successRate: t.total ? t.succeeded / t.total : null };
      }
      const spend = usage.status === 'fulfilled' ? usage.value.total.costUsd : null;
      const card = (title, big, ...rest) => h('div', { class: 'card' }, h('h2', {}, title), h('div', { class: 'big' }, big), ...rest);
      fill(cards,
        card('Overall status', badge(overall), h('p', { class: 'muted' }, health.status === 'fulfilled' ? health.value.description : 'service health not available')),
        card('Open circuits', String(open.length), h('p', { class: 'muted' }, link('#/breakers', 'Breakers'))),
        card('Failing services', `${down.length} of ${services.length}`, h('p', { class: 'muted' }, link('#/services', 'Services'))),
        card(`Attempts (${range})`, totals ? fmtNum(totals.total) : '–', h('p', { class: 'muted' }, totals ? `success ${fmtPct(totals.successRate)} · ${fmtNum(totals.failed)} failed` : '')),
        card('AI spend (this month)', fmtUsd(spend), h('p', { class: 'muted' }, link('#/ai', 'AI usage'))));
      const items = [
        ...open.map(([n, b]) => h('li', {}, badge(b.state), ' circuit ', link('#/breakers', n), b.lastFailureReason ? ` — ${b.lastFailureReason}` : '')),
        ...down.map(([n, s]) => h('li', {}, badge('down'), ' service ', link('#/services/' + encodeURIComponent(n), n), ` — ${s.message}`)),
        ...services.filter(([, s]) => s.status !== 'down' && s.prediction && s.prediction.status === 'warn')
          .map(([n, s]) => h('li', {}, badge('warn'), ' circuit trip predicted for ', link('#/services/' + encodeURIComponent(n), n), ` — ${s.prediction.reason || ''}`)),
      ];
      fill(problems, items.length ? h('ul', {}, items) : h('p', { class: 'muted' }, 'Nothing: every circuit is closed and no service is down.'));
      const rows = analytics.status === 'fulfilled' && analytics.value ? analytics.value.items
        : statsRows;
      fill(busiest, table(`Tasks per domain and action (${range})`,
        [{ label: 'Domain / action' }, { label: 'Attempts', num: 1 }, { label: 'Success', num: 1 }, { label: 'p95', num: 1 }],
        rows.slice().sort((a, b) => b.total - a.total).slice(0, 10).map(r => [
          link(`#/tasks/${encodeURIComponent(r.domain)}/${encodeURIComponent(r.action)}`, `${r.domain} / ${r.action}`),
          fmtNum(r.total), fmtPct(r.successRate), fmtMs(r.p95DurationMs)]),
        'No task ran in the last 24 hours.'));
    }
    refresh();
    // Breakers and services change rarely and matter at once; settled tasks can be thousands a
    // second, so they refresh the figures at most every 3 s.
    const soon = debounce(refresh, 300), later = debounce(refresh, 3000);
    return { refresh, onEvent: type => (type === 'task' ? later : soon)() };
  },
};

// ---------------------------------------------------------------- breakers
const breakers = {
  title: 'Circuit breakers',
  mount(root, _args, ctx) {
    root.append(h('h1', {}, 'Circuit breakers'));
    const list = section(root, 'Breakers', 'breakers-list');
    const history = section(root, 'Transitions', 'breakers-transitions');
    async function act(name, action) {
      const what = { open: 'hold the circuit open: no call reaches it until it is closed or reset',
        close: 'close the circuit: calls go through again', reset: 'close the circuit and clear its statistics' }[action];
      if (!await ctx.confirmAction(`${action[0].toUpperCase() + action.slice(1)} ${name}?`, `This will ${what}.`, `${action[0].toUpperCase() + action.slice(1)} ${name}`)) return;
      try {
        await api(`/api/v1/circuit-breakers/${encodeURIComponent(name)}/${action}`, { method: 'POST' });
      } catch (e) { fill(list, errorNote(e)); return; }
      refresh();
    }
    async function refreshList() {
      const all = Object.entries(await api('/api/v1/circuit-breakers'));
      return table('Circuit breakers', [
        { label: 'Name' }, { label: 'State' }, { label: 'Failures in a row', num: 1 }, { label: 'Calls', num: 1 },
        { label: 'Failed', num: 1 }, { label: 'Rejected', num: 1 }, { label: 'Last failure' }, { label: 'Next trial' }, { label: 'Actions' }],
      all.map(([name, b]) => [
        h('span', { 'data-breaker': name }, name),
        h('span', { 'data-breaker-state': name }, badge(b.state), b.forced ? ' (held open)' : ''),
        fmtNum(b.failureCount), fmtNum(b.totalCalls), fmtNum(b.failures), fmtNum(b.rejectedCalls),
        b.lastFailureAt ? `${fmtTime(b.lastFailureAt)}: ${b.lastFailureReason || ''}` : '–',
        b.nextAttemptAt ? fmtTime(b.nextAttemptAt) : '–',
        h('div', { class: 'row-actions' }, ['open', 'close', 'reset'].map(a =>
          h('button', { type: 'button', class: a === 'open' ? 'danger' : null, 'data-key': `${a}:${name}`,
            'aria-label': `${a} breaker ${name}`, onclick: () => act(name, a) }, a[0].toUpperCase() + a.slice(1)))),
      ]), 'No breaker yet: one appears when a service is checked or a task of a domain runs.');
    }
    async function refreshHistory() {
      const data = await optional('/api/v1/analytics/breakers');
      const rows = (data ? data.transitions.slice().reverse() : seenTransitions).slice(0, 50);
      return [data ? null : unavailable('Stored transition history'),
        h('p', { class: 'muted' }, data ? 'Stored transitions, newest first.' : 'Transitions heard live since the dashboard was opened:'),
        table('Breaker transitions', [{ label: 'When' }, { label: 'Breaker' }, { label: 'From' }, { label: 'To' }, { label: 'By' }],
          rows.map(t => [fmtTime(t.at), t.breaker, badge(t.from), badge(t.to), t.reason || t.instance || t.origin || '']), 'No transition yet.')];
    }
    function refresh() { load(list, refreshList); load(history, refreshHistory); }
    refresh();
    const soon = debounce(refresh, 200);
    return {
      refresh,
      onEvent(type) { if (type === 'breaker' || type === 'lagged') soon(); },
    };
  },
};

// The health monitor's trip forecast of a service (absent until it has seen a few checks).
function forecast(p) {
  if (!p) return h('span', { class: 'muted' }, 'not yet');
  if (p.status !== 'warn') return h('span', {}, badge('ok'), ` ${fmtPct(p.tripProbability)}`);
  return h('span', {}, badge('warn'), ' ', p.reason || `trip likely (${fmtPct(p.tripProbability)})`);
}

// ---------------------------------------------------------------- services
const services = {
  title: 'Services',
  mount(root, args) {
    const selected = args[0] || null;
    root.append(h('h1', {}, 'Services'));
    const list = section(root, 'Health', 'services-list');
    const charts = section(root, 'Uptime and latency per hour', 'services-charts');
    const detail = selected ? section(root, `Check history of ${selected}`, 'services-history') : null;
    async function refreshList() {
      const data = await api('/api/v1/health/services');
      const all = Object.entries(data.services || {});
      return [h('p', {}, 'Overall: ', badge(data.status), ' ', data.description),
        table('Monitored services', [{ label: 'Service' }, { label: 'Status' }, { label: 'Message' }, { label: 'Latency', num: 1 },
          { label: 'Uptime 1 h', num: 1 }, { label: 'Uptime 24 h', num: 1 }, { label: 'Circuit' }, { label: 'Trip forecast' }, { label: 'Last checked' }],
        all.map(([name, s]) => [
          link('#/services/' + encodeURIComponent(name), name),
          h('span', { 'data-service-status': name }, badge(s.status)), s.message, fmtMs(s.latency),
          s.uptime.hour === null ? '–' : fmtNum(s.uptime.hour, 2) + ' %', s.uptime.day === null ? '–' : fmtNum(s.uptime.day, 2) + ' %',
          h('span', { 'data-service-breaker': name }, badge(s.breaker)), forecast(s.prediction), fmtTime(s.lastChecked)]),
        'No service is monitored. Register one with PUT /api/v1/services/{name}.')];
    }
    async function refreshCharts() {
      const data = await optional('/api/v1/analytics/services' + qs({ bucket: 'hour' }));
      if (!data) return unavailable('Uptime and latency over time');
      const shown = data.services.filter(s => !selected || s.name === selected).slice(0, 12);
      if (!shown.length) return h('p', { class: 'muted' }, 'No checks in this range.');
      return h('div', { class: 'charts' }, shown.flatMap(s => [
        lineChart(`${s.name}: uptime (%)`, [{ name: 'uptime', points: s.points.map(p => [p.at, p.uptimePct]) }], { unit: ' %', yMin: 0, yMax: 100 }),
        lineChart(`${s.name}: mean latency (ms)`, [{ name: 'latency', points: s.points.map(p => [p.at, p.avgLatencyMs]) }], { unit: ' ms' }),
      ]));
    }
    async function refreshDetail() {
      const data = await api(`/api/v1/health/services/${encodeURIComponent(selected)}/history` + qs({ limit: 200 }));
      const results = data.results.slice().reverse();
      return [
        h('div', { class: 'charts' }, lineChart(`${selected}: latency of the last ${results.length} checks (ms)`,
          [{ name: 'latency', points: results.filter(r => !r.breakerOpen).map(r => [r.timestamp, r.latency]) }],
          { unit: ' ms', dots: results.map(r => [r.timestamp, r.status !== 'down']) })),
        table(`Latest checks of ${selected}`, [{ label: 'When' }, { label: 'Status' }, { label: 'Message' }, { label: 'Latency', num: 1 }, { label: 'Check ID' }],
          data.results.slice(0, 30).map(r => [fmtTime(r.timestamp), badge(r.status), r.message, fmtMs(r.latency), h('code', {}, r.correlationId || '')]), 'No stored checks.'),
      ];
    }
    function refresh() {
      load(list, refreshList);
      load(charts, refreshCharts);
      if (detail) load(detail, refreshDetail);
    }
    refresh();
    const soon = debounce(() => { load(list, refreshList); if (detail) load(detail, refreshDetail); }, 200);
    return { refresh, onEvent(type) { if (type === 'service' || type === 'breaker' || type === 'lagged') soon(); } };
  },
};

// ---------------------------------------------------------------- tasks
const tasks = {
  title: 'Tasks',
  mount(root, args) {
    const [domain, action] = args;
    root.append(h('h1', {}, domain && action ? `Tasks: ${domain} / ${action}` : 'Tasks'));
    const stats = section(root, 'Statistics per domain and action (last 7 days)', 'tasks-stats');
    const detail = domain && action ? section(root, `${domain} / ${action}`, 'tasks-detail') : null;
    const recent = section(root, 'Recent tasks', 'tasks-recent');
    const execs = section(root, 'Recent executions', 'tasks-executions');
    const submit = section(root, 'Submit a task', 'tasks-submit');
    async function refreshStats() {
      // The overview (docs/api.md, GET /api/v1/tasks/history with no domain/action): {since,
      // until, totals, items}; an older server answered the list of items itself.
      const overview = await api('/api/v1/tasks/history' + qs({ since: hoursAgo(24 * 7) }));
      const rows = Array.isArray(overview) ? overview : (overview.items || []);
      return table('Statistics per domain and action', [{ label: 'Domain / action' }, { label: 'Attempts', num: 1 }, { label: 'Succeeded', num: 1 },
        { label: 'Failed', num: 1 }, { label: 'Success', num: 1 }, { label: 'Mean', num: 1 }, { label: 'p95', num: 1 },
        { label: 'Cost / task', num: 1 }, { label: 'Last run' }],
      rows.map(r => [
        h('a', { href: `#/tasks/${encodeURIComponent(r.domain)}/${encodeURIComponent(r.action)}`, 'data-stats': `${r.domain}/${r.action}` }, `${r.domain} / ${r.action}`),
        fmtNum(r.total), fmtNum(r.succeeded), fmtNum(r.failed), fmtPct(r.successRate), fmtMs(r.avgDurationMs),
        fmtMs(r.p95DurationMs), fmtUsd(r.costPerTaskUsd ?? (r.total ? (r.costUsd || 0) / r.total : null)), fmtTime(r.lastExecutedAt)]),
      'No task has run in the last 7 days.');
    }
    async function refreshDetail() {
      const q = { domain, action };
      const [s, rec, series] = await Promise.all([
        api('/api/v1/tasks/history' + qs(q)), api('/api/v1/tasks/recommendations' + qs(q)),
        optional('/api/v1/analytics/tasks' + qs({ ...q, bucket: 'hour', since: hoursAgo(24 * 7) })).catch(e => ({ error: e })),
      ]);
      const out = [];
      if (series && series.error) out.push(errorNote(series.error));
      else if (series) {
        const pts = series.points;
        out.push(h('div', { class: 'charts' },
          lineChart('Attempts per hour', [{ name: 'attempts', points: pts.map(p => [p.at, p.total]) }, { name: 'failed', cls: 'line2', points: pts.map(p => [p.at, p.failed]) }]),
          lineChart('Success rate (%)', [{ name: 'success', points: pts.map(p => [p.at, p.successRate === null ? null : p.successRate * 100]) }], { unit: ' %', yMin: 0, yMax: 100 }),
          lineChart('Duration (ms)', [{ name: 'p50', points: pts.map(p => [p.at, p.p50DurationMs]) }, { name: 'p95', cls: 'line2', points: pts.map(p => [p.at, p.p95DurationMs]) }], { unit: ' ms' }),
          lineChart('Cost per task (USD)', [{ name: 'cost', points: pts.map(p => [p.at, p.costPerTaskUsd]) }])));
      } else out.push(unavailable('Time series of this domain/action'));
      out.push(h('div', { class: 'cards' },
        h('div', { class: 'card' }, h('h2', {}, 'Attempts (all time)'), h('div', { class: 'big' }, fmtNum(s.total)), h('p', { class: 'muted' }, `success ${fmtPct(s.successRate)}`)),
        h('div', { class: 'card' }, h('h2', {}, 'Duration p50 / p95 / p99'), h('div', { class: 'big' }, fmtMs(s.p95DurationMs)), h('p', { class: 'muted' }, `${fmtMs(s.p50DurationMs)} / ${fmtMs(s.p95DurationMs)} / ${fmtMs(s.p99DurationMs)}`)),
        h('div', { class: 'card' }, h('h2', {}, 'Cost per task'), h('div', { class: 'big' }, fmtUsd(s.costPerTaskUsd)), h('p', { class: 'muted' }, `total ${fmtUsd(s.totalCostUsd)}`))));
      out.push(h('h3', {}, 'Failure groups'));
      const groups = series && !series.error && series.failureGroups ? series.failureGroups.map(g => ({ group: g.group, reason: g.template, example: g.example, count: g.count }))
        : (s.commonFailureReasons || []);
      out.push(table('Failure groups', [{ label: 'Reason' }, { label: 'Count', num: 1 }, { label: 'Example' }, { label: 'Group' }],
        groups.map(g => [g.reason, fmtNum(g.count), g.example || '', h('code', {}, g.group || '')]), 'No failures.'));
      out.push(h('h3', {}, 'Learned parameters and recommendation'));
      out.push(h('p', {}, `Source: ${rec.source}; confidence ${fmtPct(rec.confidence)}; based on ${fmtNum(rec.basedOnRuns)} runs; ` +
        `timeout ${rec.timeoutMs ? fmtMs(rec.timeoutMs) : 'none learned'} (configured ${fmtMs(rec.configuredTimeoutMs)}).`));
      if (!rec.timeoutMs && rec.timeoutReason) out.push(h('p', { class: 'muted' }, rec.timeoutReason));
      if (rec.timeoutWarning) out.push(h('p', { class: 'note' }, rec.timeoutWarning.message));
      out.push(table('Recommended parameters', [{ label: 'Parameter' }, { label: 'Value' }, { label: 'Runs', num: 1 }, { label: 'Success', num: 1 }],
        Object.entries(rec.parameters || {}).map(([k, v]) => {
          const e = (rec.estimates || []).find(x => x.key === k) || {};
          return [k, h('code', {}, JSON.stringify(v)), fmtNum(e.runs), fmtPct(e.successRate)];
        }), 'Nothing learned yet.'));
      if (Object.keys(s.optimalParameters || {}).length) {
        out.push(h('p', {}, `Optimal parameters (${s.optimalParametersSource}): `, h('code', {}, JSON.stringify(s.optimalParameters))));
      }
      return out;
    }
    async function refreshRecent() {
      const page = await api('/api/v1/tasks' + qs({ limit: 20, domain, action }));
      return table('Recent tasks', [{ label: 'Created' }, { label: 'Domain / action' }, { label: 'Status' }, { label: 'Attempts', num: 1 }, { label: 'Duration', num: 1 }, { label: 'Error' }, { label: 'Trace' }],
        page.items.map(t => [fmtTime(t.createdAt), `${t.domain} / ${t.action}`, h('span', { 'data-task-status': t.taskId }, badge(t.status)),
          `${t.attempts} of ${t.maxAttempts}`, fmtMs(t.durationMs), t.error || '',
          link('#/trace/' + encodeURIComponent(t.correlationId), t.correlationId)]), 'No task yet.');
    }
    async function refreshExecs() {
      const page = await api('/api/v1/tasks/executions' + qs({ limit: 20, domain, action }));
      return table('Recent executions', [{ label: 'Finished' }, { label: 'Domain / action' }, { label: 'Attempt', num: 1 }, { label: 'Result' }, { label: 'Duration', num: 1 }, { label: 'Cost', num: 1 }, { label: 'Failure' }, { label: 'Instance' }],
        page.items.map(r => [fmtTime(r.finishedAt), `${r.domain} / ${r.action}`, fmtNum(r.attempt), badge(r.success ? 'succeeded' : 'failed'),
          fmtMs(r.durationMs), fmtUsd(r.costUsd), r.failureReason || '', r.instanceId]), 'No execution yet.');
    }
    // The form is built once: a refresh never touches what a person is typing.
    const result = h('div', { role: 'status', 'aria-live': 'polite' });
    const form = h('form', { id: 'submit-form' },
      h('div', { class: 'grid2' },
        h('div', {}, h('label', { for: 'f-domain' }, 'Domain'), h('input', { id: 'f-domain', name: 'domain', required: true, value: domain || 'noop' })),
        h('div', {}, h('label', { for: 'f-action' }, 'Action'), h('input', { id: 'f-action', name: 'action', required: true, value: action || 'run' }))),
      h('label', { for: 'f-parameters' }, 'Parameters (JSON object)'),
      h('textarea', { id: 'f-parameters', name: 'parameters', spellcheck: 'false' }, '{}'),
      h('div', { class: 'grid2' },
        h('div', {}, h('label', { for: 'f-attempts' }, 'Maximum attempts'), h('input', { id: 'f-attempts', name: 'maxAttempts', type: 'number', min: '1', max: '100', value: '3' })),
        h('div', {}, h('label', { class: 'inline', for: 'f-learned' }, h('input', { id: 'f-learned', name: 'useLearned', type: 'checkbox' }), 'Use learned parameters'))),
      h('p', {}, h('button', { type: 'submit', class: 'primary' }, 'Submit task')), result);
    form.addEventListener('submit', async ev => {
      ev.preventDefault();
      const f = new FormData(form);
      let parameters;
      try { parameters = JSON.parse(f.get('parameters') || '{}'); } catch (e) { fill(result, h('p', { class: 'error' }, `Parameters: ${e.message}`)); return; }
      try {
        const body = { domain: f.get('domain'), action: f.get('action'), parameters, maxAttempts: Number(f.get('maxAttempts')) || 3 };
        if (f.get('useLearned')) body.useLearned = true;
        const t = await api('/api/v1/tasks', { method: 'POST', body });
        fill(result, h('p', {}, 'Submitted task ', h('code', {}, t.taskId), ` (${t.status}). `, link('#/trace/' + encodeURIComponent(t.correlationId), 'Trace ' + t.correlationId)));
        refresh();
      } catch (e) { fill(result, h('p', { class: 'error' }, `${e.code}: ${e.message}`)); }
    });
    submit.append(form);
    function refresh() {
      load(stats, refreshStats);
      if (detail) load(detail, refreshDetail);
      load(recent, refreshRecent);
      load(execs, refreshExecs);
    }
    refresh();
    const soon = debounce(refresh, 2000);
    return { refresh, onEvent(type) { if (type === 'task' || type === 'lagged') soon(); } };
  },
};

// ---------------------------------------------------------------- AI
const ai = {
  title: 'AI',
  mount(root) {
    root.append(h('h1', {}, 'AI usage and budgets'));
    const spend = section(root, 'Spend this month', 'ai-spend');
    const hourly = section(root, 'Spend per hour (last 48 hours)', 'ai-hourly');
    const budgets = section(root, 'Budgets', 'ai-budgets');
    const cols = [{ label: 'Key' }, { label: 'Requests', num: 1 }, { label: 'Errors', num: 1 }, { label: 'Prompt tokens', num: 1 }, { label: 'Completion tokens', num: 1 }, { label: 'Cost', num: 1 }];
    const rowOf = r => [r.key || '(none)', fmtNum(r.requests), fmtNum(r.errors), fmtNum(r.promptTokens), fmtNum(r.completionTokens), fmtUsd(r.costUsd)];
    async function refreshSpend() {
      const [byModel, byDomain] = await Promise.all([api('/api/v1/ai/usage?by=model'), api('/api/v1/ai/usage?by=domain')]);
      return [h('p', {}, `Total: ${fmtUsd(byModel.total.costUsd)} over ${fmtNum(byModel.total.requests)} requests (${fmtNum(byModel.total.errors)} errors).`),
        h('div', { class: 'charts' },
          barChart('Cost per model (USD)', byModel.rows.map(r => [r.key, r.costUsd]), fmtUsd),
          barChart('Cost per domain (USD)', byDomain.rows.map(r => [r.key || '(none)', r.costUsd]), fmtUsd)),
        h('h3', {}, 'Per model'), table('AI usage per model', cols, byModel.rows.map(rowOf), 'No AI call this month.'),
        h('h3', {}, 'Per domain'), table('AI usage per domain', cols, byDomain.rows.map(rowOf), 'No AI call this month.')];
    }
    async function refreshHourly() {
      const since = new Date(Date.now() - 48 * 3600000); since.setUTCMinutes(0, 0, 0);
      const data = await api('/api/v1/ai/usage' + qs({ by: 'hour', since: since.toISOString() }));
      return h('div', { class: 'charts' },
        lineChart('Cost per hour (USD)', [{ name: 'cost', points: data.rows.map(r => [r.key, r.costUsd]) }]),
        lineChart('Requests and errors per hour', [{ name: 'requests', points: data.rows.map(r => [r.key, r.requests]) }, { name: 'errors', cls: 'line2', points: data.rows.map(r => [r.key, r.errors]) }]));
    }
    async function refreshBudgets() {
      const data = await api('/api/v1/ai/budgets');
      const list = Array.isArray(data) ? data : (data.budgets || []);
      return table('AI budgets', [{ label: 'Scope' }, { label: 'Daily', num: 1 }, { label: 'Spent today', num: 1 }, { label: 'Monthly', num: 1 }, { label: 'Spent this month', num: 1 }, { label: 'State' }],
        list.map(b => [b.scope, fmtUsd(b.dailyUsd), fmtUsd(b.spentTodayUsd), fmtUsd(b.monthlyUsd), fmtUsd(b.spentThisMonthUsd), badge(b.exhausted ? 'exhausted' : 'ok')]),
        'No budget is configured ([[ai.budgets]] in the config file).');
    }
    function refresh() { load(spend, refreshSpend); load(hourly, refreshHourly); load(budgets, refreshBudgets); }
    refresh();
    return { refresh };
  },
};

// ---------------------------------------------------------------- trace
const trace = {
  title: 'Trace',
  mount(root, args) {
    const id = args[0] || '';
    root.append(h('h1', {}, 'Trace a request'));
    const form = h('form', { class: 'inline', role: 'search' },
      h('div', {}, h('label', { for: 'trace-id' }, 'Correlation ID'), h('input', { id: 'trace-id', name: 'id', value: id, required: true, size: '30', placeholder: 'req-…' })),
      h('button', { type: 'submit', class: 'primary' }, 'Show timeline'));
    form.addEventListener('submit', ev => {
      ev.preventDefault();
      const v = new FormData(form).get('id').trim();
      if (v) location.hash = '#/trace/' + encodeURIComponent(v);
    });
    root.append(form);
    const out = section(root, id ? `Timeline of ${id}` : 'Timeline', 'trace-timeline');
    if (!id) { fill(out, h('p', { class: 'muted' }, 'Enter a correlation ID (X-Correlation-ID of a request, the correlationId of a task).')); return {}; }
    async function fromTraceApi() {
      try { return await api('/api/v1/traces/' + encodeURIComponent(id)); } catch (e) {
        if (e.missingRoute) return undefined;
        if (e.status === 404) return null;
        throw e;
      }
    }
    // Without the trace API: the request's tasks and their attempts (execution records).
    async function fromTasks() {
      const [t, x] = await Promise.all([
        api('/api/v1/tasks' + qs({ correlationId: id, includeSystem: 'true', limit: 100 })),
        api('/api/v1/tasks/executions' + qs({ correlationId: id, includeSystem: 'true', limit: 500 })),
      ]);
      const events = [];
      for (const task of t.items) {
        events.push({ at: task.createdAt, kind: 'task', taskId: task.taskId, summary: `task ${task.domain}/${task.action} submitted`, status: null });
        if (task.finishedAt) events.push({ at: task.finishedAt, kind: 'task', taskId: task.taskId, summary: `task ${task.status}`, status: task.status });
      }
      for (const r of x.items) {
        events.push({ at: r.startedAt, kind: 'attempt', taskId: r.taskId, attempt: r.attempt, instance: r.instanceId, durationMs: r.durationMs,
          status: r.success ? 'succeeded' : 'failed', summary: `attempt ${r.attempt} of ${r.domain}/${r.action}${r.failureReason ? ': ' + r.failureReason : ''}` });
      }
      events.sort((a, b) => new Date(a.at) - new Date(b.at));
      return events;
    }
    async function refresh() {
      await load(out, async () => {
        let data = await fromTraceApi();
        let note = null;
        if (data === undefined) {
          note = h('p', { class: 'note' }, 'The trace API is not on this server yet: this timeline is built from the tasks and execution records of the ID.');
          data = { events: await fromTasks() };
        }
        if (!data || !data.events.length) return h('p', { class: 'muted' }, `Nothing is known of ${id}.`);
        const t0 = new Date(data.events[0].at).getTime();
        return [note, h('ol', { class: 'timeline', 'aria-label': `Timeline of ${id}` }, data.events.map(e => {
          const cls = ['failed', 'failure', 'error', 'down', 'OPEN'].includes(e.status) ? 'bad' : ['succeeded', 'success', 'ok', 'up'].includes(e.status) ? 'good' : '';
          return h('li', { class: cls, 'data-kind': e.kind },
            h('div', { class: 'when' }, `+${fmtNum(new Date(e.at).getTime() - t0)} ms · ${fmtTime(e.at)}`),
            h('div', {}, badge(e.kind), ' ', e.summary, e.durationMs !== null && e.durationMs !== undefined ? ` (${fmtMs(e.durationMs)})` : '',
              e.status ? [' ', badge(e.status)] : '', e.instance ? h('span', { class: 'muted' }, ` on ${e.instance}`) : ''),
            e.detail ? h('details', {}, h('summary', {}, 'Detail'), h('pre', {}, typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail, null, 2))) : null);
        }))];
      });
    }
    refresh();
    const soon = debounce(refresh, 500);
    return { refresh, onEvent(type) { if (type === 'task') soon(); } };
  },
};

export const pages = { overview, breakers, services, tasks, ai, trace };
