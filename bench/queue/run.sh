#!/usr/bin/env bash
# Queue benchmark: Jarvis (if bench/queue/jarvis.sh exists and is executable)
# side by side with graphile-worker 0.18 and BullMQ 6.7, same workload, one run.
#
#   bench/queue/run.sh [--tasks N] [--concurrency C] [--runs K] [--only LIST]
#
#   --only   comma-separated subset of: graphile-default, graphile-tuned,
#            bullmq-redis, bullmq-postgresql, jarvis   (default: all)
#
# Environment:
#   BENCH_WAIT_QUIET=SECONDS  before starting, wait up to SECONDS for the 1-minute
#                             load average to fall below BENCH_QUIET_LOAD (default
#                             0.5); the run proceeds anyway afterwards and the
#                             load is recorded either way. Default 0 (no wait).
#
# Writes bench/out/queue-<timestamp>.jsonl (one result line per system) and
# bench/out/queue-<timestamp>.log (progress + machine state), then prints the
# side-by-side table (report.js). Exit status is non-zero if any system failed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT_DIR="$ROOT/bench/out"

TASKS=20000
CONCURRENCY=10
RUNS=3
ONLY="graphile-default,graphile-tuned,bullmq-redis,bullmq-postgresql,jarvis"
while [ $# -gt 0 ]; do
  case "$1" in
    --tasks) TASKS="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for v in "$TASKS" "$CONCURRENCY" "$RUNS"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "--tasks/--concurrency/--runs must be positive integers" >&2; exit 2; }
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

mkdir -p "$OUT_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
JSONL="$OUT_DIR/queue-$STAMP.jsonl"
LOG="$OUT_DIR/queue-$STAMP.log"
: > "$JSONL"
: > "$LOG"
say() { echo "[run.sh $(date -u +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

# ---- dependencies and services ----------------------------------------------------------
# Installed when missing (scripts/lib/tools.sh): node and npm, the peers' npm packages,
# PostgreSQL and Redis (Debian packages), each started when it is not running.
tools_name="run.sh"
# shellcheck source=../../scripts/lib/tools.sh
. "$ROOT/scripts/lib/tools.sh"
ensure_node
ensure_npm_ci "$HERE/peers" graphile-worker bullmq pg
ensure_postgres
ensure_redis

# ---- machine state -----------------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
# processes using CPU right now (0.5 s sample), to tell whether a build shared the machine
busy() {
  echo "busiest processes (0.5 s sample):"
  top -b -n 2 -d 0.5 -w 200 2>/dev/null | awk '/^top -/{n++} n==2 && /^ *[0-9]+ /{print}' |
    sort -k9 -nr | awk "NR <= 5" | awk '{printf "  %5s%% %s\n", $9, $12}'
}
WAIT="${BENCH_WAIT_QUIET:-0}"
QUIET="${BENCH_QUIET_LOAD:-0.5}"
if [ "$WAIT" -gt 0 ] 2>/dev/null; then
  deadline=$(( $(date +%s) + WAIT ))
  while awk -v l="$(load1)" -v q="$QUIET" 'BEGIN{exit !(l>=q)}' && [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 5
  done
fi
{
  echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "node $(node --version); $(psql -h 127.0.0.1 -U postgres -Atc 'show server_version' 2>/dev/null | sed 's/^/PostgreSQL /'); $(redis-server --version | awk '{print "Redis", $3}')"
  echo "postgres: fsync=$(psql -h 127.0.0.1 -U postgres -Atc 'show fsync' 2>/dev/null) synchronous_commit=$(psql -h 127.0.0.1 -U postgres -Atc 'show synchronous_commit' 2>/dev/null)"
  echo "load before: $(cat /proc/loadavg)"
  busy
} | tee -a "$LOG" >&2

# ---- runs --------------------------------------------------------------------------------
FAILED=0
ARGS=(--tasks "$TASKS" --concurrency "$CONCURRENCY" --runs "$RUNS")
run_one() { # name, working directory, command...
  local name="$1" dir="$2"; shift 2
  local tmp; tmp="$(mktemp)"
  say "running $name: $*"
  if (cd "$dir" && "$@") >"$tmp" 2> >(tee -a "$LOG" >&2); then
    local n=0
    while IFS= read -r line; do
      if node -e 'const o=JSON.parse(process.argv[1]); if(typeof o.system!=="string") process.exit(1)' "$line" 2>/dev/null; then
        echo "$line" >> "$JSONL"; n=$((n+1))
      else
        echo "$name stdout (not a result line): $line" >> "$LOG"
      fi
    done < "$tmp"
    if [ "$n" -eq 0 ]; then say "$name printed no result line"; FAILED=1; fi
  else
    say "$name FAILED (exit $?)"; FAILED=1
  fi
  rm -f "$tmp"
  say "load now: $(cat /proc/loadavg)"
  busy >> "$LOG"
}

want graphile-default  && run_one graphile-default  "$HERE/peers" node graphile.js --mode default "${ARGS[@]}"
want graphile-tuned    && run_one graphile-tuned    "$HERE/peers" node graphile.js --mode tuned "${ARGS[@]}"
want bullmq-redis      && run_one bullmq-redis      "$HERE/peers" node bullmq.js --backend redis "${ARGS[@]}"
want bullmq-postgresql && run_one bullmq-postgresql "$HERE/peers" node bullmq.js --backend postgresql "${ARGS[@]}"
if want jarvis; then
  if [ -x "$HERE/jarvis.sh" ]; then
    run_one jarvis "$ROOT" "$HERE/jarvis.sh" "${ARGS[@]}"
  else
    say "no executable bench/queue/jarvis.sh: Jarvis not measured in this run"
  fi
fi

echo "load after: $(cat /proc/loadavg)" | tee -a "$LOG" >&2
say "results: $JSONL"
if [ -s "$JSONL" ]; then
  node "$HERE/report.js" "$JSONL" | tee -a "$LOG"
fi
exit "$FAILED"
