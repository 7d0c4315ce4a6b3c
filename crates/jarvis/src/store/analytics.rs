//! The analytics' part of the storage trait: time series, the overview, breaker transitions
//! and service uptime, all read from rollups (never a scan of `task_history` or
//! `health_checks`), and the retention of the minute rollups and the transitions.
//!
//! The SQL is the same on both engines, written once here and expanded by
//! `impl_analytics_store!`. A series with or without a domain (and action) is a different
//! statement text rather than `$1 IS NULL OR …`, so that each has its own plan: the primary
//! keys lead with `(domain, action)`, the `0014` indexes with the time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Backend, StoreError};
use crate::model::rollup::{Bucket, FailureCount, HourTotals};

/// Which task series.
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    /// Only this domain (all when `None`).
    pub domain: Option<String>,
    /// Only this action of the domain (needs `domain`).
    pub action: Option<String>,
    /// The width of a point.
    pub bucket: Bucket,
    /// From (a bucket start, included).
    pub from: DateTime<Utc>,
    /// To (a bucket start, excluded).
    pub to: DateTime<Utc>,
    /// How many failure groups.
    pub top_failures: u32,
    /// Without a domain: also the `system-*` domains.
    pub include_system: bool,
}

/// What the store sums up for a series.
#[derive(Debug, Clone, Default)]
pub struct SeriesRaw {
    /// Totals per stored period (minute, hour; for day buckets the hours, folded by the
    /// caller), oldest first; `impact_*` and `last_executed_at` are not filled.
    pub totals: Vec<(DateTime<Utc>, HourTotals)>,
    /// `(period start, histogram bucket, count)` of the duration histogram, per point's
    /// period (minute, hour or day).
    pub durations: Vec<(DateTime<Utc>, i16, i64)>,
    /// The most frequent failure groups over the hours the range touches.
    pub failures: Vec<(String, FailureCount)>,
}

/// One domain/action of the overview, as summed up by the store.
#[derive(Debug, Clone, Default)]
pub struct OverviewRaw {
    /// The domain.
    pub domain: String,
    /// The action.
    pub action: String,
    /// Summed totals.
    pub totals: HourTotals,
    /// `(bucket, count)` of the duration histogram.
    pub durations: Vec<(i16, i64)>,
}

/// One stored breaker transition.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TransitionRow {
    /// The breaker.
    pub breaker: String,
    /// The state before.
    pub from_state: String,
    /// The state after.
    pub to_state: String,
    /// The instance that made it.
    pub instance: Option<String>,
    /// Why.
    pub reason: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
}

/// One service's hour of uptime counts.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UptimeHourRow {
    /// The service.
    pub service: String,
    /// When the hour starts, unix seconds.
    pub bucket_start: i64,
    /// Checks that found it up or degraded.
    pub up: i64,
    /// All checks.
    pub total: i64,
    /// Sum of the latencies of the checks that reached the service, ms.
    pub latency_sum_ms: i64,
    /// How many checks reached the service.
    pub latency_count: i64,
}

/// Reading the analytics rollups (one body for both backends).
#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// The rollups of a series.
    async fn task_series(&self, q: &SeriesQuery) -> Result<SeriesRaw, StoreError>;

    /// Every domain/action with runs in the hours `[from, to)`, sorted, at most `limit`
    /// (without the `system-*` domains unless `include_system`).
    async fn task_overview(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        include_system: bool,
        limit: u32,
    ) -> Result<Vec<OverviewRaw>, StoreError>;

    /// Breaker transitions in `[from_ms, to_ms)` (of one breaker, or all), newest first.
    async fn breaker_transitions(
        &self,
        breaker: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<TransitionRow>, StoreError>;

    /// Hourly uptime counts of hours starting in `[from_s, to_s)` (unix seconds), by service
    /// then time.
    async fn uptime_hours(
        &self,
        service: Option<&str>,
        from_s: i64,
        to_s: i64,
    ) -> Result<Vec<UptimeHourRow>, StoreError>;

    /// Deletes minute rollups older than `minutes_before` and, when given, breaker
    /// transitions older than `transitions_before_ms`; returns how many rows went.
    async fn prune_analytics(
        &self,
        minutes_before: DateTime<Utc>,
        transitions_before_ms: Option<i64>,
    ) -> Result<u64, StoreError>;
}

