-- Jarvis embedded (SQLite) schema, part 14: analytics (issue 15).
-- Mirrors migrations/postgres/0014_analytics.sql.

CREATE TABLE IF NOT EXISTS task_stats_minute (
    domain           TEXT NOT NULL,
    action           TEXT NOT NULL,
    minute           TEXT NOT NULL,
    total            INTEGER NOT NULL DEFAULT 0,
    succeeded        INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    duration_sum_ms  INTEGER NOT NULL DEFAULT 0,
    cost_sum_usd     REAL NOT NULL DEFAULT 0,
    cost_count       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, action, minute)
);
CREATE TABLE IF NOT EXISTS task_duration_minute (
    domain  TEXT NOT NULL,
    action  TEXT NOT NULL,
    minute  TEXT NOT NULL,
    bucket  INTEGER NOT NULL,
    count   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, action, minute, bucket)
);

CREATE INDEX IF NOT EXISTS task_stats_minute_minute_idx ON task_stats_minute (minute);
CREATE INDEX IF NOT EXISTS task_duration_minute_minute_idx ON task_duration_minute (minute);
CREATE INDEX IF NOT EXISTS task_stats_hourly_hour_idx ON task_stats_hourly (hour);
CREATE INDEX IF NOT EXISTS task_duration_hourly_hour_idx ON task_duration_hourly (hour);
CREATE INDEX IF NOT EXISTS task_duration_daily_day_idx ON task_duration_daily (day);
CREATE INDEX IF NOT EXISTS task_failure_hourly_hour_idx ON task_failure_hourly (hour);

CREATE TABLE IF NOT EXISTS breaker_transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    breaker     TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    instance    TEXT,
    reason      TEXT NOT NULL,
    at_ms       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS breaker_transitions_at_idx ON breaker_transitions (at_ms);
CREATE INDEX IF NOT EXISTS breaker_transitions_breaker_at_idx
    ON breaker_transitions (breaker, at_ms);

CREATE TRIGGER IF NOT EXISTS circuit_breaker_state_opened
AFTER INSERT ON circuit_breaker_state WHEN NEW.state <> 'CLOSED'
BEGIN
    INSERT INTO breaker_transitions (breaker, from_state, to_state, instance, reason, at_ms)
    VALUES (NEW.name, 'CLOSED', NEW.state, NEW.updated_by,
        CASE
            WHEN NEW.state = 'OPEN' AND NEW.forced THEN 'opened by an operator'
            WHEN NEW.state = 'OPEN'
                THEN 'failures reached the threshold: ' || COALESCE(NEW.last_failure_reason, 'failure')
            ELSE 'open period over: trial allowed'
        END,
        CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER IF NOT EXISTS circuit_breaker_state_transition
AFTER UPDATE OF state ON circuit_breaker_state WHEN NEW.state IS NOT OLD.state
BEGIN
    INSERT INTO breaker_transitions (breaker, from_state, to_state, instance, reason, at_ms)
    VALUES (NEW.name, OLD.state, NEW.state, NEW.updated_by,
        CASE
            WHEN NEW.state = 'OPEN' AND NEW.forced THEN 'opened by an operator'
            WHEN NEW.state = 'OPEN' AND OLD.state = 'HALF_OPEN'
                THEN 'trial failed: ' || COALESCE(NEW.last_failure_reason, 'failure')
            WHEN NEW.state = 'OPEN'
                THEN 'failures reached the threshold: ' || COALESCE(NEW.last_failure_reason, 'failure')
            WHEN NEW.state = 'HALF_OPEN' THEN 'open period over: trial allowed'
            WHEN OLD.state = 'HALF_OPEN' THEN 'trial succeeded'
            ELSE 'closed by an operator'
        END,
        CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

ALTER TABLE health_uptime ADD COLUMN latency_sum_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE health_uptime ADD COLUMN latency_count INTEGER NOT NULL DEFAULT 0;
