#!/usr/bin/env node
"use strict";
// BullMQ 6.7 on the local Redis, or on the local PostgreSQL through BullMQ's own
// PostgreSQL backend (createPostgresBackend, shipped inside the bullmq package).
// Usage: node bullmq.js [--backend redis|postgresql] [--tasks N] [--concurrency C] [--runs K]
// Prints exactly one JSON line on stdout; progress goes to stderr. See ../README.md.

const { Pool } = require("pg");
const { Queue, Worker, createPostgresBackend, runMigrations } = require("bullmq");
const c = require("./common");

const opts = c.parseArgs(process.argv, { backend: "redis", mode: "default" });
if (opts.help) {
  console.error("node bullmq.js [--backend redis|postgresql] [--tasks N] [--concurrency C] [--runs K]");
  process.exit(0);
}
if (!["redis", "postgresql"].includes(opts.backend)) {
  throw new Error("--backend must be redis or postgresql");
}
if (opts.mode !== "default") throw new Error("bullmq.js has only --mode default");
const onPg = opts.backend === "postgresql";

// Connection options plus the backend factory (last constructor argument).
function backendArgs(url) {
  if (!onPg) return { conn: { connection: { ...c.REDIS } }, factory: [] };
  return {
    conn: { connection: { connectionString: url, max: opts.concurrency + 4 } },
    factory: [createPostgresBackend],
  };
}

async function migratePg(url) {
  // The PostgreSQL backend does not migrate on connect: run its migrations once.
  const pool = new Pool({ connectionString: url, max: 1 });
  const client = await pool.connect();
  try {
    await runMigrations(client);
  } finally {
    client.release();
    await pool.end();
  }
}

async function oneRun(url, runIndex) {
  const name = `bench_${process.pid}_${runIndex}`; // a fresh queue per run
  const { conn, factory } = backendArgs(url);
  const queue = new Queue(name, conn, ...factory);
  queue.on("error", (e) => c.log(`queue error: ${e.message}`));
  await queue.waitUntilReady();

  // ---- 1. enqueue: N jobs with addBulk, `batch` jobs per call (one round trip / transaction) ----
  // BullMQ defaults for job options (finished jobs are kept, as a history).
  const t0 = c.now();
  for (let i = 0; i < opts.tasks; i += opts.batch) {
    const n = Math.min(opts.batch, opts.tasks - i);
    const jobs = new Array(n);
    for (let j = 0; j < n; j++) jobs[j] = { name: "noop", data: { i: i + j } };
    await queue.addBulk(jobs);
  }
  const enqueueMs = c.now() - t0;
  const waiting = await queue.getWaitingCount();
  if (waiting !== opts.tasks) throw new Error(`expected ${opts.tasks} waiting jobs, found ${waiting}`);

  // ---- 2. process the backlog with one Worker of `concurrency` -----------------------------
  let firstStart = null;
  let completed = 0;
  let lastCompleted = 0;
  const pickup = { fn: null }; // set during phase 3
  let allDone;
  const finished = new Promise((r) => (allDone = r));
  const worker = new Worker(
    name,
    async (job) => {
      const t = c.now();
      if (job.name === "pickup") {
        if (pickup.fn) pickup.fn(job.data.k, t);
        return;
      }
      if (firstStart === null) firstStart = t;
    },
    { ...conn, concurrency: opts.concurrency, autorun: false },
    ...factory,
  );
  worker.on("error", (e) => c.log(`worker error: ${e.message}`));
  // 'completed' fires after the job was moved to the completed state in the store
  // (moveToFinished returned), so the last one marks the end of processing.
  worker.on("completed", (job) => {
    if (job.name === "pickup") return;
    completed++;
    if (completed === opts.tasks) {
      lastCompleted = c.now();
      allDone();
    }
  });
  worker.on("failed", (job, err) => c.log(`job ${job && job.id} failed: ${err && err.message}`));
  await worker.waitUntilReady();
  const running = worker.run();
  await Promise.race([
    finished,
    c.sleep(600_000).then(() => {
      throw new Error(`processing stalled at ${completed}/${opts.tasks}`);
    }),
  ]);
  const processMs = lastCompleted - firstStart;
  const counts = await queue.getJobCounts("waiting", "active", "completed", "failed");
  if (counts.completed !== opts.tasks || counts.failed !== 0) {
    throw new Error(`unexpected final counts ${JSON.stringify(counts)}`);
  }

  // ---- 3. idle pickup latency: one job at a time into an idle, blocked worker ----------------
  await c.sleep(200);
  const p = await c.measurePickup({
    add: (k) => queue.add("pickup", { k }),
    hook: pickup,
    samples: opts.pickupSamples,
    warmup: opts.pickupWarmup,
    gapMs: opts.pickupGapMs,
  });

  await worker.close();
  await running;
  await queue.obliterate({ force: true });
  await queue.close();

  const r = {
    enqueuePerSec: (opts.tasks / enqueueMs) * 1000,
    processPerSec: (opts.tasks / processMs) * 1000,
    ...p,
  };
  c.log(
    `bullmq ${opts.backend} run ${runIndex + 1}: enqueue ${c.round(r.enqueuePerSec)}/s, ` +
      `process ${c.round(r.processPerSec)}/s, ` +
      `pickup p50 ${c.round(p.pickupP50Ms, 2)} ms p99 ${c.round(p.pickupP99Ms, 2)} ms ` +
      `(after commit ack: p50 ${c.round(p.pickupAfterCommitP50Ms, 2)} p99 ${c.round(p.pickupAfterCommitP99Ms, 2)}; ` +
      `${p.pickupEarly} started before the commit ack)`,
  );
  return r;
}

async function main() {
  const results = [];
  for (let i = 0; i < opts.runs; i++) {
    if (!onPg) {
      results.push(await oneRun(null, i)); // fresh queue name per run, obliterated after
      continue;
    }
    // a fresh database per run: no dead tuples or warm tables carried between runs
    const db = `bench_bullmq_${process.pid}_${i}`;
    const url = await c.createDatabase(db);
    try {
      await migratePg(url);
      results.push(await oneRun(url, i));
    } finally {
      await c.dropDatabase(db).catch((e) => c.log(`could not drop ${db}: ${e}`));
    }
  }
  const out = c.summarise(
    {
      system: "bullmq",
      backend: opts.backend,
      mode: "default",
      tasks: opts.tasks,
      concurrency: opts.concurrency,
    },
    results,
  );
  out.version = c.pkgVersion("bullmq");
  out.batch = opts.batch;
  out.pickupSamples = opts.pickupSamples;
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
