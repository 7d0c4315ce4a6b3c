#!/usr/bin/env bash
# Analytics API at 10 M history rows, on PostgreSQL and on SQLite (fresh databases, dropped
# afterwards):
#   1. seed: M task_history rows over 30 days (4 domains x 5 actions, 10 % failures), with the
#      rollups Jarvis keeps for them built from those rows in SQL with Jarvis's bucketing
#      (hourly and daily totals/histograms/failure groups, minute rollups of the last 48 h),
#      150,000 breaker transitions (50 breakers, 30 days) and 30 days of hourly uptime counts
#      with latency for 100 services;
#   2. a `jarvis serve` (workers off) on that store answers every analytics endpoint:
#      20 warm-up + N timed requests each (curl time_total, so the HTTP round trip is
#      included), nearest-rank p50/p95/p99 per endpoint, one JSON line per backend/endpoint.
#   bench/analytics/run.sh [--rows M] [--samples N] [--backend postgres|sqlite|both]
#                          [--keep-pg NAME]   (PostgreSQL: seed database NAME once and keep it;
#                                              a later run with the same NAME measures it again)
#                          [--keep-sqlite FILE] (SQLite: keep the seeded store as FILE)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
ROWS=10000000
SAMPLES=200
BACKENDS="postgres sqlite"
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS="$2"; shift 2 ;;
    --samples) SAMPLES="$2"; shift 2 ;;
    --backend) [ "$2" = both ] || BACKENDS="$2"; shift 2 ;;
    --keep-pg) KEEP_PG="$2"; shift 2 ;;
    --keep-sqlite) KEEP_SQLITE="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
tools_name="analytics/run.sh"
# shellcheck source=../../scripts/lib/tools.sh
. "$ROOT/scripts/lib/tools.sh"
ensure_postgres
ensure_apt psql:postgresql-client curl:curl sqlite3:sqlite3
PG="postgres://postgres@127.0.0.1:5432"
psql_admin() { psql -q -v ON_ERROR_STOP=1 "$PG/postgres" "$@"; }
[ -n "${JARVIS_BIN:-}" ] || { cargo build --release -p jarvis >&2; JARVIS_BIN=target/release/jarvis; }
TMP="$(mktemp -d)"
DB="${KEEP_PG:-bench_analytics_$$}"
JPID=
trap '[ -n "${KEEP_PG:-}" ] || psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; [ -n "$JPID" ] && kill "$JPID" 2>/dev/null; rm -rf "$TMP"' EXIT
NOW=$(date +%s)
SPAN=$((30 * 86400))

