#!/usr/bin/env python3
"""Health monitor benchmark: Jarvis checks N services on 127.0.0.1 every second.

The target is one nginx (Debian package) answering `200 ok` on every path; each service is
`http://127.0.0.1:<port>/s/<i>`. Jarvis runs as a release binary with the services in its config
file (interval 1 s, timeout 1 s). After a warm-up, the script measures a window of `--seconds`:

  checks/s      the increase of jarvis_health_checks_total over the window / seconds
  on time       checks that started within 100 ms of their scheduled time (lag histogram bucket
                le=0.1) / the checks due in the window (started + skipped): a skipped check
                counts as not on time
  lag p99       from jarvis_health_check_lag_seconds (linear inside the bucket)
  skipped       increase of jarvis_health_checks_skipped_total by reason
  CPU           (utime + stime) of the Jarvis process over the window / wall time, in cores
  RSS           VmRSS at the end and the largest 1 s sample during the window

With `--recover-to M` the script then deletes services through the API down to M, lets the
monitor settle and measures a second window: overload must leave no lasting damage.

Prints one JSON line per phase on stdout (progress on stderr) and writes everything under
bench/out/health-<timestamp>/.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TOKEN = "bench-token-0123456789abcdef"
TICK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[11], fields[12] are utime, stime (fields 14 and 15 of the full line).
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu_seconds(pid):
    """CPU of a process and its direct children (nginx master + workers)."""
    total = cpu_seconds(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                total += cpu_seconds(int(child))
    except OSError:
        pass
    return total


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def scrape(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = METRIC.match(line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def total(snap, name, label_filter=""):
    return sum(v for (n, l), v in snap.items() if n == name and label_filter in l)


def buckets(snap, name):
    out = []
    for (n, l), v in snap.items():
        if n == name + "_bucket":
            le = re.search(r'le="([^"]+)"', l).group(1)
            out.append((float("inf") if le == "+Inf" else float(le), v))
    return sorted(out)


def quantile(bks, q):
    """Linear interpolation inside the bucket holding the q-quantile (bks: cumulative deltas)."""
    count = bks[-1][1] if bks else 0
    if count == 0:
        return None
    rank = q * count
    prev_bound, prev_cum = 0.0, 0.0
    for bound, cum in bks:
        if cum >= rank:
            if bound == float("inf"):
                return prev_bound
            span = cum - prev_cum
            frac = (rank - prev_cum) / span if span else 1.0
            return prev_bound + (bound - prev_bound) * frac
        prev_bound, prev_cum = bound, cum
    return prev_bound


def delta_buckets(a, b, name):
    ba = dict(buckets(a, name))
    return [(bound, v - ba.get(bound, 0.0)) for bound, v in buckets(b, name)]


def api(port, method, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def wait(cond, limit, what):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if cond():
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def measure(label, jarvis, nginx_pid, port, services, seconds):
    log(f"[{label}] measuring {seconds} s with {services} services")
    a = scrape(port)
    c0, n0, t0 = cpu_seconds(jarvis.pid), tree_cpu_seconds(nginx_pid), time.time()
    peak = rss_mib(jarvis.pid)
    samples = []
    while time.time() - t0 < seconds:
        time.sleep(1)
        r = rss_mib(jarvis.pid)
        peak = max(peak, r)
        samples.append(round(r, 1))
    c1, n1, t1 = cpu_seconds(jarvis.pid), tree_cpu_seconds(nginx_pid), time.time()
    b = scrape(port)
    wall = t1 - t0
    checks = total(b, "jarvis_health_checks_total") - total(a, "jarvis_health_checks_total")
    lag = delta_buckets(a, b, "jarvis_health_check_lag_seconds")
    on_time = dict(lag).get(0.1, 0.0)
    started = lag[-1][1] if lag else 0.0
    skipped = {
        reason: total(b, "jarvis_health_checks_skipped_total", f'reason="{reason}"')
        - total(a, "jarvis_health_checks_skipped_total", f'reason="{reason}"')
        for reason in ("late", "overrun")
    }
    written = total(b, "jarvis_health_history_written_total") - total(
        a, "jarvis_health_history_written_total"
    )
    dropped = total(b, "jarvis_health_history_dropped_total") - total(
        a, "jarvis_health_history_dropped_total"
    )
    down = total(b, "jarvis_health_checks_total", 'result="down"') - total(
        a, "jarvis_health_checks_total", 'result="down"'
    )
    p99 = quantile(lag, 0.99)
    p50 = quantile(lag, 0.50)
    result = {
        "phase": label,
        "services": services,
        "seconds": round(wall, 1),
        "checksPerSecond": round(checks / wall, 1),
        "dueCheckPerSecond": services,
        "checksStartedPerSecond": round(started / wall, 1),
        # Of the checks due in the window (started or skipped), the share that started on time.
        "onTimeShare": round(on_time / (started + skipped["late"] + skipped["overrun"]), 4)
        if started
        else None,
        "lagP50Ms": None if p50 is None else round(p50 * 1000, 2),
        "lagP99Ms": None if p99 is None else round(p99 * 1000, 2),
        "skippedLate": int(skipped["late"]),
        "skippedOverrun": int(skipped["overrun"]),
        "downResults": int(down),
        "jarvisCpuCores": round((c1 - c0) / wall, 3),
        "jarvisCpuMsPerCheck": round((c1 - c0) * 1000 / checks, 4) if checks else None,
        "nginxCpuCores": round((n1 - n0) / wall, 3),
        "jarvisRssMiB": round(rss_mib(jarvis.pid), 1),
        "jarvisRssPeakMiB": round(peak, 1),
        "rssSamplesMiB": samples[:: max(1, len(samples) // 12)],
        "historyWritten": int(written),
        "historyDropped": int(dropped),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }
    print(json.dumps(result), flush=True)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--recover-to", type=int, default=0)
    ap.add_argument("--recover-seconds", type=int, default=30)
    ap.add_argument("--concurrency", type=int, default=0, help="JARVIS_HEALTH_CONCURRENCY")
    ap.add_argument("--history-hours", type=int, default=24)
    ap.add_argument("--env", action="append", default=[], help="extra K=V for Jarvis")
    ap.add_argument(
        "--blackbox-targets",
        type=int,
        default=0,
        help="afterwards, run blackbox.js with this many targets on the same nginx",
    )
    ap.add_argument("--jarvis", default=os.path.join(ROOT, "target", "release", "jarvis"))
    args = ap.parse_args()
    # Jarvis runs in the run's own directory: a relative --jarvis is taken from here.
    args.jarvis = os.path.abspath(args.jarvis)
    for tool in ["nginx"] + (["node", "prometheus-blackbox-exporter"] if args.blackbox_targets else []):
        if shutil.which(tool) is None:
            sys.exit(f"bench.py: {tool} is not installed; bench/health/run.sh installs it")

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    work = os.path.join(ROOT, "bench", "out", f"health-{stamp}-{args.services}")
    os.makedirs(work, exist_ok=True)
    nginx_port, jarvis_port = free_port(), free_port()

    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(
            f"""worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{nginx_port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
        )
    with open(os.path.join(work, "jarvis.toml"), "w") as f:
        for i in range(args.services):
            f.write(
                f'[services.s{i}]\nurl = "http://127.0.0.1:{nginx_port}/s/{i}"\n'
                f"intervalMs = 1000\ntimeoutMs = 1000\n"
            )

    nginx = subprocess.Popen(
        ["nginx", "-p", work, "-c", os.path.join(work, "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "nginx.stderr"), "w"),
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "JARVIS_PORT": str(jarvis_port),
        "JARVIS_BIND": "127.0.0.1",
        "JARVIS_AUTH_TOKEN": TOKEN,
        "JARVIS_DATA_DIR": os.path.join(work, "data"),
        "JARVIS_LOG_DIR": os.path.join(work, "logs"),
        "JARVIS_CONFIG": os.path.join(work, "jarvis.toml"),
        "JARVIS_HEALTH_HISTORY_RETENTION_HOURS": str(args.history_hours),
        "LOG_LEVEL": "info",
    }
    for kv in args.env:
        k, v = kv.split("=", 1)
        env[k] = v
    if args.concurrency:
        env["JARVIS_HEALTH_CONCURRENCY"] = str(args.concurrency)
    jarvis = subprocess.Popen(
        [args.jarvis, "serve"],
        env=env,
        cwd=work,
        stdout=open(os.path.join(work, "jarvis.stdout"), "w"),
        stderr=open(os.path.join(work, "jarvis.stderr"), "w"),
    )
    results = []
    try:
        wait(lambda: api(jarvis_port, "GET", "/health")[0] == 200, 120, "Jarvis to start")
        wait(
            lambda: total(scrape(jarvis_port), "jarvis_health_services") == args.services,
            120,
            "every service to be monitored",
        )
        log(f"all {args.services} services monitored; warming up {args.warmup} s")
        time.sleep(args.warmup)
        if args.seconds > 0:
            results.append(
                measure("load", jarvis, nginx.pid, jarvis_port, args.services, args.seconds)
            )
        if args.recover_to:
            log(f"deleting services down to {args.recover_to}")
            import threading

            latencies = []
            statuses = {}

            def deleter(first):
                c = http.client.HTTPConnection("127.0.0.1", jarvis_port, timeout=60)
                for i in range(first, args.services, 8):
                    t = time.time()
                    c.request(
                        "DELETE",
                        f"/api/v1/services/s{i}",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    )
                    r = c.getresponse()
                    r.read()
                    latencies.append(time.time() - t)
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                c.close()

            rss_before = rss_mib(jarvis.pid)
            started = time.time()
            threads = [
                threading.Thread(target=deleter, args=(args.recover_to + k,)) for k in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.time() - started
            log(f"deleted in {took:.1f} s")
            latencies.sort()

            def pct(q):
                return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1)

            deletes = {
                "phase": "deletes",
                "deleted": len(latencies),
                "statuses": {str(k): v for k, v in statuses.items()},
                "connections": 8,
                "seconds": round(took, 1),
                "deletesPerSecond": round(len(latencies) / took, 1),
                "latencyP50Ms": pct(0.50),
                "latencyP99Ms": pct(0.99),
                "latencyMaxMs": round(latencies[-1] * 1000, 1),
                "jarvisRssBeforeMiB": round(rss_before, 1),
                "jarvisRssAfterMiB": round(rss_mib(jarvis.pid), 1),
                "loadavg": open("/proc/loadavg").read().split()[:3],
            }
            print(json.dumps(deletes), flush=True)
            results.append(deletes)
            wait(
                lambda: total(scrape(jarvis_port), "jarvis_health_services") == args.recover_to,
                120,
                "the monitor to drop the deleted services",
            )
            time.sleep(args.warmup)
            results.append(
                measure(
                    "recovered",
                    jarvis,
                    nginx.pid,
                    jarvis_port,
                    args.recover_to,
                    args.recover_seconds,
                )
            )
        jarvis.send_signal(signal.SIGTERM)
        jarvis.wait(60)
        if args.blackbox_targets:
            log(f"blackbox exporter: {args.blackbox_targets} targets, {args.seconds} s")
            out = subprocess.run(
                [
                    "node",
                    os.path.join(HERE, "blackbox.js"),
                    "--targets",
                    str(args.blackbox_targets),
                    "--seconds",
                    str(args.seconds),
                    "--target-port",
                    str(nginx_port),
                    "--work",
                    work,
                ],
                capture_output=True,
                text=True,
                timeout=args.seconds + 120,
            )
            sys.stderr.write(out.stderr)
            for line in out.stdout.splitlines():
                print(line, flush=True)
                results.append(json.loads(line))
    finally:
        if jarvis.poll() is None:
            jarvis.send_signal(signal.SIGTERM)
            try:
                jarvis.wait(30)
            except subprocess.TimeoutExpired:
                jarvis.kill()
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            nginx.kill()
        shutil.rmtree(os.path.join(work, "data"), ignore_errors=True)
    with open(os.path.join(work, "results.jsonl"), "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    log(f"results in {work}/results.jsonl")


if __name__ == "__main__":
    main()
