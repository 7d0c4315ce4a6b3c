#!/usr/bin/env bash
# Trace API benchmark: GET /api/v1/traces/{correlationId} over HTTP against a release Jarvis
# whose store holds 10,000,000 task history rows (two attempts per correlation ID), plus
# 1,000,000 tasks, 1,000,000 trace events and 1,000,000 health checks, on PostgreSQL and on
# SQLite. The rows are written with one INSERT … SELECT per table (generate_series on
# PostgreSQL, a recursive CTE in sqlite3), secondary indexes built once afterwards, as a
# restore would; then 300 timed requests for random existing IDs (after 30 warm-up requests)
# give p50/p95/p99 as curl measures them (connection set-up included).
#   bench/trace/run.sh [--rows N] [--backend postgres|sqlite|both]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
ROWS=10000000
BACKEND=both
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS="$2"; shift 2 ;;
    --backend) BACKEND="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
OTHER=$(( ROWS / 10 ))
IDS=$(( ROWS / 2 ))
tools_name="trace/run.sh"
# shellcheck source=../../scripts/lib/tools.sh
. "$ROOT/scripts/lib/tools.sh"
ensure_apt curl:curl sqlite3:sqlite3
[ "$BACKEND" = sqlite ] || { ensure_postgres; ensure_apt psql:postgresql-client; }
PG="postgres://postgres@127.0.0.1:5432"
cargo build --release -p jarvis >&2
TMP="$(mktemp -d)"
DB="bench_trace_$$"
JPID=
cleanup() {
  [ -n "$JPID" ] && kill "$JPID" 2>/dev/null || true
  [ "$BACKEND" = sqlite ] || psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT
PORT=4791
TOKEN=bench-token-0123456789abcdef

# Serves the store named by the environment, times the trace route, prints one JSON line.
measure() {
  local backend="$1"; shift
  env "$@" JARVIS_AUTH_TOKEN=$TOKEN JARVIS_PORT=$PORT JARVIS_BIND=127.0.0.1 \
    JARVIS_DATA_DIR="$TMP/data" JARVIS_LOG_DIR="$TMP/logs" LOG_LEVEL=warn JARVIS_WORKERS_ENABLED=false \
    target/release/jarvis serve >"$TMP/serve.log" 2>&1 &
  JPID=$!
  for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
  local sample="req-$(( IDS / 2 ))"
  curl -fs -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/traces/$sample" > "$TMP/trace.json"
  for i in $(seq 1 30); do
    curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/traces/req-$(( (i * 7919) % IDS ))"
  done
  for i in $(seq 1 300); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $TOKEN" \
      "http://127.0.0.1:$PORT/api/v1/traces/req-$(( (RANDOM * 32768 + RANDOM) % IDS ))"
  done | sort -k2 -n | awk -v backend="$backend" -v rows="$ROWS" '
    $1 != 200 { bad++ } { a[NR]=$2*1000 } END {
      p50=a[int(NR*0.5+0.999)]; p95=a[int(NR*0.95+0.999)]; p99=a[int(NR*0.99+0.999)];
      printf("{\"backend\": \"%s\", \"historyRows\": %d, \"samples\": %d, \"non200\": %d, \"p50Ms\": %.2f, \"p95Ms\": %.2f, \"p99Ms\": %.2f}\n",
             backend, rows, NR, bad, p50, p95, p99) }'
  echo "$backend: $(jq -c '.data | {correlationId, instances, kinds: [.events[].kind]}' "$TMP/trace.json" 2>/dev/null || head -c 400 "$TMP/trace.json")" >&2
  kill "$JPID"; wait "$JPID" 2>/dev/null || true; JPID=
  rm -rf "$TMP/data" "$TMP/logs"
}

if [ "$BACKEND" != sqlite ]; then
  psql -q -v ON_ERROR_STOP=1 "$PG/postgres" -c "CREATE DATABASE $DB"
  DATABASE_URL="$PG/$DB" JARVIS_DATA_DIR="$TMP/data" target/release/jarvis migrate >&2
  t0=$(date +%s)
  psql -q -v ON_ERROR_STOP=1 "$PG/$DB" <<SQL
SET maintenance_work_mem = '1GB';
-- The secondary indexes of the seeded tables are dropped, and rebuilt from their migrated
-- definitions after the load.
CREATE TEMP TABLE saved AS SELECT indexname, indexdef FROM pg_indexes
 WHERE schemaname = 'public' AND tablename IN ('task_history', 'tasks', 'trace_events', 'health_checks')
   AND indexname NOT LIKE '%_pkey';
ALTER TABLE task_history DROP CONSTRAINT IF EXISTS task_history_record_id_key;
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_idempotency_key_key;
DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT indexname FROM saved LOOP EXECUTE format('DROP INDEX IF EXISTS %I', r.indexname); END LOOP;
END \$\$;
-- Two attempts per correlation ID (req-0 … req-$IDS), 30 days back.
INSERT INTO task_history (record_id, task_id, domain, action, attempt, parameters, success, duration_ms,
                          failure_reason, correlation_id, instance_id, started_at, finished_at)
SELECT gen_random_uuid(), gen_random_uuid(), 'domain' || (g % 4), 'action' || (g % 5), 1 + g % 2,
       '{"bpm": 120}'::jsonb, g % 2 = 1, (g::int8 * 7919) % 5000,
       CASE WHEN g % 2 = 0 THEN 'agent answered HTTP 503' END,
       'req-' || (g / 2), 'bench', ts, ts + interval '20 ms'
FROM (SELECT g, now() - (($ROWS - g) * interval '30 days' / $ROWS) AS ts
      FROM generate_series(0, $ROWS - 1) g) s;
INSERT INTO tasks (id, domain, action, status, attempts, correlation_id, created_at, finished_at, updated_at)
SELECT gen_random_uuid(), 'domain' || (g % 4), 'action' || (g % 5), 'succeeded', 2,
       'req-' || (g * 5), now() - interval '1 day', now() - interval '1 day', now()
FROM generate_series(0, $OTHER - 1) g;
INSERT INTO trace_events (correlation_id, at, kind, instance_id, summary, duration_ms, status)
SELECT 'req-' || (g * 5), now() - interval '1 day', 'request', 'bench', 'POST /api/v1/execute → 202', 3, '202'
FROM generate_series(0, $OTHER - 1) g;
INSERT INTO health_checks (service, status, message, latency_ms, correlation_id, instance_id, checked_at)
SELECT 'svc' || (g % 50), 'up', 'HTTP 200', 12, 'hc-' || g, 'bench', now() - (g * interval '1 second')
FROM generate_series(0, $OTHER - 1) g;
DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT indexdef FROM saved LOOP EXECUTE r.indexdef; END LOOP;
END \$\$;
ALTER TABLE task_history ADD CONSTRAINT task_history_record_id_key UNIQUE USING INDEX task_history_record_id_key;
ANALYZE;
SQL
  echo "postgres: loaded $ROWS history rows (+ $OTHER tasks, trace events, checks) in $(( $(date +%s) - t0 )) s" >&2
  measure postgres DATABASE_URL="$PG/$DB"
fi

if [ "$BACKEND" != postgres ]; then
  mkdir -p "$TMP/sqlite"
  JARVIS_DATA_DIR="$TMP/sqlite" target/release/jarvis migrate >&2
  t0=$(date +%s)
  # Indexes dropped before and created after the load, from their migrated definitions.
  sqlite3 "$TMP/sqlite/jarvis.db" "SELECT sql || ';' FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
    AND tbl_name IN ('task_history', 'tasks', 'trace_events', 'health_checks')" > "$TMP/indexes.sql"
  sqlite3 "$TMP/sqlite/jarvis.db" "SELECT 'DROP INDEX ' || name || ';' FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
    AND tbl_name IN ('task_history', 'tasks', 'trace_events', 'health_checks')" > "$TMP/drop.sql"
  # The history in transactions of 1,000,000 rows (one 10 M-row statement ran out of
  # SQLite's temporary space here).
  history_chunks() {
    local lo=0 hi
    while [ "$lo" -lt "$ROWS" ]; do
      hi=$(( lo + 1000000 < ROWS ? lo + 1000000 : ROWS ))
      cat <<CHUNK
BEGIN;
WITH RECURSIVE s(g) AS (SELECT $lo UNION ALL SELECT g + 1 FROM s WHERE g + 1 < $hi)
INSERT INTO task_history (record_id, task_id, domain, action, attempt, parameters, success, duration_ms,
                          failure_reason, correlation_id, instance_id, started_at, finished_at)
SELECT $UUID, $UUID, 'domain' || (g % 4), 'action' || (g % 5), 1 + g % 2,
       '{"bpm": 120}', g % 2, (g * 7919) % 5000,
       CASE WHEN g % 2 = 0 THEN 'agent answered HTTP 503' END, 'req-' || (g / 2), 'bench',
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || (($ROWS - g) * 2592 / ($ROWS / 1000)) || ' seconds'),
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || (($ROWS - g) * 2592 / ($ROWS / 1000)) || ' seconds')
FROM s;
COMMIT;
CHUNK
      lo=$hi
    done
  }
  UUID="lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-a' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
  sqlite3 "$TMP/sqlite/jarvis.db" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
