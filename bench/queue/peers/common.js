"use strict";
// Shared helpers for the peer benchmarks: argument parsing, timing, statistics,
// and throw-away PostgreSQL databases. No third-party code beyond `pg`.

const { performance } = require("node:perf_hooks");
const { Client } = require("pg");

const PG = {
  host: process.env.BENCH_PG_HOST || "127.0.0.1",
  port: Number(process.env.BENCH_PG_PORT || 5432),
  user: process.env.BENCH_PG_USER || "postgres",
};
const REDIS = {
  host: process.env.BENCH_REDIS_HOST || "127.0.0.1",
  port: Number(process.env.BENCH_REDIS_PORT || 6379),
};

function parseArgs(argv, extra = {}) {
  const opts = {
    tasks: 20000,
    batch: 1000,
    concurrency: 10,
    runs: 3,
    pickupSamples: 200,
    pickupWarmup: 20,
    pickupGapMs: 5,
    ...extra,
  };
  const names = {
    "--tasks": "tasks",
    "--batch": "batch",
    "--concurrency": "concurrency",
    "--runs": "runs",
    "--pickup-samples": "pickupSamples",
    "--pickup-gap-ms": "pickupGapMs",
    "--mode": "mode",
    "--backend": "backend",
  };
  for (let i = 2; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf("=");
    if (eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (a === "--help" || a === "-h") {
      opts.help = true;
      continue;
    }
    const key = names[a];
    if (!key) throw new Error(`unknown argument ${a}`);
    if (v === undefined) v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    opts[key] = key === "mode" || key === "backend" ? v : Number(v);
    if (key !== "mode" && key !== "backend" && !(Number.isInteger(opts[key]) && opts[key] > 0)) {
      throw new Error(`${a} must be a positive integer, got ${v}`);
    }
  }
  return opts;
}

const now = () => performance.now(); // ms, monotonic, sub-microsecond resolution
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted, p) {
  // nearest-rank percentile on an ascending array
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

const round = (x, d = 0) => {
  const f = 10 ** d;
  return Math.round(x * f) / f;
};

// Installed version of a dependency (read from disk: some packages do not
// export ./package.json).
function pkgVersion(name) {
  const path = require("node:path");
  const fs = require("node:fs");
  const file = path.join(__dirname, "node_modules", name, "package.json");
  return JSON.parse(fs.readFileSync(file, "utf8")).version;
}

function log(...args) {
  // progress goes to stderr; stdout carries exactly one JSON line
  console.error(`[${new Date().toISOString()}]`, ...args);
}

async function adminQuery(sql) {
  const c = new Client({ ...PG, database: "postgres" });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

async function createDatabase(name) {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`);
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await adminQuery(`CREATE DATABASE ${name}`);
  return `postgres://${PG.user}@${PG.host}:${PG.port}/${name}`;
}

async function dropDatabase(name) {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`);
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

// Summarise per-run results into the one JSON line every benchmark prints.
function summarise(head, runs) {
  const pick = (k) => runs.map((r) => r[k]);
  return {
    ...head,
    enqueuePerSec: round(median(pick("enqueuePerSec"))),
    processPerSec: round(median(pick("processPerSec"))),
    pickupP50Ms: round(median(pick("pickupP50Ms")), 2),
    pickupP99Ms: round(median(pick("pickupP99Ms")), 2),
    runs: runs.length,
    pickupAfterCommitP50Ms: round(median(pick("pickupAfterCommitP50Ms")), 2),
    pickupAfterCommitP99Ms: round(median(pick("pickupAfterCommitP99Ms")), 2),
    perRun: runs.map((r) => ({
      enqueuePerSec: round(r.enqueuePerSec),
      processPerSec: round(r.processPerSec),
      pickupP50Ms: round(r.pickupP50Ms, 2),
      pickupP99Ms: round(r.pickupP99Ms, 2),
    })),
  };
}

function pickupStats(latencies) {
  const s = [...latencies].sort((a, b) => a - b);
  return { pickupP50Ms: percentile(s, 50), pickupP99Ms: percentile(s, 99), samples: s.length };
}

// Idle pickup latency. The consumer is running and idle (waiting for work).
// For each sample: submit ONE job through the system's normal single-job add
// call (`add(k)` resolves once the store acknowledged the commit), wait until
// its handler has started, sleep `gapMs`, repeat. The handler calls
// hook.fn(k, now()) as its first statement.
//   headline  pickupP50Ms/P99Ms:            add call made   -> handler start
//   secondary pickupAfterCommitP50Ms/P99Ms: commit ack seen -> handler start
// The headline includes the add round trip and its commit (fsync on
// PostgreSQL); graphile-worker's own perfTest/latencyTest.js measures the same
// way, and so did the pre-Jarvis reference figures.
async function measurePickup({ add, hook, samples, warmup, gapMs }) {
  const fromCommit = [];
  const fromSubmit = [];
  let early = 0; // handler started before the submitter saw the commit ack
  for (let k = 0; k < warmup + samples; k++) {
    const seen = new Promise((resolve) => {
      hook.fn = (kk, t) => {
        if (kk === k) resolve(t);
      };
    });
    const tSubmit = now();
    await add(k);
    const tCommit = now();
    const started = await Promise.race([seen, sleep(10_000).then(() => null)]);
    if (started === null) throw new Error(`pickup job ${k} did not start within 10 s`);
    if (k >= warmup) {
      if (started < tCommit) early++;
      fromCommit.push(Math.max(0, started - tCommit));
      fromSubmit.push(started - tSubmit);
    }
    await sleep(gapMs);
  }
  hook.fn = null;
  const a = pickupStats(fromSubmit);
  const b = pickupStats(fromCommit);
  return {
    pickupP50Ms: a.pickupP50Ms,
    pickupP99Ms: a.pickupP99Ms,
    pickupAfterCommitP50Ms: b.pickupP50Ms,
    pickupAfterCommitP99Ms: b.pickupP99Ms,
    pickupEarly: early,
    samples,
  };
}

module.exports = {
  PG,
  REDIS,
  parseArgs,
  now,
  sleep,
  percentile,
  median,
  round,
  log,
  pkgVersion,
  createDatabase,
  dropDatabase,
  summarise,
  pickupStats,
  measurePickup,
};
