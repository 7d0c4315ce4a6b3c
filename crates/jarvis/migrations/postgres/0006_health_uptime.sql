-- Jarvis PostgreSQL schema, part 6: uptime counts of monitored services.
--
-- Applied automatically at start, and also runnable by hand before instances start:
--   psql "$DATABASE_URL" < 0006_health_uptime.sql
-- Every statement is idempotent, so running the file twice does no harm.

-- How many checks of a service found it up (or degraded) and how many were made, per bucket:
-- 5-minute buckets (width_s 300) answer "uptime over the last hour", 1-hour buckets
-- (width_s 3600) "over the last day". Every instance adds what it counted since its last sync
-- (JARVIS_HEALTH_UPTIME_SYNC_MS), so the counts of all instances add up and survive restarts;
-- a few rows per service, whatever the check rate, so reading them never scans check history.
CREATE TABLE IF NOT EXISTS health_uptime (
    service      TEXT NOT NULL,
    width_s      INTEGER NOT NULL CHECK (width_s > 0),
    -- Unix seconds at which the bucket starts (a multiple of width_s).
    bucket_start BIGINT NOT NULL,
    up           BIGINT NOT NULL DEFAULT 0 CHECK (up >= 0),
    total        BIGINT NOT NULL DEFAULT 0 CHECK (total >= up),
    PRIMARY KEY (service, width_s, bucket_start)
);

-- Reading the current buckets and deleting old ones go by time.
CREATE INDEX IF NOT EXISTS health_uptime_bucket_idx ON health_uptime (bucket_start);