/// The filter of a series by how much of domain/action it names (`$3`, `$4`); without a
/// domain, Jarvis's own `system-*` domains only when asked.
pub(crate) fn pair_filter(domain: bool, action: bool, include_system: bool) -> &'static str {
    match (domain, action, include_system) {
        (true, true, _) => "domain = $3 AND action = $4 AND",
        (true, false, _) => "domain = $3 AND",
        (false, _, true) => "",
        (false, _, false) => "substr(domain, 1, 7) <> 'system-' AND",
    }
}

/// The tables and time column a series reads: totals, durations (and their time column).
pub(crate) fn series_tables(
    bucket: Bucket,
) -> (&'static str, &'static str, &'static str, &'static str) {
    match bucket {
        Bucket::Minute => (
            "task_stats_minute",
            "minute",
            "task_duration_minute",
            "minute",
        ),
        // Day points: totals summed per hour here (the caller folds them into days), the
        // histogram straight from the daily rollup.
        Bucket::Hour => ("task_stats_hourly", "hour", "task_duration_hourly", "hour"),
        Bucket::Day => ("task_stats_hourly", "hour", "task_duration_daily", "day"),
    }
}

/// The totals of a series: `$1`/`$2` the range, then the pair filter.
pub(crate) fn series_totals_sql(bucket: Bucket, filter: &str) -> String {
    let (table, unit, _, _) = series_tables(bucket);
    format!(
        "SELECT {unit} AS at, CAST(SUM(total) AS BIGINT), CAST(SUM(succeeded) AS BIGINT), \
         CAST(SUM(failed) AS BIGINT), CAST(SUM(duration_sum_ms) AS BIGINT), \
         CAST(SUM(cost_sum_usd) AS DOUBLE PRECISION), CAST(SUM(cost_count) AS BIGINT) \
         FROM {table} WHERE {filter} {unit} >= $1 AND {unit} < $2 GROUP BY {unit} ORDER BY {unit}"
    )
}

/// The duration histogram of a series per point.
pub(crate) fn series_durations_sql(bucket: Bucket, filter: &str) -> String {
    let (_, _, table, unit) = series_tables(bucket);
    format!(
        "SELECT {unit} AS at, CAST(bucket AS INTEGER), CAST(SUM(count) AS BIGINT) \
         FROM {table} WHERE {filter} {unit} >= $1 AND {unit} < $2 \
         GROUP BY {unit}, bucket ORDER BY {unit}, bucket"
    )
}

/// The failure groups of a series (hours `[$1, $2)`), at most `limit` (written into the text:
/// PostgreSQL refuses a statement with a parameter it cannot type, such as an unused `$3`).
pub(crate) fn series_failures_sql(filter: &str, limit: u32) -> String {
    format!(
        "SELECT failure_group, MIN(template) AS template, MIN(example) AS example, \
         CAST(SUM(count) AS BIGINT) AS n FROM task_failure_hourly \
         WHERE {filter} hour >= $1 AND hour < $2 \
         GROUP BY failure_group ORDER BY n DESC, failure_group LIMIT {limit}"
    )
}

/// The overview's sources on each engine: on SQLite through the covering indexes of
/// `0018_analytics_covering.sql`, named (with the statistics of `ANALYZE` its planner prefers
/// the primary keys, which hold no counts, and reads every row in the table as well: 2–3 times
/// the time). PostgreSQL picks its plans itself.
fn overview_sources(backend: Backend) -> (&'static str, &'static str) {
    match backend {
        Backend::Sqlite => (
            "task_stats_hourly INDEXED BY task_stats_hourly_pair_cover_idx",
            "task_duration_daily INDEXED BY task_duration_daily_pair_cover_idx",
        ),
        Backend::Postgres => ("task_stats_hourly", "task_duration_daily"),
    }
}

