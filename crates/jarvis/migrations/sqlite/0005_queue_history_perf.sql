-- Jarvis embedded (SQLite) schema, part 5: fewer indexes on the hot tables, a daily duration rollup.
-- Mirrors migrations/postgres/0005_queue_history_perf.sql, except the idempotency key: SQLite cannot
-- drop a column's UNIQUE constraint without rebuilding the table, and its cost here is small.

-- Listing tasks newest first walks the primary key backwards (task ids are UUIDv7, in creation
-- order; as text, their order is the same).
DROP INDEX IF EXISTS tasks_domain_action_created_idx;

-- Retention walks the rowid from the oldest row; recent successful runs walk
-- (domain, action, id DESC).
DROP INDEX IF EXISTS task_history_finished_idx;
DROP INDEX IF EXISTS task_history_domain_action_finished_idx;

-- The duration histogram summed per UTC day (see the PostgreSQL file). Days are written like
-- every time here: RFC 3339 UTC text, '2026-11-29T00:00:00+00:00'.
CREATE TABLE IF NOT EXISTS task_duration_daily (
    domain  TEXT NOT NULL,
    action  TEXT NOT NULL,
    day     TEXT NOT NULL,
    bucket  INTEGER NOT NULL,
    count   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, action, day, bucket)
);
INSERT INTO task_duration_daily (domain, action, day, bucket, count)
SELECT domain, action, substr(hour, 1, 10) || 'T00:00:00+00:00', bucket, SUM(count)
FROM task_duration_hourly GROUP BY 1, 2, 3, 4
ON CONFLICT (domain, action, day, bucket) DO NOTHING;
