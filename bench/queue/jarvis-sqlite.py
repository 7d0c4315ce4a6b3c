#!/usr/bin/env python3
"""Jarvis queue benchmark on the embedded store (SQLite), same method as jarvis-driver.js.

    python3 bench/queue/jarvis-sqlite.py [--bin target/release/jarvis] [--tasks 20000]
                                         [--concurrency 10] [--runs 3]

Per run: a fresh data directory; an API-only instance (JARVIS_WORKERS_ENABLED=false) takes the N
noop tasks through POST /api/v1/tasks/batch (1,000 per request, one in flight) and is stopped;
a second instance with concurrency C processes them. t_first = the earliest history
started_at, t_end = the wall clock when a ~1 ms poller (read-only SQLite connection, WAL mode)
first sees N succeeded tasks and N history rows. Idle pickup: 20 warm-up + 200 single
POST /api/v1/execute, t_start = that task's history started_at. Prints one JSON result line
(the shape of bench/queue/README.md, "backend": "sqlite") on stdout; progress on stderr.
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TOKEN = "bench-token-0123456789abcdef"


def log(msg):
    print(f"[{datetime.datetime.now(datetime.timezone.utc).isoformat()}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_ts(text):
    # RFC 3339 as Jarvis writes it on SQLite: 2026-11-29T14:31:10.776056309+00:00
    date, _, rest = text.partition("T")
    clock, frac = rest[:8], "0"
    if len(rest) > 8 and rest[8] == ".":
        end = 9
        while end < len(rest) and rest[end].isdigit():
            end += 1
        frac = rest[9:end]
    base = datetime.datetime.fromisoformat(f"{date}T{clock}+00:00").timestamp()
    return (base + float("0." + frac)) * 1000.0


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def start(binary, data_dir, concurrency, workers):
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "JARVIS_AUTH_TOKEN": TOKEN,
        "JARVIS_PORT": str(port),
        "JARVIS_BIND": "127.0.0.1",
        "JARVIS_DATA_DIR": os.path.join(data_dir, "data"),
        "JARVIS_LOG_DIR": os.path.join(data_dir, "logs"),
        "JARVIS_CONCURRENCY": str(concurrency),
        "JARVIS_WORKERS_ENABLED": "true" if workers else "false",
        "LOG_LEVEL": "warn",
    }
    child = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                if r.status == 200:
                    return child, base
        except Exception:
            pass
        time.sleep(0.05)
    child.kill()
    raise RuntimeError("jarvis did not become healthy")


def stop(child):
    child.terminate()
    child.wait(timeout=30)


def pct(values, p):
    s = sorted(values)
    return s[max(0, int(len(s) * p + 0.999999) - 1)]


def one_run(args, index):
    tmp = tempfile.mkdtemp(prefix="jarvis-sqlite-bench-")
    try:
        api, base = start(args.bin, tmp, args.concurrency, workers=False)
        t0 = time.perf_counter()
        for i in range(0, args.tasks, 1000):
            n = min(1000, args.tasks - i)
            tasks = [{"domain": "noop", "action": "bench", "parameters": {"i": i + j}} for j in range(n)]
            call(base, "POST", "/api/v1/tasks/batch", {"tasks": tasks})
        enqueue_s = time.perf_counter() - t0
        stop(api)
        db = sqlite3.connect(f"file:{os.path.join(tmp, 'data', 'jarvis.db')}?mode=ro", uri=True)
        queued = db.execute("SELECT count(*) FROM tasks WHERE status = 'queued'").fetchone()[0]
        if queued != args.tasks:
            raise RuntimeError(f"expected {args.tasks} queued, found {queued}")

        worker, base = start(args.bin, tmp, args.concurrency, workers=True)
        deadline = time.time() + 600
        while True:
            maybe = db.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM tasks WHERE status IN ('queued', 'waiting', 'running')) "
                "AND COALESCE((SELECT max(id) FROM task_history), 0) >= ?",
                (args.tasks,),
            ).fetchone()[0]
            if maybe:
                # Only the benchmark's domain: health rounds are recorded in task history too.
                ok, rows = db.execute(
                    "SELECT (SELECT count(*) FROM tasks WHERE status = 'succeeded' AND domain = 'noop'), "
                    "(SELECT count(*) FROM task_history WHERE domain = 'noop')"
                ).fetchone()
                if ok == args.tasks and rows >= args.tasks:
                    t_end = time.time() * 1000.0
                    break
            if time.time() > deadline:
                raise RuntimeError("processing stalled")
            time.sleep(0.001)
        first, rows = db.execute(
            "SELECT min(started_at), count(*) FROM task_history WHERE domain = 'noop'"
        ).fetchone()
        if rows != args.tasks:
            raise RuntimeError(f"expected {args.tasks} history rows, found {rows}")
        process_ms = t_end - parse_ts(first)

        time.sleep(0.2)
        from_submit, from_commit = [], []
        for k in range(20 + 200):
            t_submit = time.time() * 1000.0
            r = call(base, "POST", "/api/v1/execute", {"domain": "noop", "action": "pickup", "parameters": {"k": k}})
            t_commit = time.time() * 1000.0
            tid = r["data"]["taskId"]
            until = time.time() + 10
            t_start = None
            while t_start is None:
                row = db.execute("SELECT started_at FROM task_history WHERE task_id = ?", (tid,)).fetchone()
                if row:
                    t_start = parse_ts(row[0])
                elif time.time() > until:
                    raise RuntimeError(f"pickup task {k} did not start within 10 s")
                else:
                    time.sleep(0.0002)
            if k >= 20:
                from_submit.append(t_start - t_submit)
                from_commit.append(max(0.0, t_start - t_commit))
            time.sleep(0.005)
        stop(worker)
        db.close()
        res = {
            "enqueuePerSec": round(args.tasks / enqueue_s),
            "processPerSec": round(args.tasks / process_ms * 1000),
            "pickupP50Ms": round(pct(from_submit, 0.5), 2),
            "pickupP99Ms": round(pct(from_submit, 0.99), 2),
            "pickupAfterCommitP50Ms": round(pct(from_commit, 0.5), 2),
            "pickupAfterCommitP99Ms": round(pct(from_commit, 0.99), 2),
            "historyRows": rows,
        }
        log(
            f"jarvis sqlite run {index + 1}: enqueue {res['enqueuePerSec']}/s, process {res['processPerSec']}/s "
            f"({rows} history rows), pickup p50 {res['pickupP50Ms']} ms p99 {res['pickupP99Ms']} ms"
        )
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/jarvis")
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = [one_run(args, i) for i in range(args.runs)]
    out = {"system": "jarvis", "backend": "sqlite", "mode": "default", "agent": "noop",
           "tasks": args.tasks, "concurrency": args.concurrency, "runs": args.runs}
    for key in ["enqueuePerSec", "processPerSec", "pickupP50Ms", "pickupP99Ms",
                "pickupAfterCommitP50Ms", "pickupAfterCommitP99Ms"]:
        out[key] = statistics.median(r[key] for r in runs)
    out["perRun"] = runs
    out["batch"] = 1000
    out["pickupSamples"] = 200
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
