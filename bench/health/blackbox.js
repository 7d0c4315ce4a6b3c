#!/usr/bin/env node
// The peer side of bench/health: Prometheus's blackbox exporter (Debian package
// prometheus-blackbox-exporter) probing the same nginx target, N targets each once a second.
//
// In production Prometheus drives the exporter by scraping /probe?target=…; here a small
// driver does the same calls on the same schedule (every target once a second, random phase,
// 1 s timeout) so that only the exporter's own work is compared. The driver's CPU is reported
// separately and is not charged to the exporter.
//
//   node bench/health/blackbox.js --targets 2000 --seconds 60 --target-port <nginx port>
//
// Prints one JSON line: probes/s answered, share successful, exporter CPU (cores, ms per probe)
// and RSS. The exporter opens a new connection per probe (it has no connection reuse).

'use strict';
const http = require('http');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const targets = Number(arg('targets', 2000));
const seconds = Number(arg('seconds', 60));
const warmup = Number(arg('warmup', 5));
const targetPort = Number(arg('target-port', 0));
const work = arg('work', fs.mkdtempSync(path.join(os.tmpdir(), 'bbx-')));
if (!targetPort) throw new Error('--target-port is required (a running nginx)');

const TICK = 100; // USER_HZ on Linux
function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop().trim().split(/\s+/);
  return (Number(f[11]) + Number(f[12])) / TICK;
}
function rssMiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
  return m ? Number(m[1]) / 1024 : 0;
}

const port = 20000 + Math.floor(Math.random() * 20000);
fs.writeFileSync(
  path.join(work, 'blackbox.yml'),
  'modules:\n  http_2xx:\n    prober: http\n    timeout: 1s\n    http:\n      preferred_ip_protocol: ip4\n',
);
const exporter = spawn(
  'prometheus-blackbox-exporter',
  [`--config.file=${path.join(work, 'blackbox.yml')}`, `--web.listen-address=127.0.0.1:${port}`],
  { stdio: ['ignore', 'ignore', fs.openSync(path.join(work, 'blackbox.stderr'), 'w')] },
);

const agent = new http.Agent({ keepAlive: true, maxSockets: 4096 });
const stats = { sent: 0, ok: 0, failed: 0, errors: 0, measuring: false };

function probe(i) {
  const url = `/probe?module=http_2xx&target=${encodeURIComponent(`http://127.0.0.1:${targetPort}/s/${i}`)}`;
  const counting = stats.measuring;
  if (counting) stats.sent++;
  const req = http.get({ host: '127.0.0.1', port, path: url, agent, timeout: 1500 }, (res) => {
    let body = '';
    res.on('data', (c) => (body += c));
    res.on('end', () => {
      if (!counting) return;
      if (/^probe_success 1$/m.test(body)) stats.ok++;
      else stats.failed++;
    });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => {
    if (counting) stats.errors++;
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

(async () => {
  // Wait for the exporter.
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((r) =>
      http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => { res.resume(); r(true); })
        .on('error', () => r(false)));
    if (up) break;
    await sleep(100);
  }
  const timers = [];
  for (let i = 0; i < targets; i++) {
    timers.push(setTimeout(() => {
      probe(i);
      timers.push(setInterval(() => probe(i), 1000));
    }, Math.random() * 1000));
  }
  await sleep(warmup * 1000);
  stats.measuring = true;
  const c0 = cpuSeconds(exporter.pid);
  const d0 = process.cpuUsage();
  const t0 = Date.now();
  let peak = 0;
  while (Date.now() - t0 < seconds * 1000) {
    await sleep(1000);
    peak = Math.max(peak, rssMiB(exporter.pid));
  }
  const wall = (Date.now() - t0) / 1000;
  const c1 = cpuSeconds(exporter.pid);
  const d1 = process.cpuUsage(d0);
  stats.measuring = false;
  const answered = stats.ok + stats.failed;
  console.log(JSON.stringify({
    system: 'blackbox_exporter 0.23.0',
    targets,
    seconds: Math.round(wall),
    probesSentPerSecond: +(stats.sent / wall).toFixed(1),
    probesAnsweredPerSecond: +(answered / wall).toFixed(1),
    successfulPerSecond: +(stats.ok / wall).toFixed(1),
    successShare: stats.sent ? +(stats.ok / stats.sent).toFixed(4) : null,
    driverErrors: stats.errors,
    exporterCpuCores: +((c1 - c0) / wall).toFixed(3),
    exporterCpuMsPerProbe: answered ? +(((c1 - c0) * 1000) / answered).toFixed(4) : null,
    exporterRssMiB: +rssMiB(exporter.pid).toFixed(1),
    exporterRssPeakMiB: +peak.toFixed(1),
    driverCpuCores: +((d1.user + d1.system) / 1e6 / wall).toFixed(3),
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
  }));
  for (const t of timers) clearInterval(t);
  exporter.kill('SIGTERM');
  process.exit(0);
})();
