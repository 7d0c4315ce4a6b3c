#!/usr/bin/env node
"use strict";
// Side-by-side table of a queue benchmark run (a .jsonl file written by run.sh).
// Usage: node report.js bench/out/queue-<timestamp>.jsonl [--markdown]
// Every line is one result object (see README.md, "Result line"). Rows whose
// "system" is "jarvis" are the subject; for each of them a ratio table against
// every peer row of the same run is printed. Ratios are oriented so that > 1
// always means Jarvis is better: throughput Jarvis/peer, latency peer/Jarvis.

const fs = require("node:fs");

const args = process.argv.slice(2);
const markdown = args.includes("--markdown");
const file = args.find((a) => !a.startsWith("--"));
if (!file) {
  console.error("usage: node report.js <queue-*.jsonl> [--markdown]");
  process.exit(2);
}

const rows = [];
for (const [i, line] of fs.readFileSync(file, "utf8").split("\n").entries()) {
  if (!line.trim()) continue;
  let r;
  try {
    r = JSON.parse(line);
  } catch (e) {
    console.error(`${file}:${i + 1}: not JSON, skipped`);
    continue;
  }
  if (typeof r !== "object" || !r || typeof r.system !== "string") {
    console.error(`${file}:${i + 1}: no "system" key, skipped`);
    continue;
  }
  rows.push(r);
}
if (rows.length === 0) {
  console.error("no result lines");
  process.exit(1);
}

const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "n/a");
const fmtMs = (x) => (Number.isFinite(x) ? x.toFixed(2) : "n/a");
const fmtRatio = (x) =>
  Number.isFinite(x) && x > 0 ? `${x >= 10 ? x.toFixed(1) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2)}x` : "n/a";
const label = (r) => `${r.system} / ${r.backend}${r.mode && r.mode !== "default" ? ` / ${r.mode}` : ""}${r.agent ? ` / agent ${r.agent}` : ""}`;

function table(headers, body, alignRight) {
  if (markdown) {
    const out = [`| ${headers.join(" | ")} |`, `|${headers.map((_, i) => (alignRight[i] ? "---:" : ":---")).join("|")}|`];
    for (const b of body) out.push(`| ${b.join(" | ")} |`);
    return out.join("\n");
  }
  const w = headers.map((h, i) => Math.max(h.length, ...body.map((b) => String(b[i]).length)));
  const cell = (s, i) => (alignRight[i] ? String(s).padStart(w[i]) : String(s).padEnd(w[i]));
  const out = [headers.map(cell).join("  "), w.map((n) => "-".repeat(n)).join("  ")];
  for (const b of body) out.push(b.map(cell).join("  "));
  return out.join("\n");
}

const counts = [...new Set(rows.map((r) => `${r.tasks} tasks, concurrency ${r.concurrency}`))];
console.log(`Queue benchmark: ${file}`);
console.log(`Workload: ${counts.join("; ")}${counts.length > 1 ? "  (WARNING: rows differ in workload)" : ""}`);
console.log("Figures are medians over `runs` runs; pickup is idle pickup latency (add call -> handler start).\n");

const jarvis = rows.filter((r) => r.system === "jarvis");
const peers = rows.filter((r) => r.system !== "jarvis");
// Jarvis lines measured with two instances on one database (jarvis-driver.js --cross on).
const cross = jarvis.filter((r) => Number.isFinite(r.crossPickupP50Ms) || Number.isFinite(r.crossWaitP50Ms));
// With such a line, the main table gets the two cross-instance columns (blank for the others).
const crossCols = cross.length > 0;
const blank = (x) => (Number.isFinite(x) ? fmtMs(x) : "");

console.log(
  table(
    [
      "system / backend / mode",
      "enqueue/s",
      "process/s",
      "pickup p50 ms",
      "pickup p99 ms",
      ...(crossCols ? ["x-pickup p50 ms", "x-wait p50 ms"] : []),
      "runs",
    ],
    rows.map((r) => [
      label(r),
      fmtInt(r.enqueuePerSec),
      fmtInt(r.processPerSec),
      fmtMs(r.pickupP50Ms),
      fmtMs(r.pickupP99Ms),
      ...(crossCols ? [blank(r.crossPickupP50Ms), blank(r.crossWaitP50Ms)] : []),
      r.runs ?? "?",
    ]),
    [false, true, true, true, true, true, true, true],
  ),
);
if (cross.length > 0) {
  console.log(
    "\nCross-instance (two Jarvis instances on one database: one API-only, one with workers; medians over `runs`):\n" +
      "x-pickup = task submitted to the API-only instance -> started on the worker instance (measured like pickup);\n" +
      "wait = POST /api/v1/execute?wait=true of a noop task, answered by the API-only instance (x) or the worker instance (same).\n",
  );
  console.log(
    table(
      [
        "system / backend / mode",
        "x-pickup p50 ms",
        "x-pickup p99 ms",
        "wait x p50 ms",
        "wait x p99 ms",
        "wait same p50 ms",
        "wait same p99 ms",
        "wait x - same p50 ms",
      ],
      cross.map((r) => [
        label(r),
        fmtMs(r.crossPickupP50Ms),
        fmtMs(r.crossPickupP99Ms),
        fmtMs(r.crossWaitP50Ms),
        fmtMs(r.crossWaitP99Ms),
        fmtMs(r.localWaitP50Ms),
        fmtMs(r.localWaitP99Ms),
        fmtMs(r.crossWaitP50Ms - r.localWaitP50Ms),
      ]),
      [false, true, true, true, true, true, true, true],
    ),
  );
}
if (jarvis.length === 0) {
  console.log("\nNo Jarvis result in this run (bench/queue/jarvis.sh absent or failed): no ratios.");
} else {
  for (const j of jarvis) {
    const hasCross = Number.isFinite(j.crossPickupP50Ms);
    console.log(`\nRatios for ${label(j)} (> 1 means Jarvis is better):`);
    console.log(
      table(
        ["vs peer", "enqueue", "process", "pickup p50", "pickup p99", ...(hasCross ? ["x-pickup p50", "x-pickup p99"] : [])],
        peers.map((p) => [
          label(p),
          fmtRatio(j.enqueuePerSec / p.enqueuePerSec),
          fmtRatio(j.processPerSec / p.processPerSec),
          fmtRatio(p.pickupP50Ms / j.pickupP50Ms),
          fmtRatio(p.pickupP99Ms / j.pickupP99Ms),
          ...(hasCross ? [fmtRatio(p.pickupP50Ms / j.crossPickupP50Ms), fmtRatio(p.pickupP99Ms / j.crossPickupP99Ms)] : []),
        ]),
        [false, true, true, true, true, true, true],
      ),
    );
  }
  if (cross.length > 0) {
    console.log(
      "\n(x-pickup ratios: a peer's pickup against Jarvis's cross-instance pickup. In the peers the submitting client\n" +
        " and the worker meet only through PostgreSQL or Redis, with no in-process shortcut, so their pickup is the\n" +
        " cross-instance case.)",
    );
  }
}
