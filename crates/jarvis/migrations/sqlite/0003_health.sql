-- Jarvis embedded (SQLite) schema, part 3: health checks.
-- Mirrors migrations/postgres/0003_health.sql; times are RFC 3339 UTC text, JSON is text.

ALTER TABLE services ADD COLUMN expect_body TEXT;
ALTER TABLE services ADD COLUMN degraded_latency_ms INTEGER;

CREATE TABLE IF NOT EXISTS health_checks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    service        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('up', 'degraded', 'down')),
    message        TEXT NOT NULL,
    latency_ms     INTEGER NOT NULL CHECK (latency_ms >= 0),
    breaker_open   INTEGER NOT NULL DEFAULT 0 CHECK (breaker_open IN (0, 1)),
    correlation_id TEXT,
    instance_id    TEXT,
    checked_at     TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS health_checks_service_checked_idx
    ON health_checks (service, checked_at DESC);
CREATE INDEX IF NOT EXISTS health_checks_checked_idx ON health_checks (checked_at);
