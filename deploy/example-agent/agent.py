#!/usr/bin/env python3
"""A tiny example agent for Jarvis, using only the Python standard library.

It implements the agent protocol of Jarvis: for each attempt of a task Jarvis sends

    POST <agent url>   (header X-Correlation-ID)
    {"taskId", "domain", "action", "parameters", "attempt", "correlationId"}

and the agent answers 200 with {"success": true, "impactScore"?, "output"?, "costUsd"?} or
{"success": false, "error": "<reason>"}. A `success: false` answer is a failed task from a healthy
agent; an HTTP 5xx, a timeout or a refused connection counts against the agent's circuit breaker.

Actions (all in one domain, AGENT_DOMAIN, "demo" by default):
    echo           succeeds and returns its parameters
    sleep          waits parameters.durationMs (at most 60000) then succeeds
    generate-beat  "generates a beat": parameters.bpm (60-200), parameters.bars (1-64); takes
                   about 20 ms per bar, so a long beat can be made to time out
    fail           answers success:false with parameters.reason
    flaky          fails with probability parameters.failureRate (0-1, default 0.5)
    crash          answers HTTP 500 (counts against the breaker)
Anything else answers success:false ("unknown action").

GET /health answers 200 {"status": "ok"}: the agent declares it as its health URL, so Jarvis
checks it through the domain's circuit breaker and holds the domain's tasks while the agent is
down.

Environment:
    AGENT_HOST (0.0.0.0), AGENT_PORT (8080), AGENT_DOMAIN (demo)
    JARVIS_URL          when set, the agent registers itself with Jarvis at start:
                        PUT {JARVIS_URL}/api/v1/agents/{domain}
                        {"url": AGENT_PUBLIC_URL, "healthUrl": .../health, "healthIntervalMs": 5000}
    JARVIS_AUTH_TOKEN   bearer token for that registration
    AGENT_PUBLIC_URL    the URL Jarvis reaches this agent at (default http://<hostname>:<port>/)

Logs are JSON lines on stdout, each with the task's correlationId.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1024 * 1024
MAX_SLEEP_MS = 60_000


def log(level: str, message: str, **fields: object) -> None:
    line = {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "message": message,
        "target": "example_agent",
        **fields,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def clamp_number(value: object, default: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return max(low, min(high, float(value)))


def run_action(action: str, parameters: dict) -> tuple[int, dict]:
    """Runs one action; returns (HTTP status, answer body)."""
    if action == "echo":
        return 200, {"success": True, "impactScore": 10, "output": parameters, "costUsd": 0}
    if action == "sleep":
        duration_ms = clamp_number(parameters.get("durationMs"), 100, 0, MAX_SLEEP_MS)
        time.sleep(duration_ms / 1000)
        return 200, {"success": True, "impactScore": 20, "output": {"sleptMs": int(duration_ms)}}
    if action == "generate-beat":
        bpm = int(clamp_number(parameters.get("bpm"), 120, 60, 200))
        bars = int(clamp_number(parameters.get("bars"), 4, 1, 64))
        time.sleep(bars * 0.02)
        steps = ["x", ".", "o", "."]
        pattern = " ".join("".join(random.choice(steps) for _ in range(16)) for _ in range(bars))
        impact = min(100, 40 + bars)
        return 200, {
            "success": True,
            "impactScore": impact,
            "output": {"bpm": bpm, "bars": bars, "pattern": pattern},
            "costUsd": round(0.001 * bars, 6),
        }
    if action == "fail":
        reason = parameters.get("reason")
        return 200, {"success": False, "error": reason if isinstance(reason, str) and reason else "requested failure"}
    if action == "flaky":
        rate = clamp_number(parameters.get("failureRate"), 0.5, 0, 1)
        if random.random() < rate:
            return 200, {"success": False, "error": "flaky failure"}
        return 200, {"success": True, "impactScore": 30, "output": {"lucky": True}}
    if action == "crash":
        return 500, {"success": False, "error": "agent crashed (requested)"}
    return 200, {"success": False, "error": f"unknown action: {action}"}


class AgentHandler(BaseHTTPRequestHandler):
    server_version = "jarvis-example-agent/1.0"
    domain = "demo"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # replaced by the JSON lines below

    def send_json(self, status: int, body: dict, correlation_id: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if correlation_id:
            self.send_header("X-Correlation-ID", correlation_id)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.split("?", 1)[0] in ("/health", "/healthz"):
            self.send_json(200, {"status": "ok", "domain": self.domain})
        else:
            self.send_json(404, {"success": False, "error": "not found"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        started = time.monotonic()
        header_id = self.headers.get("X-Correlation-ID")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.send_json(400, {"success": False, "error": "missing or too large body"}, header_id)
            return
        try:
            task = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as err:
            self.send_json(400, {"success": False, "error": f"malformed JSON: {err}"}, header_id)
            return
        if not isinstance(task, dict):
            self.send_json(400, {"success": False, "error": "the body must be a JSON object"}, header_id)
            return
        correlation_id = task.get("correlationId") or header_id
        parameters = task.get("parameters") if isinstance(task.get("parameters"), dict) else {}
        action = str(task.get("action") or "")
        log("info", "task received", correlationId=correlation_id, taskId=task.get("taskId"),
            domain=task.get("domain"), action=action, attempt=task.get("attempt"))
        status, answer = run_action(action, parameters)
        self.send_json(status, answer, correlation_id)
        log("info" if answer.get("success") else "warn", "task answered", correlationId=correlation_id,
            taskId=task.get("taskId"), action=action, status=status, success=answer.get("success"),
            durationMs=int((time.monotonic() - started) * 1000))


def register_with_jarvis(jarvis_url: str, token: str, domain: str, public_url: str, stop: threading.Event) -> None:
    """Registers the agent with its health URL, retrying until Jarvis answers.

    Jarvis checks the health URL as the service named after the domain, through the breaker the
    domain's tasks use: five failed checks 5 s apart open it, so 20-25 s after the agent stops
    answering its tasks wait instead of spending attempts.
    """
    base = jarvis_url.rstrip("/")
    health_url = public_url.rstrip("/") + "/health"
    requests = [
        (f"{base}/api/v1/agents/{domain}",
         {"url": public_url, "healthUrl": health_url, "healthIntervalMs": 5000}),
    ]
    delay = 1.0
    deadline = time.monotonic() + 300
    for url, body in requests:
        while not stop.is_set():
            request = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT", headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
            })
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    log("info", "registered with Jarvis", url=url, status=response.status)
                    break
            except (urllib.error.URLError, OSError) as err:
                if time.monotonic() > deadline:
                    log("error", "giving up registering with Jarvis", url=url, error=str(err))
                    return
                log("warn", "Jarvis not reachable yet, retrying", url=url, error=str(err))
                stop.wait(delay)
                delay = min(delay * 2, 10.0)


def main() -> int:
    host = os.environ.get("AGENT_HOST", "0.0.0.0")
    port = int(os.environ.get("AGENT_PORT", "8080"))
    AgentHandler.domain = os.environ.get("AGENT_DOMAIN", "demo")
    server = ThreadingHTTPServer((host, port), AgentHandler)
    server.daemon_threads = True
    stop = threading.Event()

    def shutdown(signum: int, _frame: object) -> None:
        log("info", "shutting down", signal=signum)
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)

    jarvis_url = os.environ.get("JARVIS_URL", "")
    if jarvis_url:
        public_url = os.environ.get("AGENT_PUBLIC_URL") or f"http://{socket.gethostname()}:{server.server_port}/"
        threading.Thread(
            target=register_with_jarvis,
            args=(jarvis_url, os.environ.get("JARVIS_AUTH_TOKEN", ""), AgentHandler.domain, public_url, stop),
            daemon=True,
        ).start()

    log("info", "example agent listening", host=host, port=server.server_port, domain=AgentHandler.domain)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
