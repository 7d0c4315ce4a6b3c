-- Jarvis PostgreSQL schema, part 8: recurring schedules.
--
-- Applied automatically at start, and also runnable by hand before instances start:
--   psql -v ON_ERROR_STOP=1 "$DATABASE_URL" < 0008_schedules.sql
-- Every statement is idempotent, so running the file twice does no harm.

-- One row per schedule: when it ticks (a cron expression in a time zone, or every N ms on
-- multiples of N since the Unix epoch), the task each tick submits, and the next tick.
-- Every instance's scheduler claims a due tick by moving `next_run_at` forward with a
-- compare-and-swap (`… WHERE name = $1 AND next_run_at = <the due tick>`); the task itself is
-- submitted first, with the idempotency key `schedule:<name>:<tick>`, so a crash between the
-- two, or two instances racing for one tick, never gives a tick two tasks or none.
CREATE TABLE IF NOT EXISTS schedules (
    name           TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    cron           TEXT,
    every_ms       BIGINT CHECK (every_ms IS NULL OR every_ms >= 1000),
    timezone       TEXT NOT NULL DEFAULT 'UTC',
    -- The task each tick submits, as given (`TaskInput` JSON, validated when stored).
    task           JSONB NOT NULL,
    paused         BOOLEAN NOT NULL DEFAULT FALSE,
    missed         TEXT NOT NULL DEFAULT 'skip' CHECK (missed IN ('skip', 'catchUp')),
    catch_up_limit INTEGER NOT NULL DEFAULT 10 CHECK (catch_up_limit >= 1),
    -- The next tick to submit; NULL while paused.
    next_run_at    TIMESTAMPTZ,
    -- The latest tick submitted, and its task (text: the same column on both backends).
    last_run_at    TIMESTAMPTZ,
    last_task_id   TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT schedules_one_timing CHECK ((cron IS NULL) <> (every_ms IS NULL))
);

-- The schedulers ask for the earliest tick and for the due ones.
CREATE INDEX IF NOT EXISTS schedules_next_run_idx
    ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;
