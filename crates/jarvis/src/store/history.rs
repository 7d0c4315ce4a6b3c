//! The history's part of the storage trait: execution records, rollups, statistics, retention.
//!
//! Writing records and rollups differs by dialect (PostgreSQL inserts a batch with `UNNEST`,
//! SQLite row by row on its writer): those two steps are a [`HistoryDialect`] in each backend,
//! and the rest of [`HistoryStore`] (the transaction, which records the rollups count, the
//! retention statements) is written once, `impl_history_store!`. Reading
//! ([`HistoryReadStore`]: statistics from the rollups, listings, counts) is the same SQL on
//! both, written once here and expanded by `impl_history_read_store!`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::shared::SqlBackend;
use super::StoreError;
use crate::model::record::{ExecutionRecord, StoredExecution};
use crate::model::rollup::{FailureCount, HourTotals, Rollup};

/// Which statistics.
#[derive(Debug, Clone)]
pub struct StatsQuery {
    /// The domain.
    pub domain: String,
    /// The action.
    pub action: String,
    /// From this time (rounded down to the hour of the rollups).
    pub since: Option<DateTime<Utc>>,
    /// Until this time (rounded up to the end of its hour).
    pub until: Option<DateTime<Utc>>,
    /// How many failure groups.
    pub top_failures: u32,
    /// How many recent successful runs to learn parameters from.
    pub recent_successes: u32,
}

/// What the store sums up for statistics.
#[derive(Debug, Clone, Default)]
pub struct StatsRaw {
    /// Summed totals.
    pub totals: HourTotals,
    /// `(bucket, count)` of the duration histogram.
    pub durations: Vec<(i16, i64)>,
    /// The most frequent failure groups: `(fingerprint, template/example/count)`.
    pub failures: Vec<(String, FailureCount)>,
    /// Parameters of recent successful runs, newest first.
    pub recent_successful_parameters: Vec<Value>,
}

/// Filters of an execution listing.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    /// Only this domain.
    pub domain: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this task.
    pub task_id: Option<Uuid>,
    /// Only successes (true) or failures (false).
    pub success: Option<bool>,
    /// Only this correlation ID.
    pub correlation_id: Option<String>,
    /// Finished at or after.
    pub since: Option<DateTime<Utc>>,
    /// Finished before.
    pub until: Option<DateTime<Utc>>,
    /// Records with an `id` below this (the cursor).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
    /// Also records of the `system-*` domains (each health round's, …).
    pub include_system: bool,
}

