#!/usr/bin/env bash
# AI gateway benchmark (issue 14): the same chat requests, side by side in one run, to
#   direct    the mock OpenAI-compatible upstream (crates/jarvis/examples/ai_mock.rs)
#   jarvis    target/release/jarvis serve (embedded store) in front of it
#   litellm   LiteLLM's proxy 1.108.7 (one worker) in front of it
# at each concurrency: p50/p99 latency, added latency over direct, req/s, errors, peak RSS;
# then fallback latency (LiteLLM: a failing first deployment, fallback to the mock; Jarvis:
# "not yet (no model groups)").
#
#   bench/ai/run.sh [--runs N] [--duration SECS] [--warmup SECS] [--concurrency 1,32]
#                   [--kinds chat,stream] [--delay-ms MS] [--only direct,jarvis,litellm]
#
# Installs what is missing: python3/venv (Debian) and LiteLLM into bench/ai/.venv (pip, git-
# ignored), curl. Builds the release binary and the two examples. Writes
# bench/ai/results/ai-<UTC stamp>.{jsonl,md,log}; prints the markdown table.
# Ports (override with the environment): AI_BENCH_PORT_BASE (default 18100) + 1 mock,
# + 2 failing mock, + 3 Jarvis, + 4 LiteLLM.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

RUNS=1
DURATION=10
WARMUP=2
CONCURRENCY=1,32
KINDS=chat
DELAY_MS=0
ONLY=direct,jarvis,litellm
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --kinds) KINDS="$2"; shift 2 ;;
    --delay-ms) DELAY_MS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

LITELLM_VERSION=1.108.7
BASE="${AI_BENCH_PORT_BASE:-18100}"
MOCK_PORT=$((BASE + 1))
FAIL_PORT=$((BASE + 2))
JARVIS_PORT=$((BASE + 3))
LITELLM_PORT=$((BASE + 4))

