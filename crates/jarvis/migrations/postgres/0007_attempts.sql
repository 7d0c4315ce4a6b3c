-- Jarvis PostgreSQL schema, part 7: one record per attempt, and attempts that never reached
-- their agent.
--
-- Applied automatically at start, and also runnable by hand before instances start:
--   psql "$DATABASE_URL" < 0007_attempts.sql
-- Every statement is idempotent, so running the file twice does no harm.

-- When the running attempt's agent was called (NULL: claimed but not called yet). A claim
-- resets it; the worker sets it, durably, just before it calls an HTTP agent. The reclaimer
-- gives an attempt whose holder died before that point back instead of spending it: no agent
-- was called, so there is nothing to record.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS called_at TIMESTAMPTZ;

-- Someone waits for the task (`?wait=true`): its settlement is announced with
-- NOTIFY jarvis_task_done, so that a waiter on another instance learns of it at once.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS notify_done BOOLEAN NOT NULL DEFAULT false;

-- Whether Jarvis cut the attempt off at its timeout (rather than reading it from the text).
ALTER TABLE task_history ADD COLUMN IF NOT EXISTS timed_out BOOLEAN NOT NULL DEFAULT false;

-- One record per attempt, enforced: an instance that recorded an attempt and died before it
-- settled the task, and the reclaimer that later finds the task, can never both record it; a
-- record that arrives late (a spool replayed after a restart) is dropped by the insert's
-- ON CONFLICT DO NOTHING. Records written twice for one attempt before this migration are
-- reduced to the first (their rollup counts stay as they were).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'task_history_task_attempt_idx') THEN
        DELETE FROM task_history h USING task_history d
        WHERE h.task_id = d.task_id AND h.attempt = d.attempt AND h.id > d.id;
    END IF;
END $$;
CREATE UNIQUE INDEX IF NOT EXISTS task_history_task_attempt_idx
    ON task_history (task_id, attempt);
-- The unique index serves every lookup by task the old one did.
DROP INDEX IF EXISTS task_history_task_idx;