/// Writing and pruning the history (a body per backend).
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Inserts `records` in one transaction, skipping any stored already (one record per task
    /// and attempt: a replayed record, or an attempt the reclaimer recorded first), and adds the
    /// inserted ones to the rollups in the same transaction. Returns how many were inserted.
    async fn insert_history(&self, records: &[ExecutionRecord]) -> Result<u64, StoreError>;

    /// Deletes, among the `limit` oldest records (in insertion order: the primary key, so no
    /// time index is maintained for retention), those that finished before `before`, and whole
    /// rollup hours older than `before`. Returns how many records were deleted; fewer than
    /// `limit` means the old end of the history is reached (or holds newer records).
    async fn purge_history(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}

/// Reading the history (one body for both backends).
#[async_trait]
pub trait HistoryReadStore: Send + Sync {
    /// Sums the rollups (and samples recent successful parameters) for statistics.
    async fn history_stats(&self, query: &StatsQuery) -> Result<StatsRaw, StoreError>;

    /// Raw records, newest first.
    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<StoredExecution>, StoreError>;

    /// Number of records (all, or of one task).
    async fn count_executions(&self, task_id: Option<Uuid>) -> Result<u64, StoreError>;

    /// Every domain/action the rollups know (whatever the time range; the caller filters
    /// by figures), sorted, at most `limit`.
    async fn history_pairs(&self, limit: u32) -> Result<Vec<(String, String)>, StoreError>;
}

/// What differs by dialect in writing the history.
pub(crate) trait HistoryDialect: SqlBackend + Sync {
    /// Whether a purge runs in one transaction (one commit for the batch) or statement by
    /// statement (no lock outlives its statement).
    const PURGE_IN_ONE_TRANSACTION: bool;

    /// Inserts `records` (never empty) inside `tx`, skipping any stored already; returns the
    /// `record_id`s it inserted.
    async fn insert_records(
        tx: &mut crate::store::pool::Tx<'_, Self::Db>,
        records: &[ExecutionRecord],
    ) -> Result<Vec<Uuid>, sqlx::Error>;

    /// Adds `rollup` to the rollup tables inside `tx`, taking row locks in the rollup's
    /// (sorted) key order.
    async fn write_rollup(
        tx: &mut crate::store::pool::Tx<'_, Self::Db>,
        rollup: &Rollup,
    ) -> Result<(), sqlx::Error>;
}

/// The rollup of the records an insert really stored (`inserted`, their `record_id`s).
pub(crate) fn rollup_of_inserted(records: &[ExecutionRecord], inserted: &[Uuid]) -> Rollup {
    if inserted.len() == records.len() {
        return Rollup::of(records);
    }
    let new: std::collections::HashSet<Uuid> = inserted.iter().copied().collect();
    Rollup::of(records.iter().filter(|r| new.contains(&r.record_id)))
}

/// The one body of [`HistoryStore`] for both backends (`impl_history_store!(SqliteStore)`),
/// around the backend's [`HistoryDialect`]: records and their rollups in one transaction on
/// the writer; the retention statements in one transaction or one by one as the dialect says.
macro_rules! impl_history_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::history::HistoryStore for $backend {
            async fn insert_history(
                &self,
                records: &[$crate::model::record::ExecutionRecord],
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::history::{rollup_of_inserted, HistoryDialect};
                use $crate::store::shared::SqlBackend;
                if records.is_empty() {
                    return Ok(0);
                }
                let work = async {
                    let mut tx = self.writer().begin().await?;
                    let inserted =
                        <$backend as HistoryDialect>::insert_records(&mut tx, records).await?;
                    let rollup = rollup_of_inserted(records, &inserted);
                    <$backend as HistoryDialect>::write_rollup(&mut tx, &rollup).await?;
                    tx.commit().await?;
                    Ok::<u64, sqlx::Error>(inserted.len() as u64)
                };
                work.await.map_err(|e| self.classify(e))
            }

            async fn purge_history(
                &self,
                before: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::history::HistoryDialect;
                use $crate::store::shared::SqlBackend;
                let work = async {
                    if <$backend as HistoryDialect>::PURGE_IN_ONE_TRANSACTION {
                        let mut tx = self.writer().begin().await?;
                        let deleted =
                            $crate::store::history::purge!(&mut tx, before, limit).await?;
                        tx.commit().await?;
                        Ok(deleted)
                    } else {
                        $crate::store::history::purge!(self.writer(), before, limit).await
                    }
                };
                work.await.map_err(|e| self.classify(e))
            }
        }
    };
}
pub(crate) use impl_history_store;

/// The retention statements on `$on` (an executor, named again for each statement), as a
/// future of how many records were deleted.
macro_rules! purge {
    ($on:expr, $before:expr, $limit:expr) => {
        async {
            use $crate::model::rollup::{day_of, hour_of};
            let done = sqlx::query($crate::store::history::PURGE_RECORDS)
                .bind($before)
                .bind(i64::from($limit))
                .execute($on)
                .await?;
            sqlx::query($crate::store::history::PURGE_DAYS)
                .bind(day_of($before))
                .execute($on)
                .await?;
            for table in $crate::store::history::HOURLY_ROLLUPS {
                sqlx::query(&format!("DELETE FROM {table} WHERE hour < $1"))
                    .bind(hour_of($before))
                    .execute($on)
                    .await?;
            }
            Ok::<u64, sqlx::Error>(done.rows_affected())
        }
    };
}
pub(crate) use purge;