RESULTS="$HERE/results"
mkdir -p "$RESULTS"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
JSONL="$RESULTS/ai-$STAMP.jsonl"
MD="$RESULTS/ai-$STAMP.md"
LOG="$RESULTS/ai-$STAMP.log"
WORK="$(mktemp -d /tmp/ai-bench.XXXXXX)"
: > "$LOG"
say() { echo "[ai/run.sh $(date -u +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- tools ------------------------------------------------------------------------------
tools_name="ai/run.sh"
# shellcheck source=../../scripts/lib/tools.sh
. "$ROOT/scripts/lib/tools.sh"
ensure_apt curl:curl
VENV="$HERE/.venv"
if want litellm; then
  # `litellm[proxy]` is checked by the version of `litellm` (ensure_py_venv reads the version
  # of the requirement's name, which has no extra).
  if ! "$VENV/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('litellm') != '$LITELLM_VERSION')" 2>/dev/null \
      || ! "$VENV/bin/python" -c "import fastapi, uvicorn, backoff" 2>/dev/null; then
    ensure_py_venv "$VENV" || exit 1
    say "installing litellm[proxy]==$LITELLM_VERSION into $VENV (pip, a few minutes)"
    "$VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"
  fi
fi

say "building target/release/jarvis and the ai_mock/ai_load examples (cargo --release)"
cargo build --release -q -p jarvis --bin jarvis --example ai_mock --example ai_load

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$MOCK_PORT" "$FAIL_PORT" "$JARVIS_PORT" "$LITELLM_PORT"; do
  port_free "$p" || { say "port $p is taken (set AI_BENCH_PORT_BASE)"; exit 1; }
done
# wait_http URL [HEADER]: until URL answers (any status), at most 120 s.
wait_http() {
  local _
  for _ in $(seq 1 600); do
    if curl -s -o /dev/null -m 2 ${2:+-H "$2"} "$1"; then
      return 0
    fi
    sleep 0.2
  done
  say "$1 did not answer within 120 s"
  return 1
}

# ---- processes --------------------------------------------------------------------------
target/release/examples/ai_mock --port "$MOCK_PORT" --delay-ms "$DELAY_MS" >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
target/release/examples/ai_mock --port "$FAIL_PORT" --fail >"$WORK/fail.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/stats"
wait_http "http://127.0.0.1:$FAIL_PORT/stats"

MOCK_PID="${PIDS[0]}"
TARGETS=(--target "direct|http://127.0.0.1:$MOCK_PORT/v1|dummy|gpt-4o-mini|$MOCK_PID")
FALLBACKS=()
TOKEN="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
if want jarvis; then
  mkdir -p "$WORK/jarvis"
  # The fallback measurement's model group: its first deployment is the failing mock (500 on
  # every call), its second the working one; like LiteLLM's `bench-failing`.
  cat >"$WORK/jarvis/jarvis.toml" <<EOF
[ai.models.bench-failing]
deployments = [
  { name = "bench-failing", provider = "openai", model = "gpt-4o-mini", baseUrl = "http://127.0.0.1:$FAIL_PORT/v1" },
  { name = "bench-working", provider = "openai", model = "gpt-4o-mini" },
]
EOF
  JARVIS_AUTH_TOKEN="$TOKEN" JARVIS_PORT="$JARVIS_PORT" JARVIS_BIND=127.0.0.1 \
    JARVIS_CONFIG="$WORK/jarvis/jarvis.toml" \
    JARVIS_DATA_DIR="$WORK/jarvis" JARVIS_LOG_DIR="$WORK/jarvis" \
    OPENAI_API_KEY=dummy OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" \
    target/release/jarvis serve >"$WORK/jarvis.out" 2>&1 &
  JARVIS_PID=$!
  PIDS+=("$JARVIS_PID")
  wait_http "http://127.0.0.1:$JARVIS_PORT/health"
  TARGETS+=(--target "jarvis|http://127.0.0.1:$JARVIS_PORT/v1|$TOKEN|openai/gpt-4o-mini|$JARVIS_PID")
  FALLBACKS+=(--fallback "jarvis|http://127.0.0.1:$JARVIS_PORT/v1|$TOKEN|bench-failing|$JARVIS_PID")
fi
if want litellm; then
  LITELLM_KEY="sk-$TOKEN"
  sed -e "s/@MOCK_PORT@/$MOCK_PORT/g" -e "s/@FAIL_PORT@/$FAIL_PORT/g" \
    "$HERE/litellm.yaml" >"$WORK/litellm.yaml"
  # The price table bundled with the package (no download at start-up).
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_MASTER_KEY="$LITELLM_KEY" \
    "$VENV/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" \
    --num_workers 1 >"$WORK/litellm.out" 2>&1 &
  LITELLM_PID=$!
  PIDS+=("$LITELLM_PID")
  wait_http "http://127.0.0.1:$LITELLM_PORT/health/liveliness"
  TARGETS+=(--target "litellm|http://127.0.0.1:$LITELLM_PORT/v1|$LITELLM_KEY|bench|$LITELLM_PID")
  FALLBACKS+=(--fallback "litellm|http://127.0.0.1:$LITELLM_PORT/v1|$LITELLM_KEY|bench-failing|$LITELLM_PID")
fi

{
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' (+ uncommitted changes)')"
  echo "litellm $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || echo -)"
  echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$LOG" >&2

say "measuring: runs=$RUNS duration=${DURATION}s warmup=${WARMUP}s concurrency=$CONCURRENCY kinds=$KINDS delay=${DELAY_MS}ms"
target/release/examples/ai_load "${TARGETS[@]}" "${FALLBACKS[@]}" \
  --failing-stats "http://127.0.0.1:$FAIL_PORT/stats" \
  --concurrency "$CONCURRENCY" --kinds "$KINDS" --runs "$RUNS" \
  --duration-secs "$DURATION" --warmup-secs "$WARMUP" \
  --jsonl "$JSONL" --markdown "$MD" 2> >(tee -a "$LOG" >&2)

{
  echo
  echo "Upstream calls counted by the mocks: direct $(curl -s "http://127.0.0.1:$MOCK_PORT/stats"), failing $(curl -s "http://127.0.0.1:$FAIL_PORT/stats")"
  echo
  echo "Machine: $(sed -n 's/^cpu //p' "$LOG"); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(sed -n 's/^commit //p' "$LOG" | sed 's/^/commit /'); LiteLLM $(sed -n 's/^litellm //p' "$LOG")."
} >>"$MD"
say "written: $MD, $JSONL, $LOG"
