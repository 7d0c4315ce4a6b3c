-- Jarvis embedded (SQLite) schema, part 15: traces. Mirrors migrations/postgres/0015_traces.sql;
-- times are RFC 3339 UTC text, JSON is text.
CREATE TABLE IF NOT EXISTS trace_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    correlation_id TEXT NOT NULL,
    at             TEXT NOT NULL,
    kind           TEXT NOT NULL,
    instance_id    TEXT NOT NULL,
    task_id        TEXT,
    attempt        INTEGER,
    summary        TEXT NOT NULL,
    duration_ms    INTEGER,
    status         TEXT,
    detail         TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX IF NOT EXISTS trace_events_correlation_idx ON trace_events (correlation_id, at);
CREATE INDEX IF NOT EXISTS trace_events_at_idx ON trace_events (at);
CREATE INDEX IF NOT EXISTS tasks_correlation_idx ON tasks (correlation_id);
CREATE INDEX IF NOT EXISTS health_checks_correlation_idx ON health_checks (correlation_id);
ALTER TABLE tasks ADD COLUMN traceparent TEXT;
