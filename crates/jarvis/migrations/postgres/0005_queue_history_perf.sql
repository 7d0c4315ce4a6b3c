-- Jarvis PostgreSQL schema, part 5: fewer indexes on the hot tables, a daily duration rollup.
--
-- Every task is written three times while it is processed (claimed, settled, one history row per
-- attempt). Neither update can be a HOT update (both change `status`, which the queue's partial
-- indexes depend on), so each one inserts a new entry into every index of `tasks`; the history
-- insert does so into every index of `task_history`. Measured on 20,000 tasks (claim in batches
-- of 1,010, settle in batches of 253, history in batches of 506; bench/queue/README.md), this
-- file plus time-ordered (UUIDv7) ids cut PostgreSQL's work for the processing phase by ~30 %.
--
-- Applied automatically at start, and runnable by hand (`psql "$DATABASE_URL" < 0005_queue_history_perf.sql`);
-- every statement is idempotent.

-- Idempotency keys are optional and most tasks have none: index only the keys that exist
-- (the column-level UNIQUE constraint indexed a NULL for every task, on every update).
-- `ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL` infers this index.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_idempotency_key_idx
    ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_idempotency_key_key;

-- Listing tasks newest first walks the primary key backwards: task ids are UUIDv7, ordered by
-- creation time (ids made before this migration were random v4; they sort arbitrarily).
DROP INDEX IF EXISTS tasks_domain_action_created_idx;

-- History: retention walks the primary key from the oldest row (ids are assigned in insertion
-- order), and the recent-successful-runs query walks (domain, action, id DESC), so the two
-- time indexes are no longer needed.
DROP INDEX IF EXISTS task_history_finished_idx;
DROP INDEX IF EXISTS task_history_domain_action_finished_idx;

-- The duration histogram summed per UTC day. A stats query over a long range reads whole days
-- here and only the hours at its edges from task_duration_hourly: with 10 M history rows over
-- 30 days, one domain/action had ~55,000 hourly bucket rows to sum per answer (31 ms p50);
-- per day it is ~2,400. Maintained in the same transaction as the hourly rows.
CREATE TABLE IF NOT EXISTS task_duration_daily (
    domain  TEXT NOT NULL,
    action  TEXT NOT NULL,
    day     TIMESTAMPTZ NOT NULL,
    bucket  SMALLINT NOT NULL,
    count   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, action, day, bucket)
);
-- Backfill from the hourly rows (a second run finds the rows there and changes nothing).
INSERT INTO task_duration_daily (domain, action, day, bucket, count)
SELECT domain, action, date_trunc('day', hour, 'UTC'), bucket, SUM(count)
FROM task_duration_hourly GROUP BY 1, 2, 3, 4
ON CONFLICT (domain, action, day, bucket) DO NOTHING;
