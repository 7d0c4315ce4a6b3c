#!/usr/bin/env python3
"""Times single API requests against a running Jarvis (e.g. one started by bench.py).

    python3 bench/health/probe.py PORT            # /health, service reads, deletes, breakers
    python3 bench/health/probe.py PORT --view     # GET /api/v1/health/services, 30 times

Requests are sequential on one connection (http.client); prints one JSON line per request
kind with p50/p90/max in ms. The token is bench.py's. Deletes remove services s10 … s1199.
"""

import http.client
import json
import sys
import time

TOKEN = "bench-token-0123456789abcdef"


def timed(port, method, path, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    lat, status, size, ctype = [], None, 0, None
    for i in range(n):
        p = path.replace("{i}", str(i))
        t = time.time()
        c.request(method, p, headers={"Authorization": f"Bearer {TOKEN}"})
        r = c.getresponse()
        body = r.read()
        lat.append((time.time() - t) * 1000)
        status, size, ctype = r.status, len(body), r.getheader("content-type")
    c.close()
    lat.sort()
    return {
        "request": f"{method} {path}",
        "n": n,
        "p50Ms": round(lat[len(lat) // 2], 2),
        "p90Ms": round(lat[int(len(lat) * 0.9)], 2),
        "maxMs": round(lat[-1], 2),
        "status": status,
        "bytes": size,
        "contentType": ctype,
    }


def main():
    port = int(sys.argv[1])
    if "--view" in sys.argv:
        print(json.dumps(timed(port, "GET", "/api/v1/health/services", 30)), flush=True)
        return
    for method, path in [
        ("GET", "/health"),
        ("GET", "/api/v1/services/s{i}"),
        ("DELETE", "/api/v1/services/nope{i}"),
        ("DELETE", "/api/v1/services/s1{i}"),
        ("GET", "/api/v1/circuit-breakers/s{i}"),
    ]:
        print(json.dumps(timed(port, method, path, 200)), flush=True)


if __name__ == "__main__":
    main()
