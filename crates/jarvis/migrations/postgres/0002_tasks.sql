-- Jarvis PostgreSQL schema, part 2: the task queue and the statistics rollups of task history.
--
-- Applied automatically at start, and runnable by hand before instances start:
--     psql "$DATABASE_URL" < 0002_tasks.sql
-- Every statement is idempotent, so running the file twice does no harm.

-- The durable, shared queue: one row per task (not per attempt; attempts go to task_history).
CREATE TABLE IF NOT EXISTS tasks (
    id                 UUID PRIMARY KEY,
    domain             TEXT NOT NULL CHECK (char_length(domain) BETWEEN 1 AND 64),
    action             TEXT NOT NULL CHECK (char_length(action) BETWEEN 1 AND 64),
    parameters         JSONB NOT NULL DEFAULT '{}'::jsonb,
    learned_parameters JSONB,
    status             TEXT NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled')),
    priority           INTEGER NOT NULL DEFAULT 0,
    -- Not claimed before this time (delayed tasks, retry backoff, an open circuit).
    run_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Attempts started so far; a claim counts one, a claim refused by an open circuit does not.
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts       INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    timeout_ms         BIGINT CHECK (timeout_ms IS NULL OR timeout_ms > 0),
    -- The same key returns the same task instead of a duplicate.
    idempotency_key    TEXT UNIQUE,
    correlation_id     TEXT NOT NULL,
    -- The instance holding the task while it runs, and until when (extended while working).
    locked_by          TEXT,
    lease_until        TIMESTAMPTZ,
    result             JSONB,
    error              TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Start of the latest attempt.
    started_at         TIMESTAMPTZ,
    finished_at        TIMESTAMPTZ,
    -- Duration of the latest attempt.
    duration_ms        BIGINT,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What workers claim next: by priority, then due time. Only claimable rows are indexed.
CREATE INDEX IF NOT EXISTS tasks_ready_idx
    ON tasks (priority DESC, run_at, id) WHERE status IN ('queued', 'waiting');
-- Leases to reclaim when a worker died.
CREATE INDEX IF NOT EXISTS tasks_running_lease_idx
    ON tasks (lease_until) WHERE status = 'running';
-- Listing by domain/action.
CREATE INDEX IF NOT EXISTS tasks_domain_action_created_idx
    ON tasks (domain, action, created_at DESC);

-- Statistics rollups, maintained in the same transaction as the history rows they count (only for
-- rows actually inserted, so a replayed spool never counts twice). The stats query reads these,
-- never millions of history rows.
CREATE TABLE IF NOT EXISTS task_stats_hourly (
    domain           TEXT NOT NULL,
    action           TEXT NOT NULL,
    hour             TIMESTAMPTZ NOT NULL,
    total            BIGINT NOT NULL DEFAULT 0,
    succeeded        BIGINT NOT NULL DEFAULT 0,
    failed           BIGINT NOT NULL DEFAULT 0,
    duration_sum_ms  BIGINT NOT NULL DEFAULT 0,
    impact_sum       DOUBLE PRECISION NOT NULL DEFAULT 0,
    impact_count     BIGINT NOT NULL DEFAULT 0,
    cost_sum_usd     DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost_count       BIGINT NOT NULL DEFAULT 0,
    last_executed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (domain, action, hour)
);

-- Duration histogram per hour: log buckets (growth 1.1, so percentiles are within 5%).
CREATE TABLE IF NOT EXISTS task_duration_hourly (
    domain  TEXT NOT NULL,
    action  TEXT NOT NULL,
    hour    TIMESTAMPTZ NOT NULL,
    bucket  SMALLINT NOT NULL,
    count   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, action, hour, bucket)
);

-- Failure reasons per hour, grouped by the learning crate's fingerprint.
CREATE TABLE IF NOT EXISTS task_failure_hourly (
    domain        TEXT NOT NULL,
    action        TEXT NOT NULL,
    hour          TIMESTAMPTZ NOT NULL,
    failure_group TEXT NOT NULL,
    template      TEXT NOT NULL,
    example       TEXT NOT NULL,
    count         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, action, hour, failure_group)
);

-- Listing executions newest first with a cursor, filtered by domain/action.
CREATE INDEX IF NOT EXISTS task_history_domain_action_id_idx
    ON task_history (domain, action, id DESC);