/// Per domain/action totals over hours `[$1, $2)`; `$3`: include `system-*`; `$4` limit.
pub(crate) fn overview_totals_sql(backend: Backend) -> String {
    let (totals, _) = overview_sources(backend);
    format!(
        "SELECT domain, action, \
         CAST(SUM(total) AS BIGINT) AS total, CAST(SUM(succeeded) AS BIGINT) AS succeeded, \
         CAST(SUM(failed) AS BIGINT) AS failed, \
         CAST(SUM(duration_sum_ms) AS BIGINT) AS duration_sum_ms, \
         CAST(SUM(cost_sum_usd) AS DOUBLE PRECISION) AS cost_sum_usd, \
         CAST(SUM(cost_count) AS BIGINT) AS cost_count, \
         MAX(last_executed_at) AS last_executed_at \
         FROM {totals} \
         WHERE hour >= $1 AND hour < $2 AND ($3 OR substr(domain, 1, 7) <> 'system-') \
         GROUP BY domain, action HAVING SUM(total) > 0 \
         ORDER BY domain, action LIMIT $4"
    )
}

/// Per domain/action duration histogram: edge hours `[$1, $2)` and `[$5, $6)` from the hourly
/// rollup, whole days `[$3, $4)` from the daily one (`rollup::split_range`); `$7` as above.
/// Each part is summed per (domain, action, bucket) on its own, in index order on SQLite, so
/// the union holds at most a few thousand sums rather than every stored row.
pub(crate) fn overview_durations_sql(backend: Backend) -> String {
    let (_, daily) = overview_sources(backend);
    let system = "($7 OR substr(domain, 1, 7) <> 'system-')";
    format!(
        "SELECT domain, action, CAST(bucket AS INTEGER) AS bucket, CAST(SUM(n) AS BIGINT) AS n \
         FROM ( \
             SELECT domain, action, bucket, SUM(count) AS n FROM task_duration_hourly \
             WHERE hour >= $1 AND hour < $2 AND {system} GROUP BY domain, action, bucket \
             UNION ALL \
             SELECT domain, action, bucket, SUM(count) AS n FROM {daily} \
             WHERE day >= $3 AND day < $4 AND {system} GROUP BY domain, action, bucket \
             UNION ALL \
             SELECT domain, action, bucket, SUM(count) AS n FROM task_duration_hourly \
             WHERE hour >= $5 AND hour < $6 AND {system} GROUP BY domain, action, bucket \
         ) d GROUP BY domain, action, bucket ORDER BY domain, action, bucket"
    )
}

pub(crate) const TRANSITIONS: &str = "\
SELECT breaker, from_state, to_state, instance, reason, at_ms FROM breaker_transitions
WHERE at_ms >= $1 AND at_ms < $2 ORDER BY at_ms DESC, id DESC LIMIT $3";

pub(crate) const TRANSITIONS_OF: &str = "\
SELECT breaker, from_state, to_state, instance, reason, at_ms FROM breaker_transitions
WHERE breaker = $4 AND at_ms >= $1 AND at_ms < $2 ORDER BY at_ms DESC, id DESC LIMIT $3";

pub(crate) const UPTIME_HOURS: &str = "\
SELECT service, bucket_start, up, total, latency_sum_ms, latency_count FROM health_uptime
WHERE width_s = 3600 AND bucket_start >= $1 AND bucket_start < $2
ORDER BY service, bucket_start";

pub(crate) const UPTIME_HOURS_OF: &str = "\
SELECT service, bucket_start, up, total, latency_sum_ms, latency_count FROM health_uptime
WHERE service = $3 AND width_s = 3600 AND bucket_start >= $1 AND bucket_start < $2
ORDER BY service, bucket_start";

/// The minute rollups, each pruned with `DELETE FROM {table} WHERE minute < $1`.
pub(crate) const MINUTE_ROLLUPS: [&str; 2] = ["task_stats_minute", "task_duration_minute"];

pub(crate) const PRUNE_TRANSITIONS: &str = "DELETE FROM breaker_transitions WHERE at_ms < $1";

/// A row of [`overview_totals_sql`].
#[derive(sqlx::FromRow)]
pub(crate) struct OverviewRow {
    pub domain: String,
    pub action: String,
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub duration_sum_ms: i64,
    pub cost_sum_usd: f64,
    pub cost_count: i64,
    pub last_executed_at: Option<DateTime<Utc>>,
}

