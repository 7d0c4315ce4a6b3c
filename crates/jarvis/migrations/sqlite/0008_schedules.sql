-- Jarvis embedded (SQLite) schema, part 8: recurring schedules.
-- Mirrors migrations/postgres/0008_schedules.sql; times are RFC 3339 UTC text written by Jarvis,
-- JSON is text.

CREATE TABLE IF NOT EXISTS schedules (
    name           TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    cron           TEXT,
    every_ms       INTEGER CHECK (every_ms IS NULL OR every_ms >= 1000),
    timezone       TEXT NOT NULL DEFAULT 'UTC',
    task           TEXT NOT NULL,
    paused         INTEGER NOT NULL DEFAULT 0,
    missed         TEXT NOT NULL DEFAULT 'skip' CHECK (missed IN ('skip', 'catchUp')),
    catch_up_limit INTEGER NOT NULL DEFAULT 10 CHECK (catch_up_limit >= 1),
    next_run_at    TEXT,
    last_run_at    TEXT,
    last_task_id   TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CHECK ((cron IS NULL) <> (every_ms IS NULL))
);

CREATE INDEX IF NOT EXISTS schedules_next_run_idx
    ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;
