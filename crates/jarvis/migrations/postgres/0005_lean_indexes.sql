-- Jarvis PostgreSQL schema, part 5: fewer indexes on the hot tables.
--
-- Every task is written three times while it is processed (claimed, settled, one history row per
-- attempt). Neither update can be a HOT update (both change `status`, which the queue's partial
-- indexes depend on), so each one inserts a new entry into every index of `tasks`; the history
-- insert does so into every index of `task_history`. Measured on 20,000 tasks (claim in batches
-- of 1,010, settle in batches of 253, history in batches of 506; bench/queue/README.md), this
-- file plus time-ordered (UUIDv7) ids cut PostgreSQL's work for the processing phase by ~30 %.
--
-- Applied automatically at start, and runnable by hand (`psql "$DATABASE_URL" < 0005_lean_indexes.sql`);
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