/// Pairs the overview's totals with their histograms (both sorted by domain, action).
pub(crate) fn overview_of(
    rows: Vec<OverviewRow>,
    durations: Vec<(String, String, i32, i64)>,
) -> Vec<OverviewRaw> {
    let mut hist: std::collections::HashMap<(String, String), Vec<(i16, i64)>> =
        std::collections::HashMap::new();
    for (d, a, b, n) in durations {
        hist.entry((d, a)).or_default().push((b as i16, n));
    }
    rows.into_iter()
        .map(|r| {
            let durations = hist
                .remove(&(r.domain.clone(), r.action.clone()))
                .unwrap_or_default();
            OverviewRaw {
                totals: HourTotals {
                    total: r.total,
                    succeeded: r.succeeded,
                    failed: r.failed,
                    duration_sum_ms: r.duration_sum_ms,
                    cost_sum_usd: r.cost_sum_usd,
                    cost_count: r.cost_count,
                    last_executed_at: r.last_executed_at,
                    ..HourTotals::default()
                },
                domain: r.domain,
                action: r.action,
                durations,
            }
        })
        .collect()
}

/// A totals row of a series.
pub(crate) type TotalsRow = (DateTime<Utc>, i64, i64, i64, i64, f64, i64);

pub(crate) fn totals_of(rows: Vec<TotalsRow>) -> Vec<(DateTime<Utc>, HourTotals)> {
    rows.into_iter()
        .map(|(at, total, succeeded, failed, dur, cost, cost_count)| {
            (
                at,
                HourTotals {
                    total,
                    succeeded,
                    failed,
                    duration_sum_ms: dur,
                    cost_sum_usd: cost,
                    cost_count,
                    ..HourTotals::default()
                },
            )
        })
        .collect()
}