.read $TMP/drop.sql
-- Times as Jarvis writes them (RFC 3339 text), UUIDs as hyphenated text.
$(history_chunks)
BEGIN;
WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g + 1 < $OTHER)
INSERT INTO tasks (id, domain, action, parameters, status, attempts, correlation_id, created_at, finished_at, updated_at, run_at)
SELECT $UUID, 'domain' || (g % 4), 'action' || (g % 5), '{}', 'succeeded', 2, 'req-' || (g * 5),
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day'),
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day')
FROM s;
WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g + 1 < $OTHER)
INSERT INTO trace_events (correlation_id, at, kind, instance_id, summary, duration_ms, status)
SELECT 'req-' || (g * 5), strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day'), 'request', 'bench',
       'POST /api/v1/execute → 202', 3, '202'
FROM s;
WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g + 1 < $OTHER)
INSERT INTO health_checks (service, status, message, latency_ms, correlation_id, instance_id, checked_at)
SELECT 'svc' || (g % 50), 'up', 'HTTP 200', 12, 'hc-' || g, 'bench',
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || g || ' seconds')
FROM s;
COMMIT;
.read $TMP/indexes.sql
ANALYZE;
SQL
  echo "sqlite: loaded $ROWS history rows (+ $OTHER tasks, trace events, checks) in $(( $(date +%s) - t0 )) s" >&2
  rm -rf "$TMP/data"; mv "$TMP/sqlite" "$TMP/data"
  measure sqlite
fi
