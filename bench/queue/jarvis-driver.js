#!/usr/bin/env node
"use strict";
// Jarvis side of the queue benchmark (see README.md, "Contract for bench/queue/jarvis.sh").
// Usage: node jarvis-driver.js --bin target/release/jarvis --agent noop|http [--tasks N] [--concurrency C] [--runs K]
// Prints exactly one JSON line on stdout; progress goes to stderr.

const { spawn, execSync } = require("node:child_process");
const http = require("node:http");
const os = require("node:os");
const path = require("node:path");
const fs = require("node:fs");
const c = require("./peers/common");
const { Pool } = require(path.join(__dirname, "peers", "node_modules", "pg"));

const argv = [...process.argv];
const take = (name, def) => {
  const i = argv.indexOf(name);
  if (i < 0) return def;
  const v = argv[i + 1];
  argv.splice(i, 2);
  return v;
};
const BIN = take("--bin", "target/release/jarvis");
const AGENT = take("--agent", "noop");
const opts = c.parseArgs(argv);
const TOKEN = "bench-token-0123456789abcdef";
const wall = () => performance.timeOrigin + performance.now(); // ms since epoch, sub-ms

async function freePort() {
  return new Promise((resolve) => {
    const s = require("node:net").createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

async function startJarvis(url, extra) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jarvis-bench-"));
  const env = {
    PATH: process.env.PATH,
    DATABASE_URL: url,
    JARVIS_AUTH_TOKEN: TOKEN,
    JARVIS_PORT: String(port),
    JARVIS_BIND: "127.0.0.1",
    JARVIS_DATA_DIR: path.join(dir, "data"),
    JARVIS_LOG_DIR: path.join(dir, "logs"),
    JARVIS_CONCURRENCY: String(opts.concurrency),
    LOG_LEVEL: "warn",
    ...extra,
  };
  const child = spawn(BIN, ["serve"], { env, stdio: ["ignore", "ignore", "inherit"] });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(`${base}/health`);
      if (r.ok) return { child, base, dir };
    } catch {}
    await c.sleep(50);
  }
  child.kill("SIGKILL");
  throw new Error("jarvis did not become healthy");
}

async function stopJarvis(j) {
  const exited = new Promise((r) => j.child.once("exit", r));
  j.child.kill("SIGTERM");
  await Promise.race([exited, c.sleep(20000)]);
  fs.rmSync(j.dir, { recursive: true, force: true });
}

