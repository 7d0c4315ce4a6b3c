#!/usr/bin/env bash
# End-to-end tests of the web dashboard in headless Chromium, with axe-core on every page.
#
#   bash tests/e2e/run.sh            # builds jarvis (debug) unless JARVIS_BIN names a binary
#
# Self-contained on Debian/Ubuntu: installs what is missing (apt: chromium, nodejs, npm; npm ci:
# playwright-core and axe-core at the versions of package-lock.json, with no browser download),
# starts `jarvis serve` on a free port of 127.0.0.1 with a fresh SQLite data directory and a
# random token, runs scenarios.mjs against it, and stops it. Screenshots go to tests/e2e/out/
# (gitignored). Exits non-zero when a scenario fails.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"
tools_name="e2e"
# shellcheck source=../../scripts/lib/tools.sh
. scripts/lib/tools.sh

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
ensure_node
ensure_apt chromium:chromium curl:curl
ensure_npm_ci tests/e2e playwright-core axe-core

if [ -z "${JARVIS_BIN:-}" ]; then
  cargo build --locked -p jarvis >&2
  JARVIS_BIN="$repo_root/target/debug/jarvis"
fi

work="$(mktemp -d)"
jarvis_pid=""
cleanup() {
  if [ -n "$jarvis_pid" ]; then
    kill "$jarvis_pid" 2>/dev/null || true
    wait "$jarvis_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

token="e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
JARVIS_AUTH_TOKEN="$token" JARVIS_DATA_DIR="$work/data" JARVIS_PORT=0 JARVIS_BIND=127.0.0.1 \
  JARVIS_LOG_DIR="$work/logs" JARVIS_HEALTH_RELOAD_MS=200 \
  CIRCUIT_BREAKER_FAILURE_THRESHOLD=3 CIRCUIT_BREAKER_TIMEOUT_MS=600000 \
  "$JARVIS_BIN" serve >"$work/stdout.log" 2>"$work/stderr.log" &
jarvis_pid=$!

# `jarvis serve` prints the dashboard's URL (with the port it bound) at start.
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^Jarvis dashboard: //p' "$work/stderr.log" | head -1)"
  if [ -n "$url" ] && curl -fsS -o /dev/null "${url%/}/health"; then
    break
  fi
  if ! kill -0 "$jarvis_pid" 2>/dev/null; then
    echo "e2e: jarvis serve exited:" >&2
    cat "$work/stderr.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -n "$url" ] || { echo "e2e: jarvis serve printed no dashboard URL" >&2; cat "$work/stderr.log" >&2; exit 1; }
if grep -q -- "$token" "$work/stdout.log"; then
  echo "e2e: FAIL - the token appears in the log" >&2
  exit 1
fi

status=0
JARVIS_URL="$url" JARVIS_TOKEN="$token" E2E_OUT="$repo_root/tests/e2e/out" \
  node tests/e2e/scenarios.mjs || status=$?
if grep -q -- "$token" "$work/stdout.log"; then
  echo "FAIL - the token appears in the log after the scenarios" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "e2e: last log lines of jarvis:" >&2
  tail -20 "$work/stdout.log" >&2
fi
exit "$status"