seed_postgres() {
  STORE_ENV=(DATABASE_URL="$PG/$DB")
  if [ -n "${KEEP_PG:-}" ] && psql -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB'" "$PG/postgres" | grep -q 1; then
    echo "postgres: measuring the kept database $DB as it is" >&2
    return
  fi
  psql_admin -c "CREATE DATABASE $DB"
  DATABASE_URL="$PG/$DB" "$JARVIS_BIN" migrate >&2
  psql -q -v ON_ERROR_STOP=1 "$PG/$DB" <<SQL
SET TIME ZONE 'UTC';
SET maintenance_work_mem = '1GB';
-- The secondary indexes of task_history are dropped and built again after the load (as a
-- restore would; see bench/history/README.md).
CREATE TEMP TABLE saved_indexes AS
    SELECT indexname, indexdef FROM pg_indexes
    WHERE schemaname = 'public' AND tablename = 'task_history' AND indexname <> 'task_history_pkey';
ALTER TABLE task_history DROP CONSTRAINT IF EXISTS task_history_record_id_key;
DO \$\$ DECLARE r record; BEGIN
    FOR r IN SELECT indexname FROM saved_indexes LOOP EXECUTE format('DROP INDEX IF EXISTS %I', r.indexname); END LOOP;
END \$\$;
INSERT INTO task_history (record_id, task_id, domain, action, attempt, parameters, success,
                          duration_ms, impact_score, failure_reason, failure_group, cost_usd,
                          correlation_id, instance_id, started_at, finished_at)
SELECT gen_random_uuid(), gen_random_uuid(), 'domain' || (g % 4), 'action' || (g % 5), 1,
       jsonb_build_object('bpm', 80 + (g % 7) * 10), g % 10 <> 0, (g::int8 * 7919) % 5000,
       (g % 100)::float8,
       CASE WHEN g % 10 = 0 THEN 'timeout after ' || (30000 + g % 97) || ' ms' END,
       CASE WHEN g % 10 = 0 THEN 'f00dfeed00000001' END, 0.002, 'req-' || g, 'bench', ts, ts
FROM (SELECT g, to_timestamp($NOW - ($ROWS - g)::float8 * $SPAN / $ROWS) AS ts
      FROM generate_series(1, $ROWS) g) s;
DO \$\$ DECLARE r record; BEGIN
    FOR r IN SELECT indexdef FROM saved_indexes LOOP EXECUTE r.indexdef; END LOOP;
END \$\$;
ALTER TABLE task_history ADD CONSTRAINT task_history_record_id_key UNIQUE USING INDEX task_history_record_id_key;
-- The rollups (bucket: 0 for 0 ms, else 1 + floor(ln(ms) / ln(1.1)), as model/rollup.rs).
INSERT INTO task_stats_hourly
SELECT domain, action, date_trunc('hour', finished_at), count(*), count(*) FILTER (WHERE success),
       count(*) FILTER (WHERE NOT success), sum(duration_ms), coalesce(sum(impact_score), 0),
       count(impact_score), coalesce(sum(cost_usd), 0), count(cost_usd), max(finished_at)
FROM task_history GROUP BY 1, 2, 3;
INSERT INTO task_duration_hourly
SELECT domain, action, date_trunc('hour', finished_at),
       CASE WHEN duration_ms = 0 THEN 0 ELSE LEAST(250, 1 + floor(ln(duration_ms) / ln(1.1)))::int2 END,
       count(*)
FROM task_history GROUP BY 1, 2, 3, 4;
INSERT INTO task_duration_daily
SELECT domain, action, date_trunc('day', hour), bucket, sum(count)
FROM task_duration_hourly GROUP BY 1, 2, 3, 4;
INSERT INTO task_failure_hourly
SELECT domain, action, date_trunc('hour', finished_at), failure_group, 'timeout after <num> ms',
       min(failure_reason), count(*)
FROM task_history WHERE NOT success GROUP BY 1, 2, 3, 4;
INSERT INTO task_stats_minute
SELECT domain, action, date_trunc('minute', finished_at), count(*), count(*) FILTER (WHERE success),
       count(*) FILTER (WHERE NOT success), sum(duration_ms), coalesce(sum(cost_usd), 0), count(cost_usd)
FROM task_history WHERE finished_at >= to_timestamp($NOW - 172800) GROUP BY 1, 2, 3;
INSERT INTO task_duration_minute
SELECT domain, action, date_trunc('minute', finished_at),
       CASE WHEN duration_ms = 0 THEN 0 ELSE LEAST(250, 1 + floor(ln(duration_ms) / ln(1.1)))::int2 END,
       count(*)
FROM task_history WHERE finished_at >= to_timestamp($NOW - 172800) GROUP BY 1, 2, 3, 4;
-- 50 breakers opening, trying and closing once an hour for 30 days.
INSERT INTO breaker_transitions (breaker, from_state, to_state, instance, reason, at_ms)
SELECT 'svc' || b, f, t, 'bench', r, ($NOW - h * 3600 + k * 30)::int8 * 1000 + b
FROM generate_series(0, 49) b, generate_series(0, 24 * 30 - 1) h,
     (VALUES (0, 'CLOSED', 'OPEN', 'failures reached the threshold: timeout'),
             (1, 'OPEN', 'HALF_OPEN', 'open period over: trial allowed'),
             (2, 'HALF_OPEN', 'CLOSED', 'trial succeeded')) v(k, f, t, r);
-- 100 services checked every 10 s for 30 days, hour buckets.
INSERT INTO health_uptime (service, width_s, bucket_start, up, total, latency_sum_ms, latency_count)
SELECT 'svc' || s, 3600, ($NOW / 3600 - h) * 3600, 350 + (s + h) % 11, 360, 360 * (20 + s % 50), 360
FROM generate_series(0, 99) s, generate_series(0, 24 * 30 - 1) h;
ANALYZE;
SQL
  STORE_ENV=(DATABASE_URL="$PG/$DB")
}

