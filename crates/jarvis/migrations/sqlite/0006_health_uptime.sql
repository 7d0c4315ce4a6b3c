-- Jarvis embedded (SQLite) schema, part 6: uptime counts of monitored services.
-- Mirrors migrations/postgres/0006_health_uptime.sql.

CREATE TABLE IF NOT EXISTS health_uptime (
    service      TEXT NOT NULL,
    width_s      INTEGER NOT NULL CHECK (width_s > 0),
    bucket_start INTEGER NOT NULL,
    up           INTEGER NOT NULL DEFAULT 0 CHECK (up >= 0),
    total        INTEGER NOT NULL DEFAULT 0 CHECK (total >= up),
    PRIMARY KEY (service, width_s, bucket_start)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS health_uptime_bucket_idx ON health_uptime (bucket_start);
