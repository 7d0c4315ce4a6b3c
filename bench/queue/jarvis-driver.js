#!/usr/bin/env node
"use strict";
// Jarvis side of the queue benchmark (see README.md, "Contract for bench/queue/jarvis.sh").
// Usage: node jarvis-driver.js --bin target/release/jarvis --agent noop|http [--tasks N] [--concurrency C] [--runs K]
//          [--cross on|off] [--wait-samples N] [--wait-warmup N]
// Prints exactly one JSON line on stdout; progress goes to stderr.
//
// --cross (default: on for the noop agent, off for http): after the single-instance figures,
// each run also starts a second, API-only instance on the same database (as behind a load
// balancer) and measures (a) cross-instance pickup: tasks submitted to the API-only instance,
// run by the worker instance, measured exactly like the single-instance pickup; (b) the latency
// of POST /api/v1/execute?wait=true of a noop task sent to the API-only instance, and, interleaved
// with it, the same request sent to the worker instance (--wait-samples, default 300, after
// --wait-warmup, default 20, of each). See README.md, "Cross-instance figures".
//
// BENCH_PGBOUNCER_PORT=P: every instance reaches the database through a PgBouncer (transaction
// mode, started by the caller) on 127.0.0.1:P, with JARVIS_DATABASE_POOLER=pgbouncer and
// JARVIS_LISTEN_DATABASE_URL the direct URL (docs/operations.md, "Behind PgBouncer or RDS Proxy").

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
const CROSS = take("--cross", AGENT === "noop" ? "on" : "off") === "on";
const positive = (name, v) => {
  const n = Number(v);
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
};
const WAIT_SAMPLES = positive("--wait-samples", take("--wait-samples", process.env.BENCH_WAIT_SAMPLES || "300"));
const WAIT_WARMUP = positive("--wait-warmup", take("--wait-warmup", "20"));
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

// Every instance started and not yet stopped: killed if the driver exits early (an error).
const live = new Set();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

async function startJarvis(url, extra) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jarvis-bench-"));
  const pooler = process.env.BENCH_PGBOUNCER_PORT
    ? (() => {
        const pooled = new URL(url);
        pooled.hostname = "127.0.0.1";
        pooled.port = process.env.BENCH_PGBOUNCER_PORT;
        return {
          DATABASE_URL: pooled.toString(),
          JARVIS_LISTEN_DATABASE_URL: url,
          JARVIS_DATABASE_POOLER: "pgbouncer",
        };
      })()
    : {};
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
    ...pooler,
    // Settings to try (BENCH_JARVIS_ENV='{"JARVIS_QUEUE_PREFETCH":"2000"}'); none by default.
    ...(process.env.BENCH_JARVIS_ENV ? JSON.parse(process.env.BENCH_JARVIS_ENV) : {}),
    ...extra,
  };
  const child = spawn(BIN, ["serve"], { env, stdio: ["ignore", "ignore", "inherit"] });
  live.add(child);
  child.once("exit", () => live.delete(child));
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

// The API client: node's `http` module over kept-alive connections (one agent for the whole
// driver), as the peers' drivers use their own clients (pg, ioredis) over kept-alive
// connections. Measured against one idle instance, 400 alternating GETs: `fetch` (undici)
// 0.49 ms p50, this 0.32 ms; the difference is the client's, not Jarvis's.
const apiAgent = new http.Agent({ keepAlive: true, keepAliveMsecs: 60000 });

function call(j, method, p, body) {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const u = new URL(`${j.base}${p}`);
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
    if (payload !== undefined) headers["content-length"] = Buffer.byteLength(payload);
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, agent: apiAgent },
      (res) => {
        const chunks = [];
        res.on("data", (d) => chunks.push(d));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode < 200 || res.statusCode > 299) {
            reject(new Error(`${method} ${p}: ${res.statusCode} ${text.slice(0, 300)}`));
            return;
          }
          try {
            resolve(JSON.parse(text));
          } catch (e) {
            reject(new Error(`${method} ${p}: not JSON: ${text.slice(0, 300)}`));
          }
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
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