seed_sqlite() {
  mkdir -p "$TMP/sqlite"
  JARVIS_DATA_DIR="$TMP/sqlite" "$JARVIS_BIN" migrate >&2
  local f="$TMP/sqlite/jarvis.db"
  # task_history's secondary indexes, dropped for the load and built again after it.
  sqlite3 "$f" "SELECT sql || ';' FROM sqlite_master WHERE type = 'index' AND tbl_name = 'task_history' AND sql IS NOT NULL" > "$TMP/indexes.sql"
  sqlite3 "$f" "SELECT 'DROP INDEX ' || name || ';' FROM sqlite_master WHERE type = 'index' AND tbl_name = 'task_history' AND sql IS NOT NULL" > "$TMP/drop.sql"
  sqlite3 -bail "$f" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -1000000;
.read $TMP/drop.sql
-- Times as Jarvis stores them (RFC 3339, "+00:00"), rows in time order.
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $ROWS)
INSERT INTO task_history (record_id, task_id, domain, action, attempt, parameters, success,
                          duration_ms, impact_score, failure_reason, failure_group, cost_usd,
                          correlation_id, instance_id, started_at, finished_at)
SELECT printf('00000000-0000-7000-8000-%012x', n), printf('00000000-0000-7000-9000-%012x', n),
       'domain' || (n % 4), 'action' || (n % 5), 1, '{"bpm":' || (80 + (n % 7) * 10) || '}',
       n % 10 <> 0, (n * 7919) % 5000, (n % 100) * 1.0,
       CASE WHEN n % 10 = 0 THEN 'timeout after ' || (30000 + n % 97) || ' ms' END,
       CASE WHEN n % 10 = 0 THEN 'f00dfeed00000001' END, 0.002, 'req-' || n, 'bench', ts, ts
FROM (SELECT n, strftime('%Y-%m-%dT%H:%M:%f+00:00', $NOW - ($ROWS - n) * 1.0 * $SPAN / $ROWS, 'unixepoch') AS ts FROM g);
.read $TMP/indexes.sql
CREATE TEMP VIEW h AS SELECT domain, action, substr(finished_at, 1, 13) || ':00:00+00:00' AS hour,
       substr(finished_at, 1, 16) || ':00+00:00' AS minute,
       substr(finished_at, 1, 10) || 'T00:00:00+00:00' AS day, success, duration_ms,
       impact_score, cost_usd, failure_group, failure_reason, finished_at,
       CASE WHEN duration_ms = 0 THEN 0 ELSE MIN(250, 1 + CAST(floor(ln(duration_ms) / ln(1.1)) AS INTEGER)) END AS bucket
FROM task_history;
INSERT INTO task_stats_hourly
SELECT domain, action, hour, count(*), sum(success), sum(NOT success), sum(duration_ms),
       coalesce(sum(impact_score), 0), count(impact_score), coalesce(sum(cost_usd), 0),
       count(cost_usd), max(finished_at)
FROM h GROUP BY 1, 2, 3;
INSERT INTO task_duration_hourly SELECT domain, action, hour, bucket, count(*) FROM h GROUP BY 1, 2, 3, 4;
INSERT INTO task_duration_daily
SELECT domain, action, substr(hour, 1, 10) || 'T00:00:00+00:00', bucket, sum(count)
FROM task_duration_hourly GROUP BY 1, 2, 3, 4;
INSERT INTO task_failure_hourly
SELECT domain, action, hour, failure_group, 'timeout after <num> ms', min(failure_reason), count(*)
FROM h WHERE NOT success GROUP BY 1, 2, 3, 4;
INSERT INTO task_stats_minute
SELECT domain, action, minute, count(*), sum(success), sum(NOT success), sum(duration_ms),
       coalesce(sum(cost_usd), 0), count(cost_usd)
FROM h WHERE finished_at >= strftime('%Y-%m-%dT%H:%M:%S', $NOW - 172800, 'unixepoch') GROUP BY 1, 2, 3;
INSERT INTO task_duration_minute
SELECT domain, action, minute, bucket, count(*)
FROM h WHERE finished_at >= strftime('%Y-%m-%dT%H:%M:%S', $NOW - 172800, 'unixepoch') GROUP BY 1, 2, 3, 4;
WITH RECURSIVE b(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM b WHERE n < 49),
     hh(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM hh WHERE n < 24 * 30 - 1),
     v(k, f, t, r) AS (VALUES (0, 'CLOSED', 'OPEN', 'failures reached the threshold: timeout'),
                              (1, 'OPEN', 'HALF_OPEN', 'open period over: trial allowed'),
                              (2, 'HALF_OPEN', 'CLOSED', 'trial succeeded'))
