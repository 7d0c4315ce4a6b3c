-- Jarvis PostgreSQL schema, part 3: health checks.
--
-- Applied automatically at start, and also runnable by hand before instances start:
--   psql "$DATABASE_URL" < 0003_health.sql
-- Every statement is idempotent, so running the file twice does no harm.

-- Optional check conditions of a service: a condition on the JSON body of the answer, and the
-- latency above which an answering service is reported degraded.
ALTER TABLE services ADD COLUMN IF NOT EXISTS expect_body JSONB;
ALTER TABLE services ADD COLUMN IF NOT EXISTS degraded_latency_ms BIGINT;

-- One row per check result (including checks refused by an open circuit, which did not call
-- the service). Kept for JARVIS_HEALTH_HISTORY_RETENTION_HOURS, then deleted by age.
CREATE TABLE IF NOT EXISTS health_checks (
    id             BIGSERIAL PRIMARY KEY,
    service        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('up', 'degraded', 'down')),
    message        TEXT NOT NULL,
    latency_ms     BIGINT NOT NULL CHECK (latency_ms >= 0),
    -- True when the circuit was OPEN and the service was not called.
    breaker_open   BOOLEAN NOT NULL DEFAULT false,
    correlation_id TEXT,
    instance_id    TEXT,
    checked_at     TIMESTAMPTZ NOT NULL
);

-- History of one service over a time range, newest first.
CREATE INDEX IF NOT EXISTS health_checks_service_checked_idx
    ON health_checks (service, checked_at DESC);
-- Retention deletes by age.
CREATE INDEX IF NOT EXISTS health_checks_checked_idx ON health_checks (checked_at);
