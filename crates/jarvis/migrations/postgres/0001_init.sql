-- Jarvis PostgreSQL schema, part 1: circuit breaker state and task history.
--
-- Applied automatically at start (`jarvis serve`, `jarvis migrate`), and also runnable by hand
-- before instances start:   psql "$DATABASE_URL" < 0001_init.sql
-- Every statement is idempotent, so running the file twice does no harm.

-- One row per named circuit breaker, shared by every instance.
CREATE TABLE IF NOT EXISTS circuit_breaker_state (
    name                 TEXT PRIMARY KEY CHECK (char_length(name) BETWEEN 1 AND 64),
    state                TEXT NOT NULL DEFAULT 'CLOSED'
                         CHECK (state IN ('CLOSED', 'OPEN', 'HALF_OPEN')),
    consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    half_open_successes  INTEGER NOT NULL DEFAULT 0 CHECK (half_open_successes >= 0),
    opened_at            TIMESTAMPTZ,
    next_attempt_at      TIMESTAMPTZ,
    last_failure_at      TIMESTAMPTZ,
    last_failure_reason  TEXT,
    -- Held open by an operator: no trial until closed or reset.
    forced               BOOLEAN NOT NULL DEFAULT false,
    -- The instance that holds the cluster-wide half-open trial, and until when.
    trial_holder         TEXT,
    trial_expires_at     TIMESTAMPTZ,
    -- Instances whose failures make up the current count (comma-separated), for the quorum.
    failure_instances    TEXT NOT NULL DEFAULT '',
    -- Compare-and-set guard: every transition increments it.
    version              BIGINT NOT NULL DEFAULT 0,
    updated_by           TEXT,
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Circuits that are not closed, for dashboards and reconciliation.
CREATE INDEX IF NOT EXISTS circuit_breaker_state_not_closed_idx
    ON circuit_breaker_state (state) WHERE state <> 'CLOSED';

-- One row per task attempt.
CREATE TABLE IF NOT EXISTS task_history (
    id                 BIGSERIAL PRIMARY KEY,
    -- Identifies the record itself, so that replaying a spool file never duplicates a row.
    record_id          UUID NOT NULL UNIQUE,
    task_id            UUID NOT NULL,
    domain             TEXT NOT NULL,
    action             TEXT NOT NULL,
    attempt            INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    parameters         JSONB NOT NULL DEFAULT '{}'::jsonb,
    learned_parameters JSONB,
    success            BOOLEAN NOT NULL,
    duration_ms        BIGINT NOT NULL CHECK (duration_ms >= 0),
    impact_score       DOUBLE PRECISION CHECK (impact_score IS NULL OR impact_score BETWEEN 0 AND 100),
    failure_reason     TEXT,
    failure_group      TEXT,
    cost_usd           DOUBLE PRECISION,
    correlation_id     TEXT,
    instance_id        TEXT,
    started_at         TIMESTAMPTZ NOT NULL,
    finished_at        TIMESTAMPTZ NOT NULL
);

-- Statistics per domain/action over a time range.
CREATE INDEX IF NOT EXISTS task_history_domain_action_finished_idx
    ON task_history (domain, action, finished_at DESC);
-- All attempts of one task.
CREATE INDEX IF NOT EXISTS task_history_task_idx ON task_history (task_id);
-- Tracing a request end to end.
CREATE INDEX IF NOT EXISTS task_history_correlation_idx ON task_history (correlation_id);
-- Retention deletes by age.
CREATE INDEX IF NOT EXISTS task_history_finished_idx ON task_history (finished_at);

-- Monitored services, registered by the API or the config file, checked by every instance.
CREATE TABLE IF NOT EXISTS services (
    name            TEXT PRIMARY KEY CHECK (char_length(name) BETWEEN 1 AND 64),
    url             TEXT NOT NULL,
    method          TEXT NOT NULL DEFAULT 'GET',
    interval_ms     BIGINT NOT NULL,
    timeout_ms      BIGINT NOT NULL,
    critical        BOOLEAN NOT NULL DEFAULT false,
    expected_status JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- HTTP agents, one per domain.
CREATE TABLE IF NOT EXISTS agents (
    domain      TEXT PRIMARY KEY CHECK (char_length(domain) BETWEEN 1 AND 64),
    url         TEXT NOT NULL,
    timeout_ms  BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