/// Among the `$2` oldest records, those that finished before `$1`.
pub(crate) const PURGE_RECORDS: &str = "\
DELETE FROM task_history WHERE id IN (SELECT id FROM
    (SELECT id, finished_at FROM task_history ORDER BY id LIMIT $2) oldest
WHERE finished_at < $1)";

/// Whole days only: a day the cutoff falls in stays in the daily rollup until the next day's
/// purge, while its older hours are gone from the hourly tables.
pub(crate) const PURGE_DAYS: &str = "DELETE FROM task_duration_daily WHERE day < $1";

/// The hourly rollups, each pruned with `DELETE FROM {table} WHERE hour < $1`.
pub(crate) const HOURLY_ROLLUPS: [&str; 3] = [
    "task_stats_hourly",
    "task_duration_hourly",
    "task_failure_hourly",
];

/// Every domain/action with a rollup, for the overview.
pub(crate) const PAIRS: &str = "\
SELECT DISTINCT domain, action FROM task_stats_hourly ORDER BY domain, action LIMIT $1";

/// The summed totals of a domain/action over an hour range (`CAST` rather than `::`, which
/// SQLite lacks; `BIGINT` and `DOUBLE PRECISION` have integer and real affinity there).
pub(crate) const TOTALS: &str = "\
SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) AS total,
       CAST(COALESCE(SUM(succeeded), 0) AS BIGINT) AS succeeded,
       CAST(COALESCE(SUM(failed), 0) AS BIGINT) AS failed,
       CAST(COALESCE(SUM(duration_sum_ms), 0) AS BIGINT) AS duration_sum_ms,
       CAST(COALESCE(SUM(impact_sum), 0) AS DOUBLE PRECISION) AS impact_sum,
       CAST(COALESCE(SUM(impact_count), 0) AS BIGINT) AS impact_count,
       CAST(COALESCE(SUM(cost_sum_usd), 0) AS DOUBLE PRECISION) AS cost_sum_usd,
       CAST(COALESCE(SUM(cost_count), 0) AS BIGINT) AS cost_count,
       MAX(last_executed_at) AS last_executed_at
FROM task_stats_hourly
WHERE domain = $1 AND action = $2 AND hour >= $3 AND hour <= $4";

/// The duration histogram over a range: whole days from the daily rollup, edge hours from the
/// hourly one (see `rollup::split_range`).
pub(crate) const DURATIONS: &str = "\
SELECT CAST(bucket AS INTEGER) AS bucket, CAST(SUM(n) AS BIGINT) AS n FROM (
    SELECT bucket, count AS n FROM task_duration_hourly
    WHERE domain = $1 AND action = $2 AND hour >= $3 AND hour < $4
    UNION ALL
    SELECT bucket, count FROM task_duration_daily
    WHERE domain = $1 AND action = $2 AND day >= $5 AND day < $6
    UNION ALL
    SELECT bucket, count FROM task_duration_hourly
    WHERE domain = $1 AND action = $2 AND hour >= $7 AND hour < $8
) d GROUP BY bucket ORDER BY bucket";

/// The most frequent failure groups over an hour range.
pub(crate) const FAILURES: &str = "\
SELECT failure_group, MIN(template) AS template, MIN(example) AS example,
       CAST(SUM(count) AS BIGINT) AS n
FROM task_failure_hourly
WHERE domain = $1 AND action = $2 AND hour >= $3 AND hour <= $4
GROUP BY failure_group ORDER BY n DESC, failure_group LIMIT $5";