async function call(j, method, p, body) {
  const r = await fetch(`${j.base}${p}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

function httpAgent() {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"success":true}');
      });
    });
    server.keepAliveTimeout = 60000;
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function oneRun(runIndex) {
  const db = `bench_jarvis_${process.pid}_${AGENT}_${runIndex}`;
  const url = await c.createDatabase(db);
  const pool = new Pool({ connectionString: url, max: 2 });
  // An idle client terminated from outside (e.g. a forced DROP DATABASE racing pool.end())
  // must not crash the driver with an unhandled 'error' event; queries still fail loudly.
  pool.on("error", (e) => c.log(`idle database client closed: ${e.message}`));
  let agentServer = null;
  const domain = AGENT === "noop" ? "noop" : "httpbench";
  try {
    // ---- 1. enqueue through the public batch route, workers off -----------------------------
    const api = await startJarvis(url, { JARVIS_WORKERS_ENABLED: "false" });
    if (AGENT === "http") {
      agentServer = await httpAgent();
      const u = `http://127.0.0.1:${agentServer.address().port}/run`;
      await call(api, "PUT", `/api/v1/agents/${domain}`, { url: u, timeoutMs: 5000 });
    }
    const t0 = c.now();
    for (let i = 0; i < opts.tasks; i += opts.batch) {
      const n = Math.min(opts.batch, opts.tasks - i);
      const tasks = new Array(n);
      for (let j = 0; j < n; j++) tasks[j] = { domain, action: "bench", parameters: { i: i + j } };
      await call(api, "POST", "/api/v1/tasks/batch", { tasks });
    }
    const enqueueMs = c.now() - t0;
    const queued = Number((await pool.query("SELECT count(*) FROM tasks WHERE status = 'queued'")).rows[0].count);
    if (queued !== opts.tasks) throw new Error(`expected ${opts.tasks} queued, found ${queued}`);
    await stopJarvis(api);

    // ---- 2. process: start the workers; done when all succeeded AND all history committed ----
    // Optional profiling of the processing phase only: BENCH_PROFILE_CMD (e.g.
    // "perf record -a -g -o /tmp/q.data") runs from just before the workers start until t_end,
    // then gets SIGINT. Not set in measured runs.
    const profiler = process.env.BENCH_PROFILE_CMD
      ? spawn("sh", ["-c", `exec ${process.env.BENCH_PROFILE_CMD}`], { stdio: ["ignore", "ignore", "inherit"] })
      : null;
    if (profiler) await c.sleep(300);
    const j = await startJarvis(url, {});
    const deadline = c.now() + 600000;
    let tEnd;
    // The poller must not load the machine it measures: the exact check (two count(*) over
    // 20,000-row tables, several ms of PostgreSQL CPU each) only runs once a cheap check on
    // the partial indexes says nothing is queued or running any more and the newest history
    // id has reached N; t_end is still taken only after the exact check passed.
    for (;;) {
      const g = await pool.query(
        "SELECT NOT EXISTS (SELECT 1 FROM tasks WHERE status IN ('queued', 'waiting')) " +
          "AND NOT EXISTS (SELECT 1 FROM tasks WHERE status = 'running') " +
          "AND COALESCE((SELECT max(id) FROM task_history), 0) >= $1 AS maybe",
        [opts.tasks],
      );
      if (g.rows[0].maybe) {
        const r = await pool.query(
          "SELECT (SELECT count(*) FROM tasks WHERE status = 'succeeded') AS ok, (SELECT count(*) FROM task_history) AS h",
        );
        if (Number(r.rows[0].ok) === opts.tasks && Number(r.rows[0].h) >= opts.tasks) {
          tEnd = wall();
          if (profiler) {
            profiler.kill("SIGINT");
            await new Promise((resolve) => profiler.on("exit", resolve));
          }
          break;
        }
        const lost = await pool.query(
          "SELECT count(*) FILTER (WHERE status NOT IN ('succeeded', 'queued', 'waiting', 'running')) AS bad FROM tasks",
        );
        if (Number(lost.rows[0].bad) > 0) throw new Error(`tasks did not succeed: ${JSON.stringify(r.rows[0])}`);
      }
      if (c.now() > deadline) throw new Error("processing stalled");
      await c.sleep(1);
    }
    const first = await pool.query("SELECT extract(epoch FROM min(started_at)) * 1000 AS t, count(*) AS n FROM task_history");
    const tFirst = Number(first.rows[0].t);
    const historyRows = Number(first.rows[0].n);
    if (historyRows !== opts.tasks) throw new Error(`expected ${opts.tasks} history rows, found ${historyRows}`);
    const processMs = tEnd - tFirst;

    // ---- 3. idle pickup -----------------------------------------------------------------
    await c.sleep(200);
    const fromSubmit = [];
    const fromCommit = [];
    for (let k = 0; k < opts.pickupWarmup + opts.pickupSamples; k++) {
      const tSubmit = wall();
      const r = await call(j, "POST", "/api/v1/execute", { domain, action: "pickup", parameters: { k } });
      const tCommit = wall();
      const id = r.data.taskId;
      let tStart = null;
      const until = c.now() + 10000;
      while (tStart === null) {
        const q = await pool.query("SELECT extract(epoch FROM started_at) * 1000 AS t FROM task_history WHERE task_id = $1", [id]);
        if (q.rows.length) tStart = Number(q.rows[0].t);
        else if (c.now() > until) throw new Error(`pickup task ${k} did not start within 10 s`);
      }
      if (k >= opts.pickupWarmup) {
        fromSubmit.push(tStart - tSubmit);
        fromCommit.push(Math.max(0, tStart - tCommit));
      }
      await c.sleep(opts.pickupGapMs);
    }
    await stopJarvis(j);
    const a = c.pickupStats(fromSubmit);
    const b = c.pickupStats(fromCommit);
    const res = {
      enqueuePerSec: (opts.tasks / enqueueMs) * 1000,
      processPerSec: (opts.tasks / processMs) * 1000,
      pickupP50Ms: a.pickupP50Ms,
      pickupP99Ms: a.pickupP99Ms,
      pickupAfterCommitP50Ms: b.pickupP50Ms,
      pickupAfterCommitP99Ms: b.pickupP99Ms,
      historyRows,
    };
    c.log(
      `jarvis ${AGENT} run ${runIndex + 1}: enqueue ${c.round(res.enqueuePerSec)}/s, process ${c.round(res.processPerSec)}/s ` +
        `(${historyRows} history rows), pickup p50 ${c.round(a.pickupP50Ms, 2)} ms p99 ${c.round(a.pickupP99Ms, 2)} ms ` +
        `(after commit p50 ${c.round(b.pickupP50Ms, 2)} p99 ${c.round(b.pickupP99Ms, 2)})`,
    );
    return res;
  } finally {
    if (agentServer) agentServer.close();
    await pool.end();
    await c.dropDatabase(db).catch((e) => c.log(`could not drop ${db}: ${e}`));
  }
}

async function main() {
  const runs = [];
  for (let i = 0; i < opts.runs; i++) runs.push(await oneRun(i));
  const out = c.summarise(
    { system: "jarvis", backend: "postgresql", mode: "default", agent: AGENT, tasks: opts.tasks, concurrency: opts.concurrency },
    runs,
  );
  out.historyRows = runs.map((r) => r.historyRows);
  out.batch = opts.batch;
  out.pickupSamples = opts.pickupSamples;
  try {
    out.version = execSync("git describe --always --dirty", { encoding: "utf8" }).trim();
  } catch {}
  out.settings = { logLevel: "warn", prefetch: "default (1000)", synchronousCommit: "server default (on)" };
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
