-- Jarvis PostgreSQL schema, part 15: traces (issue 15, `GET /api/v1/traces/{correlationId}`).
--
-- Applied automatically at start, and also runnable by hand before instances start:
--   psql "$DATABASE_URL" < 0015_traces.sql
-- Every statement is idempotent, so running the file twice does no harm.

-- What Jarvis did for a correlation ID that no other table keeps: the API request, calls
-- through the AI gateway, HTTP agent calls, breaker decisions. Written in batches off the
-- request path by every instance (so with PostgreSQL a trace is whole across instances), kept
-- for JARVIS_TRACE_RETENTION_HOURS, then deleted by age.
CREATE TABLE IF NOT EXISTS trace_events (
    id             BIGSERIAL PRIMARY KEY,
    correlation_id TEXT NOT NULL,
    at             TIMESTAMPTZ NOT NULL,
    kind           TEXT NOT NULL,
    instance_id    TEXT NOT NULL,
    task_id        UUID,
    attempt        INTEGER,
    summary        TEXT NOT NULL,
    duration_ms    BIGINT,
    status         TEXT,
    detail         JSONB NOT NULL DEFAULT '{}'::jsonb
);

-- One trace, in time order.
CREATE INDEX IF NOT EXISTS trace_events_correlation_idx ON trace_events (correlation_id, at);
-- Retention deletes by age.
CREATE INDEX IF NOT EXISTS trace_events_at_idx ON trace_events (at);

-- The other sources of a trace, read by correlation ID (task_history has
-- task_history_correlation_idx since 0001).
CREATE INDEX IF NOT EXISTS tasks_correlation_idx ON tasks (correlation_id);
CREATE INDEX IF NOT EXISTS health_checks_correlation_idx ON health_checks (correlation_id);

-- The W3C trace context (`traceparent`) of the request that submitted a task, passed on to
-- its agent calls with a new span ID each (NULL: the trace is derived from the correlation ID).
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS traceparent TEXT;
