#!/usr/bin/env bash
# Checks a running Jarvis against its own OpenAPI document with schemathesis (PyPI): every
# operation of GET /api/v1/openapi.json gets generated valid and invalid requests (examples,
# coverage, fuzzing phases) and stateful sequences (create, read, change, delete) and every
# answer is checked: no 5xx, the status is documented, the body matches the schema, the
# content type is the documented one, invalid data is refused, a deleted resource is gone, the
# token is required. The dashboard's session routes (GET /ui/session, POST /ui/logout) get the
# session cookie of a sign-in with the token (scripts/lib/schemathesis.toml).
#
#   bash scripts/schemathesis.sh [sqlite|postgres]...   # default: sqlite postgres
#
# For each backend: starts `jarvis serve` (JARVIS_BIN, else a debug build) on a free port of
# 127.0.0.1 with a fresh data directory (and for postgres a fresh database on
# PG_HOST/PG_USER, 127.0.0.1/postgres, dropped afterwards), a random token and a fake OpenAI
# upstream (scripts/lib/fake_openai.py) for the /v1/* gateway routes; runs schemathesis with a
# bounded number of examples (SCHEMATHESIS_MAX_EXAMPLES, default 25) so that a backend takes a
# few minutes; stops the server. Exits non-zero when schemathesis finds a failure; its reports
# (JUnit, NDJSON) stay in target/schemathesis/<backend>/.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
tools_name="schemathesis"
# shellcheck source=lib/tools.sh
. scripts/lib/tools.sh

SCHEMATHESIS_VERSION=4.32.5
venv="$repo_root/.tools/py"
ensure_apt curl:curl
ensure_py_venv "$venv" "schemathesis==$SCHEMATHESIS_VERSION"

if [ -z "${JARVIS_BIN:-}" ]; then
  cargo build --locked -p jarvis >&2
  JARVIS_BIN="$repo_root/target/debug/jarvis"
fi

backends=("$@")
[ "${#backends[@]}" -gt 0 ] || backends=(sqlite postgres)
pg_host="${PG_HOST:-127.0.0.1}"
pg_user="${PG_USER:-postgres}"

work="$(mktemp -d)"
pids=()
databases=()
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  local pid db
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for db in "${databases[@]}"; do
    dropdb -h "$pg_host" -U "$pg_user" --if-exists "$db" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The fake OpenAI upstream, shared by the runs.
"$venv/bin/python" scripts/lib/fake_openai.py "$work/openai.port" &
pids+=("$!")
for _ in $(seq 1 100); do
  [ -s "$work/openai.port" ] && break
  sleep 0.1
done
openai_url="http://127.0.0.1:$(cat "$work/openai.port")/v1"

run_backend() {
  local backend="$1" dir="$work/$1" db_url="" url="" token pid status=0
  mkdir -p "$dir"
  if [ "$backend" = postgres ]; then
    local db
    db="jarvis_st_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    createdb -h "$pg_host" -U "$pg_user" "$db"
    databases+=("$db")
    db_url="postgres://$pg_user@$pg_host:5432/$db"
  elif [ "$backend" != sqlite ]; then
    echo "schemathesis: unknown backend $backend (sqlite or postgres)" >&2
    return 2
  fi
  token="st-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  env ${db_url:+DATABASE_URL="$db_url"} \
    JARVIS_AUTH_TOKEN="$token" JARVIS_DATA_DIR="$dir/data" JARVIS_PORT=0 JARVIS_BIND=127.0.0.1 \
    JARVIS_LOG_DIR="$dir/logs" OPENAI_API_KEY=sk-fake OPENAI_BASE_URL="$openai_url" \
    "$JARVIS_BIN" serve >"$dir/stdout.log" 2>"$dir/stderr.log" &
  pid=$!
  pids+=("$pid")
  # `jarvis serve` prints the dashboard's URL (with the port it bound) at start.
  for _ in $(seq 1 300); do
    url="$(sed -n 's/^Jarvis dashboard: //p' "$dir/stderr.log" | head -1)"
    url="${url%/}"
    if [ -n "$url" ] && curl -fsS -o /dev/null "$url/health"; then
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "schemathesis: jarvis serve exited:" >&2
      cat "$dir/stderr.log" >&2
      return 1
    fi
    sleep 0.1
  done
  [ -n "$url" ] || { echo "schemathesis: jarvis serve did not start" >&2; return 1; }

  local reports="$repo_root/target/schemathesis/$backend"
  rm -rf "$reports"
  mkdir -p "$reports"
  printf '\n== schemathesis against %s (%s)\n' "$url" "$backend"
  # Every check runs, except these, each for the reason given:
  # - positive_data_acceptance (a schema-valid request must get 2xx): JSON Schema cannot say
  #   what the API also requires of a valid request: an agent registered for the task's domain
  #   (else 422 no_agent), `since` before `until`, a cron expression that parses and a time
  #   zone that exists, a URL that is not link-local, an idempotency key without control
  #   characters, an integer written without a fraction (`-79.0` is a JSON Schema integer,
  #   not an i32). Such requests rightly get 400/422; the schemas state every rule they can
  #   (names, ranges, enums, required fields, no unknown fields), and negative_data_rejection
  #   checks that whatever breaks them is refused.
  # - GET /api/v1/events is a server-sent event stream that does not end while the server
  #   runs (by design: the dashboard listens to it); every request to it would only time out.
  #   tests/api/dashboard.rs covers it.
  # The request timeout is above the longest answer the API may legitimately take: a
  # `?wait=true` submission waits up to `waitMs` (at most 120 s, 30 s by default) for its task
  # (a task waiting for an agent of its domain to be registered waits that long). At 20 s a
  # wait on a task whose domain's circuit was OPEN (an agent generated here refuses every
  # call) failed the run as a "Network Error"; such a wait now ends at once, since the task
  # cannot start before the circuit's next attempt (the stateful phase had also flagged it
  # at 30 s as ST112, response time above schemathesis's default limit of 10 s). The
  # response-time limit is that same longest legitimate answer: a task that waits for its
  # domain's agent to be registered (`waitForAgent`) is still waited for, up to `waitMs`.
  # One worker: schemathesis's coverage phase parses Python ASTs, which CPython 3.11 does not
  # do safely from two threads ("SystemError: AST constructor recursion depth mismatch").
  JARVIS_ST_TOKEN="$token" "$venv/bin/schemathesis" --config-file scripts/lib/schemathesis.toml \
    run "$url/api/v1/openapi.json" \
    --url "$url" \
    --header "Authorization: Bearer $token" \
    --phases examples,coverage,fuzzing,stateful \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
    --request-timeout 130 \
    --max-response-time 125 \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --workers 1 \
    --exclude-path /api/v1/events \
    --report junit,ndjson --report-dir "$reports" \
    --output-sanitize true \
    || status=$?

  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if grep -q '"level":"ERROR"' "$dir/stdout.log" "$dir/logs/"*.log 2>/dev/null; then
    echo "schemathesis: the server logged errors during the run ($backend):" >&2
    grep -h '"level":"ERROR"' "$dir/stdout.log" "$dir/logs/"*.log 2>/dev/null | head -20 >&2
    status=1
  fi
  cp "$dir/stdout.log" "$reports/jarvis-stdout.log" 2>/dev/null || true
  return "$status"
}

failed=0
for backend in "${backends[@]}"; do
  run_backend "$backend" || failed=1
done
exit "$failed"