/// The one body of [`AnalyticsStore`] for both backends (`impl_analytics_store!(SqliteStore)`),
/// reads on the backend's reader, retention on its writer.
macro_rules! impl_analytics_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::analytics::AnalyticsStore for $backend {
            async fn task_series(
                &self,
                q: &$crate::store::analytics::SeriesQuery,
            ) -> Result<$crate::store::analytics::SeriesRaw, $crate::store::StoreError> {
                use $crate::store::analytics as sql;
                use $crate::store::shared::SqlBackend;
                let filter =
                    sql::pair_filter(q.domain.is_some(), q.action.is_some(), q.include_system);
                let hours = ($crate::model::rollup::hour_of(q.from), q.to);
                let work = async {
                    let totals_sql = sql::series_totals_sql(q.bucket, filter);
                    let mut totals = sqlx::query_as::<_, sql::TotalsRow>(&totals_sql)
                        .bind(q.from)
                        .bind(q.to);
                    let durations_sql = sql::series_durations_sql(q.bucket, filter);
                    let mut durations = sqlx::query_as::<
                        _,
                        (chrono::DateTime<chrono::Utc>, i32, i64),
                    >(&durations_sql)
                    .bind(q.from)
                    .bind(q.to);
                    let failures_sql = sql::series_failures_sql(filter, q.top_failures);
                    let mut failures =
                        sqlx::query_as::<_, $crate::store::history::FailureRow>(&failures_sql)
                            .bind(hours.0)
                            .bind(hours.1);
                    if let Some(domain) = &q.domain {
                        totals = totals.bind(domain);
                        durations = durations.bind(domain);
                        failures = failures.bind(domain);
                    }
                    if let Some(action) = &q.action {
                        totals = totals.bind(action);
                        durations = durations.bind(action);
                        failures = failures.bind(action);
                    }
                    let totals = totals.fetch_all(self.reader()).await?;
                    let durations = durations.fetch_all(self.reader()).await?;
                    let failures = failures.fetch_all(self.reader()).await?;
                    Ok::<_, sqlx::Error>(sql::SeriesRaw {
                        totals: sql::totals_of(totals),
                        durations: durations
                            .into_iter()
                            .map(|(at, b, n)| (at, b as i16, n))
                            .collect(),
                        failures: failures.into_iter().map(Into::into).collect(),
                    })
                };
                work.await.map_err(|e| self.classify(e))
            }

            async fn task_overview(
                &self,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
                include_system: bool,
                limit: u32,
            ) -> Result<Vec<$crate::store::analytics::OverviewRaw>, $crate::store::StoreError> {
                use $crate::store::analytics as sql;
                use $crate::store::shared::SqlBackend;
                let work = async {
                    let backend = <$backend as SqlBackend>::BACKEND;
                    let totals_sql = sql::overview_totals_sql(backend);
                    let rows: Vec<sql::OverviewRow> = sqlx::query_as(&totals_sql)
                        .bind(from)
                        .bind(to)
                        .bind(include_system)
                        .bind(i64::from(limit))
                        .fetch_all(self.reader())
                        .await?;
                    if rows.is_empty() {
                        return Ok(Vec::new());
                    }
                    // `split_range` takes the last hour, included.
                    let split =
                        $crate::model::rollup::split_range(from, to - chrono::TimeDelta::hours(1));
                    let durations_sql = sql::overview_durations_sql(backend);
                    let durations: Vec<(String, String, i32, i64)> = sqlx::query_as(&durations_sql)
                        .bind(split.head.0)
                        .bind(split.head.1)
                        .bind(split.days.0)
                        .bind(split.days.1)
                        .bind(split.tail.0)
                        .bind(split.tail.1)
                        .bind(include_system)
                        .fetch_all(self.reader())
                        .await?;
                    Ok::<_, sqlx::Error>(sql::overview_of(rows, durations))
                };
                work.await.map_err(|e| self.classify(e))
            }

            async fn breaker_transitions(
                &self,
                breaker: Option<&str>,
                from_ms: i64,
                to_ms: i64,
                limit: u32,
            ) -> Result<Vec<$crate::store::analytics::TransitionRow>, $crate::store::StoreError>
            {
                use $crate::store::analytics as sql;
                use $crate::store::shared::SqlBackend;
                let q = sqlx::query_as(if breaker.is_some() {
                    sql::TRANSITIONS_OF
                } else {
                    sql::TRANSITIONS
                })
                .bind(from_ms)
                .bind(to_ms)
                .bind(i64::from(limit));
                let q = match breaker {
                    Some(b) => q.bind(b),
                    None => q,
                };
                q.fetch_all(self.reader())
                    .await
                    .map_err(|e| self.classify(e))
            }

            async fn uptime_hours(
                &self,
                service: Option<&str>,
                from_s: i64,
                to_s: i64,
            ) -> Result<Vec<$crate::store::analytics::UptimeHourRow>, $crate::store::StoreError>
            {
                use $crate::store::analytics as sql;
                use $crate::store::shared::SqlBackend;
                let q = sqlx::query_as(if service.is_some() {
                    sql::UPTIME_HOURS_OF
                } else {
                    sql::UPTIME_HOURS
                })
                .bind(from_s)
                .bind(to_s);
                let q = match service {
                    Some(s) => q.bind(s),
                    None => q,
                };
                q.fetch_all(self.reader())
                    .await
                    .map_err(|e| self.classify(e))
            }

            async fn prune_analytics(
                &self,
                minutes_before: chrono::DateTime<chrono::Utc>,
                transitions_before_ms: Option<i64>,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::analytics as sql;
                use $crate::store::shared::SqlBackend;
                let work = async {
                    let mut deleted = 0;
                    for table in sql::MINUTE_ROLLUPS {
                        deleted += sqlx::query(&format!("DELETE FROM {table} WHERE minute < $1"))
                            .bind(minutes_before)
                            .execute(self.writer())
                            .await?
                            .rows_affected();
                    }
                    if let Some(before) = transitions_before_ms {
                        deleted += sqlx::query(sql::PRUNE_TRANSITIONS)
                            .bind(before)
                            .execute(self.writer())
                            .await?
                            .rows_affected();
                    }
                    Ok::<u64, sqlx::Error>(deleted)
                };
                work.await.map_err(|e| self.classify(e))
            }
        }
    };
}
pub(crate) use impl_analytics_store;
