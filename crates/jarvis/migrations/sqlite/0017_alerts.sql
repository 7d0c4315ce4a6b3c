-- Jarvis embedded (SQLite) schema, part 17: alerts. Mirrors migrations/postgres/0017_alerts.sql.
CREATE TABLE IF NOT EXISTS alert_episodes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint   TEXT NOT NULL,
    rule          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    labels        TEXT NOT NULL,
    summary       TEXT NOT NULL,
    state         TEXT NOT NULL,
    starts_at_ms  INTEGER NOT NULL,
    ends_at_ms    INTEGER,
    last_seen_ms  INTEGER NOT NULL,
    silenced_by   TEXT,
    opened_by     TEXT NOT NULL,
    resolved_by   TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS alert_episodes_firing_idx
    ON alert_episodes (fingerprint) WHERE state = 'firing';
CREATE INDEX IF NOT EXISTS alert_episodes_starts_idx ON alert_episodes (starts_at_ms);

CREATE TABLE IF NOT EXISTS alert_silences (
    id            TEXT PRIMARY KEY,
    matchers      TEXT NOT NULL,
    starts_at_ms  INTEGER NOT NULL,
    ends_at_ms    INTEGER NOT NULL,
    comment       TEXT,
    created_by    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_silences_ends_idx ON alert_silences (ends_at_ms);

CREATE TABLE IF NOT EXISTS alert_notifications (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook          TEXT NOT NULL,
    status           TEXT NOT NULL,
    episode_ids      TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    lease_until_ms   INTEGER,
    locked_by        TEXT,
    last_error       TEXT,
    created_at_ms    INTEGER NOT NULL,
    sent_at_ms       INTEGER
);
CREATE INDEX IF NOT EXISTS alert_notifications_due_idx
    ON alert_notifications (next_attempt_ms) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS alert_notifications_sent_idx
    ON alert_notifications (webhook, sent_at_ms);
CREATE INDEX IF NOT EXISTS alert_notifications_created_idx
    ON alert_notifications (created_at_ms);
