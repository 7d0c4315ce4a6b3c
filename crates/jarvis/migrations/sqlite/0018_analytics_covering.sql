-- Jarvis embedded (SQLite) schema, part 18: covering indexes for the analytics (issue 15).
--
-- Applied automatically at start, and also runnable by hand before instances start.
-- Every statement is idempotent, so running the file twice does no harm.
--
-- The rollups are rowid tables: the 0014 index on a rollup's time column found each row of a
-- range and then looked the row up in the table for the counts, one b-tree search per row
-- (~21,000 for the hour series of every domain/action, ~27,500 for the day series and the
-- overview at 30 days of history). These indexes hold what those statements read, in the
-- order they group it, so they read the index alone (bench/analytics/README.md). They replace
-- the 0014 time indexes (same leading column, so every statement that used those can use
-- these). Each upsert of a rollup row now also rewrites its entry here (the counts changed);
-- PostgreSQL needs none of this (its 0018 is empty; its plans meet the target).

DROP INDEX IF EXISTS task_stats_hourly_hour_idx;
CREATE INDEX IF NOT EXISTS task_stats_hourly_hour_cover_idx ON task_stats_hourly
    (hour, domain, action, total, succeeded, failed, duration_sum_ms, cost_sum_usd, cost_count);

DROP INDEX IF EXISTS task_duration_hourly_hour_idx;
CREATE INDEX IF NOT EXISTS task_duration_hourly_hour_cover_idx ON task_duration_hourly
    (hour, bucket, domain, action, count);

DROP INDEX IF EXISTS task_duration_daily_day_idx;
CREATE INDEX IF NOT EXISTS task_duration_daily_day_cover_idx ON task_duration_daily
    (day, bucket, domain, action, count);

DROP INDEX IF EXISTS task_duration_minute_minute_idx;
CREATE INDEX IF NOT EXISTS task_duration_minute_minute_cover_idx ON task_duration_minute
    (minute, bucket, domain, action, count);

-- The overview sums every domain/action's histogram and totals: in (domain, action, bucket)
-- and (domain, action) order, so the sums stream without a sort (it names these with
-- INDEXED BY: with the statistics of ANALYZE the planner prefers the primary keys, which hold
-- no counts).
CREATE INDEX IF NOT EXISTS task_duration_daily_pair_cover_idx ON task_duration_daily
    (domain, action, bucket, day, count);
CREATE INDEX IF NOT EXISTS task_stats_hourly_pair_cover_idx ON task_stats_hourly
    (domain, action, hour, total, succeeded, failed, duration_sum_ms, cost_sum_usd, cost_count,
     last_executed_at);
