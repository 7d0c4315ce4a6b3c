#!/usr/bin/env bash
# History benchmarks on the local PostgreSQL (fresh databases, dropped afterwards):
#   1. recording: 200,000 execution records through the real Recorder (batched inserts with
#      their rollups), records/s from hand-over to commit;
#   2. stats: 10,000,000 history rows loaded with generate_series over 30 days (4 domains x
#      5 actions), their rollups built with the same bucketing as Jarvis, then 200 timed
#      GET /api/v1/tasks/history calls against a running Jarvis (p50/p95/p99 with curl).
#   bench/history/run.sh [--records N] [--rows M]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
RECORDS=200000
ROWS=10000000
while [ $# -gt 0 ]; do
  case "$1" in
    --records) RECORDS="$2"; shift 2 ;;
    --rows) ROWS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
# PostgreSQL (installed and started when missing), psql and curl (Debian packages).
tools_name="history/run.sh"
# shellcheck source=../../scripts/lib/tools.sh
. "$ROOT/scripts/lib/tools.sh"
ensure_postgres
ensure_apt psql:postgresql-client curl:curl
PG="postgres://postgres@127.0.0.1:5432"
psql_admin() { psql -q -v ON_ERROR_STOP=1 "$PG/postgres" "$@"; }
cargo build --release -p jarvis --example history_bench >&2

# ---- 1. recording rate -------------------------------------------------------------------
DB1="bench_history_rec_$$"
psql_admin -c "CREATE DATABASE $DB1"
trap 'psql_admin -c "DROP DATABASE IF EXISTS $DB1 WITH (FORCE)"; psql_admin -c "DROP DATABASE IF EXISTS ${DB2:-none} WITH (FORCE)"; [ -n "${JPID:-}" ] && kill "$JPID" 2>/dev/null || true' EXIT
DATABASE_URL="$PG/$DB1" target/release/examples/history_bench "$RECORDS"

# ---- 2. stats query at 10M rows -------------------------------------------------------------
DB2="bench_history_stats_$$"
psql_admin -c "CREATE DATABASE $DB2"
DATABASE_URL="$PG/$DB2" target/release/jarvis migrate >&2
t0=$(date +%s)
psql -q -v ON_ERROR_STOP=1 "$PG/$DB2" <<SQL
-- Bulk load: the secondary indexes are dropped first and built once afterwards (their exact
-- definitions are kept from the migrated schema), as a restore would; inserting 10 M rows into
-- the indexed table took more than 7 minutes here.
SET maintenance_work_mem = '1GB';
CREATE TEMP TABLE saved_indexes AS
    SELECT indexname, indexdef FROM pg_indexes
    WHERE schemaname = 'public' AND tablename = 'task_history' AND indexname <> 'task_history_pkey';
ALTER TABLE task_history DROP CONSTRAINT IF EXISTS task_history_record_id_key;
DO \$\$ DECLARE r record; BEGIN
    FOR r IN SELECT indexname FROM saved_indexes LOOP EXECUTE format('DROP INDEX IF EXISTS %I', r.indexname); END LOOP;
END \$\$;
-- Rows in time order (ids ascending with finish time, as Jarvis inserts them), 30 days back.
INSERT INTO task_history (record_id, task_id, domain, action, attempt, parameters, success,
                          duration_ms, impact_score, failure_reason, failure_group, cost_usd,
                          correlation_id, instance_id, started_at, finished_at)
SELECT gen_random_uuid(), gen_random_uuid(), 'domain' || (g % 4), 'action' || (g % 5), 1,
       jsonb_build_object('bpm', 80 + (g % 7) * 10, 'genre', CASE WHEN g % 3 = 0 THEN 'jazz' ELSE 'rock' END),
       g % 10 <> 0, (g::int8 * 7919) % 5000, (g % 100)::float8,
       CASE WHEN g % 10 = 0 THEN 'timeout after ' || (30000 + g % 97) || ' ms' END,
       CASE WHEN g % 10 = 0 THEN 'f00dfeed00000001' END, 0.002,
       'req-' || g, 'bench', ts, ts
FROM (SELECT g, now() - (($ROWS - g) * interval '30 days' / $ROWS) AS ts FROM generate_series(1, $ROWS) g) s;
DO \$\$ DECLARE r record; BEGIN
    FOR r IN SELECT indexdef FROM saved_indexes LOOP EXECUTE r.indexdef; END LOOP;
END \$\$;
ALTER TABLE task_history ADD CONSTRAINT task_history_record_id_key UNIQUE USING INDEX task_history_record_id_key;
-- The rollups Jarvis maintains incrementally, built here in one pass (same bucket formula as
-- crates/jarvis/src/history/rollup.rs: 0 for 0 ms, else 1 + floor(ln(ms) / ln(1.1))).
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
SELECT domain, action, date_trunc('day', hour, 'UTC'), bucket, sum(count)
FROM task_duration_hourly GROUP BY 1, 2, 3, 4;
INSERT INTO task_failure_hourly
SELECT domain, action, date_trunc('hour', finished_at), failure_group, 'timeout after <num> ms',
       min(failure_reason), count(*)
FROM task_history WHERE NOT success GROUP BY 1, 2, 3, 4;
ANALYZE;
SQL
echo "loaded $(psql -Atc 'SELECT count(*) FROM task_history' "$PG/$DB2") history rows in $(( $(date +%s) - t0 )) s" >&2
PORT=4790
TOKEN=bench-token-0123456789abcdef
TMP="$(mktemp -d)"
DATABASE_URL="$PG/$DB2" JARVIS_AUTH_TOKEN=$TOKEN JARVIS_PORT=$PORT JARVIS_BIND=127.0.0.1 \
  JARVIS_DATA_DIR="$TMP/data" JARVIS_LOG_DIR="$TMP/logs" LOG_LEVEL=warn JARVIS_WORKERS_ENABLED=false \
  target/release/jarvis serve >/dev/null 2>&1 &
JPID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT/api/v1/tasks/history?domain=domain1&action=action1"
curl -fs -H "Authorization: Bearer $TOKEN" "$URL" > "$TMP/stats.json"
for _ in $(seq 1 20); do curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "$URL"; done
for _ in $(seq 1 200); do curl -fs -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "$URL"; done |
  sort -n | awk -v rows="$ROWS" -v stats="$(cat "$TMP/stats.json")" '{a[NR]=$1*1000} END {
    p50=a[int(NR*0.5+0.999)]; p95=a[int(NR*0.95+0.999)]; p99=a[int(NR*0.99+0.999)];
    printf("{\"historyRows\": %d, \"samples\": %d, \"statsP50Ms\": %.2f, \"statsP95Ms\": %.2f, \"statsP99Ms\": %.2f}\n", rows, NR, p50, p95, p99) }'
echo "stats answer: $(head -c 600 "$TMP/stats.json")" >&2
kill "$JPID"; wait "$JPID" 2>/dev/null || true; JPID=
rm -rf "$TMP"