// Idle pickup, strictly one task at a time (README.md, contract item 4): t_submit just before
// POST /api/v1/execute to `submitTo`, t_start = the attempt's started_at in task_history (stamped
// by whichever instance ran it), then 5 ms of rest. a: from t_submit; b: from the 202.
async function pickup(pool, submitTo, domain) {
  const fromSubmit = [];
  const fromCommit = [];
  for (let k = 0; k < opts.pickupWarmup + opts.pickupSamples; k++) {
    const tSubmit = wall();
    const r = await call(submitTo, "POST", "/api/v1/execute", { domain, action: "pickup", parameters: { k } });
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
  return { a: c.pickupStats(fromSubmit), b: c.pickupStats(fromCommit) };
}

// POST /api/v1/execute?wait=true of one task, sequentially, alternately to `cross` (an instance
// that runs no tasks) and to `local` (the instance whose workers run it): the time from just
// before the request to its whole answer, which must be 200 with the task succeeded.
async function waitLatency(cross, local, domain) {
  const out = { cross: [], local: [] };
  for (let k = 0; k < WAIT_WARMUP + WAIT_SAMPLES; k++) {
    for (const [name, target] of [["cross", cross], ["local", local]]) {
      const t0 = c.now();
      const r = await call(target, "POST", "/api/v1/execute?wait=true", { domain, action: "wait", parameters: { k } });
      const dt = c.now() - t0;
      if (r.data.status !== "succeeded") throw new Error(`wait task ${k} (${name}): ${JSON.stringify(r.data).slice(0, 300)}`);
      if (k >= WAIT_WARMUP) out[name].push(dt);
    }
  }
  return { cross: c.pickupStats(out.cross), local: c.pickupStats(out.local) };
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
        // Only the benchmark's domain: Jarvis records its own health rounds in task history too
        // (domain system-health), which must neither end the clock early nor count as work.
        const r = await pool.query(
          "SELECT (SELECT count(*) FROM tasks WHERE status = 'succeeded' AND domain = $1) AS ok, " +
            "(SELECT count(*) FROM task_history WHERE domain = $1) AS h",
          [domain],
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
    const first = await pool.query(
      "SELECT extract(epoch FROM min(started_at)) * 1000 AS t, count(*) AS n FROM task_history WHERE domain = $1",
      [domain],
    );
    const tFirst = Number(first.rows[0].t);
    const historyRows = Number(first.rows[0].n);
    if (historyRows !== opts.tasks) {
      // Say what the extra rows are (retried or failed attempts).
      const detail = await pool.query(
        "SELECT domain, attempt, success, left(failure_reason, 120) AS reason, count(*)::int AS n " +
          "FROM task_history WHERE domain = $1 AND (attempt > 1 OR NOT success) GROUP BY 1, 2, 3, 4 ORDER BY n DESC LIMIT 10",
        [domain],
      );
      throw new Error(`expected ${opts.tasks} history rows, found ${historyRows}: ${JSON.stringify(detail.rows)}`);
    }
    const processMs = tEnd - tFirst;
    if (process.env.BENCH_TIMELINE) {
      // Where the processing phase's time went, ms from the first attempt's start: the last
      // attempt started and finished (stamped by Jarvis), the last settlement (its statement's
      // time), and the poller's t_end.
      const tl = await pool.query(
        "SELECT extract(epoch FROM max(h.started_at)) * 1000 AS last_start, " +
          "extract(epoch FROM max(h.finished_at)) * 1000 AS last_finish, " +
          "(SELECT extract(epoch FROM max(updated_at)) * 1000 FROM tasks WHERE domain = $1) AS last_settle " +
          "FROM task_history h WHERE h.domain = $1",
        [domain],
      );
      const at = (v) => Math.round(Number(v) - tFirst);
      c.log(
        `timeline ms: last start ${at(tl.rows[0].last_start)}, last finish ${at(tl.rows[0].last_finish)}, ` +
          `last settlement ${at(tl.rows[0].last_settle)}, t_end ${at(tEnd)}`,
      );
    }

    // ---- 3. idle pickup -----------------------------------------------------------------
    await c.sleep(200);
    const { a, b } = await pickup(pool, j, domain);
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

    // ---- 4. cross-instance: a second, API-only instance on the same database -------------
    if (CROSS) {
      const front = await startJarvis(url, { JARVIS_WORKERS_ENABLED: "false" });
      try {
        await c.sleep(200);
        const x = await pickup(pool, front, domain);
        res.crossPickupP50Ms = x.a.pickupP50Ms;
        res.crossPickupP99Ms = x.a.pickupP99Ms;
        res.crossPickupAfterCommitP50Ms = x.b.pickupP50Ms;
        res.crossPickupAfterCommitP99Ms = x.b.pickupP99Ms;
        const w = await waitLatency(front, j, domain);
        res.crossWaitP50Ms = w.cross.pickupP50Ms;
        res.crossWaitP99Ms = w.cross.pickupP99Ms;
        res.localWaitP50Ms = w.local.pickupP50Ms;
        res.localWaitP99Ms = w.local.pickupP99Ms;
      } finally {
        await stopJarvis(front);
      }
      c.log(
        `jarvis ${AGENT} run ${runIndex + 1}, two instances: cross-instance pickup p50 ${c.round(res.crossPickupP50Ms, 2)} ms ` +
          `p99 ${c.round(res.crossPickupP99Ms, 2)} ms (after commit p50 ${c.round(res.crossPickupAfterCommitP50Ms, 2)} ` +
          `p99 ${c.round(res.crossPickupAfterCommitP99Ms, 2)}); execute?wait=true on the API-only instance p50 ` +
          `${c.round(res.crossWaitP50Ms, 2)} ms p99 ${c.round(res.crossWaitP99Ms, 2)} ms, on the worker instance p50 ` +
          `${c.round(res.localWaitP50Ms, 2)} ms p99 ${c.round(res.localWaitP99Ms, 2)} ms`,
      );
    }
    await stopJarvis(j);
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
  if (CROSS) {
    const keys = [
      "crossPickupP50Ms",
      "crossPickupP99Ms",
      "crossPickupAfterCommitP50Ms",
      "crossPickupAfterCommitP99Ms",
      "crossWaitP50Ms",
      "crossWaitP99Ms",
      "localWaitP50Ms",
      "localWaitP99Ms",
    ];
    for (const k of keys) out[k] = c.round(c.median(runs.map((r) => r[k])), 2);
    runs.forEach((r, i) => {
      for (const k of keys) out.perRun[i][k] = c.round(r[k], 2);
    });
    out.crossInstance = {
      instances: "one API-only (JARVIS_WORKERS_ENABLED=false) + the worker instance, one database",
      pickupSamples: opts.pickupSamples,
      waitSamples: WAIT_SAMPLES,
      waitWarmup: WAIT_WARMUP,
    };
  }
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
