-- Jarvis PostgreSQL schema, part 14: analytics (issue 15).
--
-- Applied automatically at start, and runnable by hand before instances start:
--   psql "$DATABASE_URL" < 0014_analytics.sql
-- Every statement is idempotent, so running the file twice does no harm.

-- Minute rollups of task history, for `GET /api/v1/analytics/tasks?bucket=minute`: the same
-- counts as task_stats_hourly and the same duration histogram as task_duration_hourly, per
-- minute. Written in the same transaction as the history rows they count (only for rows really
-- inserted), kept 48 hours (the analytics retention job deletes older minutes).
CREATE TABLE IF NOT EXISTS task_stats_minute (
    domain           TEXT NOT NULL,
    action           TEXT NOT NULL,
    minute           TIMESTAMPTZ NOT NULL,
    total            BIGINT NOT NULL DEFAULT 0,
    succeeded        BIGINT NOT NULL DEFAULT 0,
    failed           BIGINT NOT NULL DEFAULT 0,
    duration_sum_ms  BIGINT NOT NULL DEFAULT 0,
    cost_sum_usd     DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost_count       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, action, minute)
);
CREATE TABLE IF NOT EXISTS task_duration_minute (
    domain  TEXT NOT NULL,
    action  TEXT NOT NULL,
    minute  TIMESTAMPTZ NOT NULL,
    bucket  SMALLINT NOT NULL,
    count   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, action, minute, bucket)
);

-- Series and overviews across every domain/action read a time range of the rollups without a
-- domain: these indexes make that a range scan instead of a scan of the whole table. They are
-- written once per new rollup row (a pair's hour, bucket …), not per history record: adding
-- to an existing row changes no indexed column, so it stays a HOT update.
CREATE INDEX IF NOT EXISTS task_stats_minute_minute_idx ON task_stats_minute (minute);
CREATE INDEX IF NOT EXISTS task_duration_minute_minute_idx ON task_duration_minute (minute);
CREATE INDEX IF NOT EXISTS task_stats_hourly_hour_idx ON task_stats_hourly (hour);
CREATE INDEX IF NOT EXISTS task_duration_hourly_hour_idx ON task_duration_hourly (hour);
CREATE INDEX IF NOT EXISTS task_duration_daily_day_idx ON task_duration_daily (day);
CREATE INDEX IF NOT EXISTS task_failure_hourly_hour_idx ON task_failure_hourly (hour);

-- Every change of a shared breaker's state, for `GET /api/v1/analytics/breakers`. Written by a
-- trigger on circuit_breaker_state, so a transition is recorded exactly once, in the statement
-- that changed the row, by whichever instance made it (`updated_by`), however many instances
-- run. Kept JARVIS_HISTORY_RETENTION_DAYS days (0: forever).
CREATE TABLE IF NOT EXISTS breaker_transitions (
    id          BIGSERIAL PRIMARY KEY,
    breaker     TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    instance    TEXT,
    reason      TEXT NOT NULL,
    -- Unix milliseconds (the database's clock, like the breaker rows' own times).
    at_ms       BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS breaker_transitions_at_idx ON breaker_transitions (at_ms);
CREATE INDEX IF NOT EXISTS breaker_transitions_breaker_at_idx
    ON breaker_transitions (breaker, at_ms);

CREATE OR REPLACE FUNCTION jarvis_breaker_transition() RETURNS trigger AS $$
DECLARE
    old_state TEXT := CASE WHEN TG_OP = 'INSERT' THEN 'CLOSED' ELSE OLD.state END;
BEGIN
    IF NEW.state IS DISTINCT FROM old_state THEN
        INSERT INTO breaker_transitions (breaker, from_state, to_state, instance, reason, at_ms)
        VALUES (NEW.name, old_state, NEW.state, NEW.updated_by,
            CASE
                WHEN NEW.state = 'OPEN' AND NEW.forced THEN 'opened by an operator'
                WHEN NEW.state = 'OPEN' AND old_state = 'HALF_OPEN'
                    THEN 'trial failed: ' || COALESCE(NEW.last_failure_reason, 'failure')
                WHEN NEW.state = 'OPEN'
                    THEN 'failures reached the threshold: '
                         || COALESCE(NEW.last_failure_reason, 'failure')
                WHEN NEW.state = 'HALF_OPEN' THEN 'open period over: trial allowed'
                WHEN old_state = 'HALF_OPEN' THEN 'trial succeeded'
                ELSE 'closed by an operator'
            END,
            (extract(epoch FROM now()) * 1000)::BIGINT);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS circuit_breaker_state_transition ON circuit_breaker_state;
CREATE TRIGGER circuit_breaker_state_transition
    AFTER INSERT OR UPDATE OF state ON circuit_breaker_state
    FOR EACH ROW EXECUTE FUNCTION jarvis_breaker_transition();

-- Latency of the checks counted in each uptime bucket (`GET /api/v1/analytics/services`):
-- the sum over the checks that reached the service (a check the open circuit rejected made no
-- call and has no latency) and how many those were.
ALTER TABLE health_uptime ADD COLUMN IF NOT EXISTS latency_sum_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE health_uptime ADD COLUMN IF NOT EXISTS latency_count BIGINT NOT NULL DEFAULT 0;
