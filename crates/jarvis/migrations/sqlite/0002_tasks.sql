-- Jarvis embedded (SQLite) schema, part 2: the task queue and the statistics rollups.
-- Mirrors migrations/postgres/0002_tasks.sql; times are RFC 3339 UTC text written by Jarvis
-- (always with the same offset, so text order is time order), JSON is text.

CREATE TABLE IF NOT EXISTS tasks (
    id                 TEXT PRIMARY KEY,
    domain             TEXT NOT NULL CHECK (length(domain) BETWEEN 1 AND 64),
    action             TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    parameters         TEXT NOT NULL DEFAULT '{}',
    learned_parameters TEXT,
    status             TEXT NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled')),
    priority           INTEGER NOT NULL DEFAULT 0,
    run_at             TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts       INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    timeout_ms         INTEGER CHECK (timeout_ms IS NULL OR timeout_ms > 0),
    idempotency_key    TEXT UNIQUE,
    correlation_id     TEXT NOT NULL,
    locked_by          TEXT,
    lease_until        TEXT,
    result             TEXT,
    error              TEXT,
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT,
    duration_ms        INTEGER,
    updated_at         TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS tasks_ready_idx
    ON tasks (priority DESC, run_at, id) WHERE status IN ('queued', 'waiting');
CREATE INDEX IF NOT EXISTS tasks_running_lease_idx
    ON tasks (lease_until) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS tasks_domain_action_created_idx
    ON tasks (domain, action, created_at DESC);

CREATE TABLE IF NOT EXISTS task_stats_hourly (
    domain           TEXT NOT NULL,
    action           TEXT NOT NULL,
    hour             TEXT NOT NULL,
    total            INTEGER NOT NULL DEFAULT 0,
    succeeded        INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    duration_sum_ms  INTEGER NOT NULL DEFAULT 0,
    impact_sum       REAL NOT NULL DEFAULT 0,
    impact_count     INTEGER NOT NULL DEFAULT 0,
    cost_sum_usd     REAL NOT NULL DEFAULT 0,
    cost_count       INTEGER NOT NULL DEFAULT 0,
    last_executed_at TEXT NOT NULL,
    PRIMARY KEY (domain, action, hour)
);

CREATE TABLE IF NOT EXISTS task_duration_hourly (
    domain  TEXT NOT NULL,
    action  TEXT NOT NULL,
    hour    TEXT NOT NULL,
    bucket  INTEGER NOT NULL,
    count   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, action, hour, bucket)
);

CREATE TABLE IF NOT EXISTS task_failure_hourly (
    domain        TEXT NOT NULL,
    action        TEXT NOT NULL,
    hour          TEXT NOT NULL,
    failure_group TEXT NOT NULL,
    template      TEXT NOT NULL,
    example       TEXT NOT NULL,
    count         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, action, hour, failure_group)
);

CREATE INDEX IF NOT EXISTS task_history_domain_action_id_idx
    ON task_history (domain, action, id DESC);
