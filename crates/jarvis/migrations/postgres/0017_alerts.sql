-- Jarvis PostgreSQL schema, part 17: alerts (issue 16, `GET /api/v1/alerts`).
--
-- Applied automatically at start, and runnable by hand before instances start:
--   psql "$DATABASE_URL" < 0017_alerts.sql
-- Every statement is idempotent, so running the file twice does no harm. Times are unix
-- milliseconds, like breaker_transitions.

-- One row per episode of an alert: opened by the evaluation that first found it firing,
-- resolved once no instance has found it firing for three evaluation intervals.
CREATE TABLE IF NOT EXISTS alert_episodes (
    id            BIGSERIAL PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    rule          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    -- A JSON object of the alert's labels.
    labels        TEXT NOT NULL,
    summary       TEXT NOT NULL,
    state         TEXT NOT NULL,
    starts_at_ms  BIGINT NOT NULL,
    ends_at_ms    BIGINT,
    -- When an instance last found it firing (every evaluation that does moves it on).
    last_seen_ms  BIGINT NOT NULL,
    -- The silence that matched it when it opened: nothing is sent for the episode.
    silenced_by   TEXT,
    opened_by     TEXT NOT NULL,
    resolved_by   TEXT
);
-- At most one firing episode per alert: instances that find the same alert firing insert
-- with ON CONFLICT DO NOTHING, and only the one whose row went in notifies.
CREATE UNIQUE INDEX IF NOT EXISTS alert_episodes_firing_idx
    ON alert_episodes (fingerprint) WHERE state = 'firing';
CREATE INDEX IF NOT EXISTS alert_episodes_starts_idx ON alert_episodes (starts_at_ms);

-- Silences: alerts matching every label of `matchers` (a JSON object) while
-- starts_at_ms <= now < ends_at_ms are recorded, not sent.
CREATE TABLE IF NOT EXISTS alert_silences (
    id            TEXT PRIMARY KEY,
    matchers      TEXT NOT NULL,
    starts_at_ms  BIGINT NOT NULL,
    ends_at_ms    BIGINT NOT NULL,
    comment       TEXT,
    created_by    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_silences_ends_idx ON alert_silences (ends_at_ms);

-- The outbox: one message for one webhook about one or more episodes (a JSON array of their
-- IDs), queued in the transaction that opened or resolved them. An instance claims due rows
-- (FOR UPDATE SKIP LOCKED, then a lease) so that each message is sent by one instance.
CREATE TABLE IF NOT EXISTS alert_notifications (
    id               BIGSERIAL PRIMARY KEY,
    webhook          TEXT NOT NULL,
    status           TEXT NOT NULL,
    episode_ids      TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  BIGINT NOT NULL,
    lease_until_ms   BIGINT,
    locked_by        TEXT,
    last_error       TEXT,
    created_at_ms    BIGINT NOT NULL,
    sent_at_ms       BIGINT
);
CREATE INDEX IF NOT EXISTS alert_notifications_due_idx
    ON alert_notifications (next_attempt_ms) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS alert_notifications_sent_idx
    ON alert_notifications (webhook, sent_at_ms);
CREATE INDEX IF NOT EXISTS alert_notifications_created_idx
    ON alert_notifications (created_at_ms);
