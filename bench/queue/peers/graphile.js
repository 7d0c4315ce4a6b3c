#!/usr/bin/env node
"use strict";
// graphile-worker 0.18 on the local PostgreSQL: enqueue / process / idle pickup.
// Usage: node graphile.js [--mode default|tuned] [--tasks N] [--concurrency C] [--runs K]
// Prints exactly one JSON line on stdout; progress goes to stderr. See ../README.md.

process.env.NO_LOG_SUCCESS = "1"; // no log line per completed job (graphile's own perf tests do the same)

const { Pool } = require("pg");
const { run, makeWorkerUtils, Logger } = require("graphile-worker");
const c = require("./common");
const gwVersion = c.pkgVersion("graphile-worker");

const opts = c.parseArgs(process.argv, { mode: "default" });
if (opts.help) {
  console.error("node graphile.js [--mode default|tuned] [--tasks N] [--concurrency C] [--runs K]");
  process.exit(0);
}
if (!["default", "tuned"].includes(opts.mode)) throw new Error(`--mode must be default or tuned`);

// tuned = the batching features graphile-worker documents for high throughput
// (https://worker.graphile.org/docs/performance#batching): a local queue that
// locks and pulls down 500 jobs per fetch, and completions batched into one
// statement. completeJobBatchDelay 0 batches every completion that arrives
// before the next timer tick (no artificial wait).
const TUNED = { localQueue: { size: 500 }, completeJobBatchDelay: 0 };
const workerPreset = opts.mode === "tuned" ? TUNED : {};

// graphile's default logger prints every warning/info to stdout; send it to
// stderr so that stdout carries only our JSON line.
const logger = new Logger((scope) => (level, message) => {
  if (level === "debug") return;
  console.error(`[graphile-worker ${level}] ${message}`);
});

const QUEUE_TABLE = "graphile_worker._private_jobs";

async function oneRun(connectionString, runIndex) {
  const pool = new Pool({ connectionString, max: opts.concurrency + 4 });
  pool.on("error", (e) => c.log(`pg pool error (ignored): ${e.message}`));
  pool.on("connect", (client) => client.on("error", (e) => c.log(`pg client error: ${e.message}`)));
  const utils = await makeWorkerUtils({ pgPool: pool, logger });
  await utils.migrate();

  // ---- 1. enqueue: N jobs in batches through the batch API (one INSERT ... per batch) --------
  const t0 = c.now();
  for (let i = 0; i < opts.tasks; i += opts.batch) {
    const n = Math.min(opts.batch, opts.tasks - i);
    const specs = new Array(n);
    for (let j = 0; j < n; j++) specs[j] = { identifier: "noop", payload: { i: i + j } };
    await utils.addJobs(specs); // graphile_worker.add_jobs(...) in one statement / transaction
  }
  const enqueueMs = c.now() - t0;
  const queued = Number((await pool.query(`SELECT count(*) FROM ${QUEUE_TABLE}`)).rows[0].count);
  if (queued !== opts.tasks) throw new Error(`expected ${opts.tasks} queued jobs, found ${queued}`);

  // ---- 2. process the backlog with a worker pool of `concurrency` --------------------------
  let firstStart = null;
  let lastEnd = 0;
  let done = 0;
  const pickup = { fn: null }; // set during phase 3
  const taskList = {
    noop: async () => {
      const t = c.now();
      if (firstStart === null) firstStart = t;
      done++;
      lastEnd = t;
    },
    pickup: async (payload) => {
      const t = c.now();
      if (pickup.fn) pickup.fn(payload.k, t);
    },
  };
  const runner = await run({
    pgPool: pool,
    concurrency: opts.concurrency,
    taskList,
    noHandleSignals: true,
    crontab: "", // no cron
    logger,
    preset: { worker: workerPreset },
  });
  // Wait until every handler has run ...
  const deadline = c.now() + 600_000;
  while (done < opts.tasks) {
    if (c.now() > deadline) throw new Error(`processing stalled at ${done}/${opts.tasks}`);
    await c.sleep(5);
  }
  // ... then until the database agrees: graphile-worker deletes a job when its
  // completion is committed (completeJob is not awaited by the worker loop, and
  // is batched in tuned mode), so "processed" = no job row left.
  const checker = new Pool({ connectionString, max: 1 });
  let left;
  for (;;) {
    left = Number((await checker.query(`SELECT count(*) FROM ${QUEUE_TABLE}`)).rows[0].count);
    if (left === 0) break;
    if (c.now() > deadline) throw new Error(`${left} jobs never completed`);
    await c.sleep(1);
  }
  const processedAt = c.now();
  await checker.end();
  const processMs = processedAt - firstStart;
  const handlerMs = lastEnd - firstStart;

  // ---- 3. idle pickup latency: one job at a time into an idle, waiting worker pool -----------
  await c.sleep(200); // let the pool settle into its idle wait (LISTEN)
  const p = await c.measurePickup({
    add: (k) => utils.addJob("pickup", { k }), // graphile_worker.add_job(...), autocommit
    hook: pickup,
    samples: opts.pickupSamples,
    warmup: opts.pickupWarmup,
    gapMs: opts.pickupGapMs,
  });
  await runner.stop();
  await utils.release();
  await pool.end();

  const r = {
    enqueuePerSec: (opts.tasks / enqueueMs) * 1000,
    processPerSec: (opts.tasks / processMs) * 1000,
    handlerPerSec: (opts.tasks / handlerMs) * 1000,
    ...p,
  };
  c.log(
    `graphile ${opts.mode} run ${runIndex + 1}: enqueue ${c.round(r.enqueuePerSec)}/s, ` +
      `process ${c.round(r.processPerSec)}/s (handlers ${c.round(r.handlerPerSec)}/s, ` +
      `db drained ${c.round(processedAt - lastEnd, 1)} ms after last handler), ` +
      `pickup p50 ${c.round(p.pickupP50Ms, 2)} ms p99 ${c.round(p.pickupP99Ms, 2)} ms ` +
      `(after commit ack: p50 ${c.round(p.pickupAfterCommitP50Ms, 2)} p99 ${c.round(p.pickupAfterCommitP99Ms, 2)}; ` +
      `${p.pickupEarly} started before the commit ack)`,
  );
  return r;
}

async function main() {
  const results = [];
  for (let i = 0; i < opts.runs; i++) {
    // a fresh database per run: no dead tuples or warm tables carried between runs
    const db = `bench_graphile_${process.pid}_${i}`;
    const url = await c.createDatabase(db);
    try {
      results.push(await oneRun(url, i));
    } finally {
      await c.dropDatabase(db).catch((e) => c.log(`could not drop ${db}: ${e}`));
    }
  }
  const out = c.summarise(
    {
      system: "graphile-worker",
      backend: "postgresql",
      mode: opts.mode,
      tasks: opts.tasks,
      concurrency: opts.concurrency,
    },
    results,
  );
  out.version = gwVersion;
  out.batch = opts.batch;
  out.pickupSamples = opts.pickupSamples;
  if (opts.mode === "tuned") out.settings = TUNED;
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