/// Parameters of successful runs among the latest `$5` records in a time range.
pub(crate) const RECENT_PARAMETERS: &str = "\
SELECT parameters FROM (SELECT parameters, success FROM task_history
    WHERE domain = $1 AND action = $2 AND finished_at >= $3 AND finished_at < $4
    ORDER BY id DESC LIMIT $5) s
WHERE success";

pub(crate) const LIST: &str = "\
SELECT * FROM task_history WHERE ($1 IS NULL OR domain = $1) AND ($2 IS NULL OR action = $2)
  AND ($3 IS NULL OR task_id = $3) AND ($4 IS NULL OR success = $4)
  AND ($5 IS NULL OR correlation_id = $5) AND ($6 IS NULL OR finished_at >= $6)
  AND ($7 IS NULL OR finished_at < $7) AND ($8 IS NULL OR id < $8)
  AND ($10 OR substr(domain, 1, 7) <> 'system-')
ORDER BY id DESC LIMIT $9";

pub(crate) const COUNT: &str =
    "SELECT count(*) FROM task_history WHERE ($1 IS NULL OR task_id = $1)";

/// A failure group of a statistics query.
#[derive(sqlx::FromRow)]
pub(crate) struct FailureRow {
    failure_group: String,
    template: String,
    example: String,
    n: i64,
}

impl From<FailureRow> for (String, FailureCount) {
    fn from(r: FailureRow) -> Self {
        (
            r.failure_group,
            FailureCount {
                template: r.template,
                example: r.example,
                count: r.n,
            },
        )
    }
}

/// The hour range of a stats query: from the hour of `since` to the last hour before `until`
/// (both included; `until` is exclusive, so an `until` on the hour leaves that hour out),
/// everything when unset.
pub(crate) fn hour_range(q: &StatsQuery) -> (DateTime<Utc>, DateTime<Utc>) {
    use crate::model::rollup::hour_of;
    let since = q.since.map(hour_of).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let until = q
        .until
        .map(|u| hour_of(u - chrono::TimeDelta::nanoseconds(1)))
        .unwrap_or_else(|| hour_of(super::now() + chrono::TimeDelta::days(365 * 100)));
    (since, until)
}

/// The summed totals row of a stats query ([`TOTALS`]).
pub(crate) fn totals_of<'r, R>(row: &'r R) -> Result<HourTotals, sqlx::Error>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(HourTotals {
        total: row.try_get("total")?,
        succeeded: row.try_get("succeeded")?,
        failed: row.try_get("failed")?,
        duration_sum_ms: row.try_get("duration_sum_ms")?,
        impact_sum: row.try_get("impact_sum")?,
        impact_count: row.try_get("impact_count")?,
        cost_sum_usd: row.try_get("cost_sum_usd")?,
        cost_count: row.try_get("cost_count")?,
        last_executed_at: row.try_get("last_executed_at")?,
    })
}