INSERT INTO breaker_transitions (breaker, from_state, to_state, instance, reason, at_ms)
SELECT 'svc' || b.n, f, t, 'bench', r, ($NOW - hh.n * 3600 + k * 30) * 1000 + b.n FROM b, hh, v;
WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 99),
     hh(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM hh WHERE n < 24 * 30 - 1)
INSERT INTO health_uptime (service, width_s, bucket_start, up, total, latency_sum_ms, latency_count)
SELECT 'svc' || s.n, 3600, ($NOW / 3600 - hh.n) * 3600, 350 + (s.n + hh.n) % 11, 360, 360 * (20 + s.n % 50), 360 FROM s, hh;
ANALYZE;
PRAGMA journal_mode = DELETE;
SQL
  STORE_ENV=(JARVIS_DATA_DIR="$TMP/sqlite")
}

PORT=4791
TOKEN=bench-token-0123456789abcdef
ENDPOINTS=(
  "tasks-pair-hour:/api/v1/analytics/tasks?domain=domain1&action=action1"
  "tasks-pair-minute:/api/v1/analytics/tasks?domain=domain1&action=action1&bucket=minute"
  "tasks-pair-day:/api/v1/analytics/tasks?domain=domain1&action=action1&bucket=day"
  "tasks-all-hour:/api/v1/analytics/tasks"
  "tasks-all-minute:/api/v1/analytics/tasks?bucket=minute"
  "tasks-all-day:/api/v1/analytics/tasks?bucket=day"
  "overview:/api/v1/analytics/overview"
  "tasks-history-overview:/api/v1/tasks/history"
  "breakers-all:/api/v1/analytics/breakers"
  "breakers-one-30d:/api/v1/analytics/breakers?name=svc7&since=$(date -u -d @$((NOW - SPAN)) +%Y-%m-%dT%H:%M:%SZ)"
  "services-all-hour:/api/v1/analytics/services"
  "services-one-day:/api/v1/analytics/services?name=svc7&bucket=day"
)

measure() {
  local backend="$1"
  env "${STORE_ENV[@]}" JARVIS_AUTH_TOKEN=$TOKEN JARVIS_PORT=$PORT JARVIS_BIND=127.0.0.1 \
    JARVIS_DATA_DIR="$TMP/sqlite" JARVIS_LOG_DIR="$TMP/logs" LOG_LEVEL=warn \
    JARVIS_WORKERS_ENABLED=false JARVIS_HISTORY_RETENTION_DAYS=0 \
    "$JARVIS_BIN" serve >"$TMP/serve.log" 2>&1 &
  JPID=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
  for e in "${ENDPOINTS[@]}"; do
    local name="${e%%:*}" path="${e#*:}" url
    url="http://127.0.0.1:$PORT$path"
    curl -fs -H "Authorization: Bearer $TOKEN" "$url" > "$TMP/answer.json"
    for _ in $(seq 1 20); do curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "$url"; done
    for _ in $(seq 1 "$SAMPLES"); do
      curl -fs -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "$url"
    done | sort -n | awk -v b="$backend" -v n="$name" -v rows="$ROWS" -v bytes="$(wc -c < "$TMP/answer.json")" '{a[NR]=$1*1000} END {
      printf("{\"backend\": \"%s\", \"endpoint\": \"%s\", \"historyRows\": %d, \"samples\": %d, \"answerBytes\": %d, \"p50Ms\": %.2f, \"p95Ms\": %.2f, \"p99Ms\": %.2f}\n",
             b, n, rows, NR, bytes, a[int(NR*0.5+0.999)], a[int(NR*0.95+0.999)], a[int(NR*0.99+0.999)]) }'
  done
  kill "$JPID"; wait "$JPID" 2>/dev/null || true; JPID=
}

for backend in $BACKENDS; do
  t0=$(date +%s)
  "seed_$backend"
  echo "$backend: seeded $ROWS history rows with their rollups in $(( $(date +%s) - t0 )) s (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  measure "$backend"
  if [ "$backend" = postgres ] && [ -z "${KEEP_PG:-}" ]; then psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; fi
  if [ "$backend" = sqlite ] && [ -n "${KEEP_SQLITE:-}" ]; then mv "$TMP/sqlite/jarvis.db" "$KEEP_SQLITE"; fi
  rm -rf "$TMP/sqlite"
done
