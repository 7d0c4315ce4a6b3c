-- Jarvis embedded (SQLite) schema, part 1: circuit breaker state and task history.
-- Mirrors migrations/postgres/0001_init.sql; times are RFC 3339 UTC text, JSON is text.

CREATE TABLE IF NOT EXISTS circuit_breaker_state (
    name                 TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    state                TEXT NOT NULL DEFAULT 'CLOSED'
                         CHECK (state IN ('CLOSED', 'OPEN', 'HALF_OPEN')),
    consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    half_open_successes  INTEGER NOT NULL DEFAULT 0 CHECK (half_open_successes >= 0),
    opened_at            TEXT,
    next_attempt_at      TEXT,
    last_failure_at      TEXT,
    last_failure_reason  TEXT,
    forced               INTEGER NOT NULL DEFAULT 0,
    trial_holder         TEXT,
    trial_expires_at     TEXT,
    failure_instances    TEXT NOT NULL DEFAULT '',
    version              INTEGER NOT NULL DEFAULT 0,
    updated_by           TEXT,
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE IF NOT EXISTS task_history (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id          TEXT NOT NULL UNIQUE,
    task_id            TEXT NOT NULL,
    domain             TEXT NOT NULL,
    action             TEXT NOT NULL,
    attempt            INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    parameters         TEXT NOT NULL DEFAULT '{}',
    learned_parameters TEXT,
    success            INTEGER NOT NULL CHECK (success IN (0, 1)),
    duration_ms        INTEGER NOT NULL CHECK (duration_ms >= 0),
    impact_score       REAL CHECK (impact_score IS NULL OR impact_score BETWEEN 0 AND 100),
    failure_reason     TEXT,
    failure_group      TEXT,
    cost_usd           REAL,
    correlation_id     TEXT,
    instance_id        TEXT,
    started_at         TEXT NOT NULL,
    finished_at        TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS task_history_domain_action_finished_idx
    ON task_history (domain, action, finished_at DESC);
CREATE INDEX IF NOT EXISTS task_history_task_idx ON task_history (task_id);
CREATE INDEX IF NOT EXISTS task_history_correlation_idx ON task_history (correlation_id);
CREATE INDEX IF NOT EXISTS task_history_finished_idx ON task_history (finished_at);

CREATE TABLE IF NOT EXISTS services (
    name            TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    url             TEXT NOT NULL,
    method          TEXT NOT NULL DEFAULT 'GET',
    interval_ms     INTEGER NOT NULL,
    timeout_ms      INTEGER NOT NULL,
    critical        INTEGER NOT NULL DEFAULT 0,
    expected_status TEXT NOT NULL DEFAULT '[]',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS agents (
    domain      TEXT PRIMARY KEY CHECK (length(domain) BETWEEN 1 AND 64),
    url         TEXT NOT NULL,
    timeout_ms  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
