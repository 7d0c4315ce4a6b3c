// Where the cross-instance pickup goes: two Jarvis instances on a fresh PostgreSQL database (one
// API-only, one with workers), N sequential POST /api/v1/execute of a noop task to the API-only
// instance, each split by the stamps it leaves: client submit -> handler (the task's created_at)
// -> claim on the worker instance (the task's started_at) -> attempt start (its history row's
// started_at); also the 202 round trip and, first, a plain GET round trip with no database work.
// Medians. Usage: node bench/queue/xpickup-breakdown.js target/release/jarvis [N]
const { spawn, execSync } = require("node:child_process");
const path = require("node:path"), fs = require("node:fs"), os = require("node:os"), net = require("node:net");
const { Client } = require(path.join(__dirname, "peers", "node_modules", "pg"));
const BIN = process.argv[2]; const N = +(process.argv[3] || 200);
const TOKEN = "t".repeat(40);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();
function freePort() { return new Promise((res) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); }); }
async function start(url, extra) {
  const port = await freePort(); const dir = fs.mkdtempSync(path.join(os.tmpdir(), "xp-"));
  const env = { PATH: process.env.PATH, DATABASE_URL: url, JARVIS_AUTH_TOKEN: TOKEN, JARVIS_PORT: String(port), JARVIS_BIND: "127.0.0.1",
    JARVIS_DATA_DIR: path.join(dir, "d"), JARVIS_LOG_DIR: path.join(dir, "l"), JARVIS_CONCURRENCY: "10", LOG_LEVEL: "warn", ...extra };
  const child = spawn(BIN, ["serve"], { env, stdio: ["ignore", "ignore", "inherit"] });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) { try { const r = await fetch(`${base}/health`); if (r.ok) return { child, base }; } catch {} await sleep(50); }
  throw new Error("no start");
}
(async () => {
  const db = `xp_${process.pid}`;
  execSync(`psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE ${db}"`);
  const url = `postgres://postgres@127.0.0.1:5432/${db}`;
  execSync(`DATABASE_URL=${url} ${BIN} migrate`, { stdio: "ignore" });
  const w = await start(url, {}); const a = await start(url, { JARVIS_WORKERS_ENABLED: "false" });
  await sleep(300);
  const pg = new Client({ connectionString: url }); await pg.connect();
  { const xs = []; for (let i = 0; i < 200; i++) { const t = now(); const r = await fetch(`${a.base}/api/v1/breakers`, { headers: { authorization: `Bearer ${TOKEN}` } }); await r.text(); xs.push(now() - t); await sleep(2); } xs.sort((x, y) => x - y); console.log("GET breakers p50", xs[100].toFixed(2)); }
  const rows = [];
  for (let i = 0; i < N + 20; i++) {
    const t0 = now();
    const r = await fetch(`${a.base}/api/v1/execute`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify({ domain: "noop", action: "x" }) });
    const j = await r.json(); const t1 = now();
    const id = j.data.taskId || j.data.id;
    let h;
    for (;;) { const q = await pg.query("SELECT extract(epoch from h.started_at)*1000 AS hs, extract(epoch from t.created_at)*1000 AS c, extract(epoch from t.started_at)*1000 AS ts FROM task_history h JOIN tasks t ON t.id=h.task_id WHERE h.task_id=$1", [id]); if (q.rows.length) { h = q.rows[0]; break; } await sleep(1); }
    if (i >= 20) rows.push({ handler: h.c - t0, claim: h.ts - h.c, start: h.hs - h.ts, total: h.hs - t0, ack: t1 - t0 });
    await sleep(5);
  }
  const med = (k) => { const v = rows.map((r) => r[k]).sort((x, y) => x - y); return v[Math.floor(v.length / 2)].toFixed(2); };
  console.log(`submit->handler ${med("handler")}  handler->claim ${med("claim")}  claim->start ${med("start")}  total ${med("total")}  ack(202) ${med("ack")}`);
  await pg.end(); w.child.kill("SIGKILL"); a.child.kill("SIGKILL"); await sleep(300);
  execSync(`psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE ${db} WITH (FORCE)"`);
})();