/// The one body of [`HistoryReadStore`] for both backends (`impl_history_read_store!(SqliteStore)`),
/// on the backend's reader.
macro_rules! impl_history_read_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::history::HistoryReadStore for $backend {
            async fn history_stats(
                &self,
                q: &$crate::store::history::StatsQuery,
            ) -> Result<$crate::store::history::StatsRaw, $crate::store::StoreError> {
                use $crate::store::history as sql;
                let (since, until) = sql::hour_range(q);
                let work = async {
                    let row = sqlx::query(sql::TOTALS)
                        .bind(&q.domain)
                        .bind(&q.action)
                        .bind(since)
                        .bind(until)
                        .fetch_one($crate::store::shared::SqlBackend::reader(self))
                        .await?;
                    let totals = sql::totals_of(&row)?;
                    let split = $crate::model::rollup::split_range(since, until);
                    let durations: Vec<(i32, i64)> = sqlx::query_as(sql::DURATIONS)
                        .bind(&q.domain)
                        .bind(&q.action)
                        .bind(split.head.0)
                        .bind(split.head.1)
                        .bind(split.days.0)
                        .bind(split.days.1)
                        .bind(split.tail.0)
                        .bind(split.tail.1)
                        .fetch_all($crate::store::shared::SqlBackend::reader(self))
                        .await?;
                    let failures: Vec<sql::FailureRow> = sqlx::query_as(sql::FAILURES)
                        .bind(&q.domain)
                        .bind(&q.action)
                        .bind(since)
                        .bind(until)
                        .bind(i64::from(q.top_failures))
                        .fetch_all($crate::store::shared::SqlBackend::reader(self))
                        .await?;
                    let recent: Vec<sqlx::types::Json<serde_json::Value>> =
                        sqlx::query_scalar(sql::RECENT_PARAMETERS)
                            .bind(&q.domain)
                            .bind(&q.action)
                            .bind(q.since.unwrap_or(since))
                            .bind(q.until.unwrap_or(until))
                            .bind(i64::from(q.recent_successes) * 4)
                            .fetch_all($crate::store::shared::SqlBackend::reader(self))
                            .await?;
                    Ok::<_, sqlx::Error>(sql::StatsRaw {
                        totals,
                        durations: durations
                            .into_iter()
                            .map(|(bucket, n)| (bucket as i16, n))
                            .collect(),
                        failures: failures.into_iter().map(Into::into).collect(),
                        recent_successful_parameters: recent
                            .into_iter()
                            .take(q.recent_successes as usize)
                            .map(|j| j.0)
                            .collect(),
                    })
                };
                work.await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn list_executions(
                &self,
                f: &$crate::store::history::ExecutionFilter,
            ) -> Result<Vec<$crate::model::record::StoredExecution>, $crate::store::StoreError>
            {
                let rows: Vec<$crate::store::rows::ExecutionRow> =
                    sqlx::query_as($crate::store::history::LIST)
                        .bind(f.domain.as_deref())
                        .bind(f.action.as_deref())
                        .bind(f.task_id.map($crate::store::shared::DbUuid))
                        .bind(f.success)
                        .bind(f.correlation_id.as_deref())
                        .bind(f.since)
                        .bind(f.until)
                        .bind(f.before_id)
                        .bind(i64::from(f.limit))
                        .bind(f.include_system)
                        .fetch_all($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                $crate::store::rows::all(rows)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn count_executions(
                &self,
                task_id: Option<uuid::Uuid>,
            ) -> Result<u64, $crate::store::StoreError> {
                let n: i64 = sqlx::query_scalar($crate::store::history::COUNT)
                    .bind(task_id.map($crate::store::shared::DbUuid))
                    .fetch_one($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(n.max(0) as u64)
            }

            async fn history_pairs(
                &self,
                limit: u32,
            ) -> Result<Vec<(String, String)>, $crate::store::StoreError> {
                sqlx::query_as($crate::store::history::PAIRS)
                    .bind(i64::from(limit))
                    .fetch_all($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }
        }
    };
}
pub(crate) use impl_history_read_store;

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn query(since: &str, until: &str) -> StatsQuery {
        StatsQuery {
            domain: "d".into(),
            action: "a".into(),
            since: Some(at(since)),
            until: Some(at(until)),
            top_failures: 5,
            recent_successes: 5,
        }
    }

    #[test]
    fn the_hour_range_leaves_out_an_until_on_the_hour() {
        // `until` is exclusive: midnight (a plain date's end) ends with the hour before it.
        assert_eq!(
            hour_range(&query("2026-12-06T00:00:00Z", "2026-12-07T00:00:00Z")),
            (at("2026-12-06T00:00:00Z"), at("2026-12-06T23:00:00Z"))
        );
        // Inside an hour, that hour is in (rollups are hourly).
        assert_eq!(
            hour_range(&query("2026-12-06T10:15:00Z", "2026-12-06T11:30:00Z")),
            (at("2026-12-06T10:00:00Z"), at("2026-12-06T11:00:00Z"))
        );
    }
}
