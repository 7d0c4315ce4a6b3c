// Small inline SVG charts (no library): a line chart over time and horizontal bars. Every chart
// is an image with a text summary for screen readers.

const NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const W = 600, H = 200, L = 48, R = 10, T = 10, B = 26;

function fmtAxis(v, unit) {
  const n = Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 10) / 10;
  return n.toLocaleString('en') + (unit || '');
}

// series: [{points: [[Date|string, number|null], …], cls?: 'line'|'line2', name}]
export function lineChart(title, series, { unit = '', yMin = null, yMax = null, dots = null } = {}) {
  const all = series.flatMap(sr => sr.points.filter(p => p[1] !== null && p[1] !== undefined)
    .map(p => [new Date(p[0]).getTime(), Number(p[1])]));
  const fig = document.createElement('figure');
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  fig.append(cap);
  if (!all.length) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = 'No data in this range.';
    fig.append(p);
    return fig;
  }
  const xs = all.map(p => p[0]), ys = all.map(p => p[1]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x0 === x1) { x0 -= 60000; x1 += 60000; }
  let y0 = yMin ?? Math.min(0, ...ys), y1 = yMax ?? Math.max(...ys);
  if (y0 === y1) y1 = y0 + 1;
  const X = t => L + (t - x0) / (x1 - x0) * (W - L - R);
  const Y = v => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const last = ys[ys.length - 1];
  const summary = `${title}: ${all.length} points from ${new Date(x0).toLocaleString('en-GB')} to ${new Date(x1).toLocaleString('en-GB')}, ` +
    `minimum ${fmtAxis(Math.min(...ys), unit)}, maximum ${fmtAxis(Math.max(...ys), unit)}, latest ${fmtAxis(last, unit)}.`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': summary });
  svg.append(s('line', { x1: L, y1: Y(y0), x2: W - R, y2: Y(y0), class: 'axis' }));
  svg.append(s('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }));
  for (const v of [y0, (y0 + y1) / 2, y1]) {
    svg.append(s('text', { x: L - 4, y: Y(v) + 4, 'text-anchor': 'end' }, fmtAxis(v, unit)));
    svg.append(s('line', { x1: L, y1: Y(v), x2: W - R, y2: Y(v), class: 'axis', 'stroke-dasharray': '2 4' }));
  }
  const tfmt = t => { const d = new Date(t); return (x1 - x0 > 2 * 86400000) ? d.toLocaleDateString('en-GB') : d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' }); };
  svg.append(s('text', { x: L, y: H - 6 }, tfmt(x0)));
  svg.append(s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, tfmt(x1)));
  for (const sr of series) {
    const pts = sr.points.filter(p => p[1] !== null && p[1] !== undefined);
    if (!pts.length) continue;
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${X(new Date(p[0]).getTime()).toFixed(1)},${Y(Number(p[1])).toFixed(1)}`).join('');
    svg.append(s('path', { d, class: sr.cls || 'line' }));
    if (pts.length === 1) svg.append(s('circle', { cx: X(new Date(pts[0][0]).getTime()), cy: Y(Number(pts[0][1])), r: 3, class: 'dot-good' }));
  }
  if (dots) {
    for (const [t, good] of dots) svg.append(s('circle', { cx: X(new Date(t).getTime()), cy: H - B - 3, r: 2.5, class: good ? 'dot-good' : 'dot-bad' }));
  }
  fig.append(svg);
  if (series.length > 1) {
    const legend = document.createElement('p');
    legend.className = 'muted';
    legend.textContent = series.map(sr => `${sr.cls === 'line2' ? 'dashed' : 'solid'}: ${sr.name}`).join(' · ');
    fig.append(legend);
  }
  return fig;
}

// rows: [[label, value]]; horizontal bars scaled to the largest.
export function barChart(title, rows, fmt = v => String(v)) {
  const fig = document.createElement('figure');
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  fig.append(cap);
  if (!rows.length) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = 'Nothing yet.';
    fig.append(p);
    return fig;
  }
  const max = Math.max(...rows.map(r => r[1]), 1e-12);
  const rowH = 24, h = rows.length * rowH + 4, labelW = 170;
  const summary = `${title}: ` + rows.map(r => `${r[0]} ${fmt(r[1])}`).join(', ');
  const svg = s('svg', { viewBox: `0 0 ${W} ${h}`, class: 'chart', role: 'img', 'aria-label': summary });
  rows.forEach(([label, v], i) => {
    const y = i * rowH + 2;
    svg.append(s('text', { x: 0, y: y + 15 }, String(label).slice(0, 26) || '(none)'));
    const w = Math.max(1, (v / max) * (W - labelW - 90));
    svg.append(s('rect', { x: labelW, y: y + 3, width: w.toFixed(1), height: rowH - 8, class: 'bar', rx: 3 }));
    svg.append(s('text', { x: labelW + w + 6, y: y + 15 }, fmt(v)));
  });
  fig.append(svg);
  return fig;
}
