//! The health monitor's part of the storage trait: check results (appended in batches, read
//! per service, pruned by age) and uptime counts (added to, read back, pruned).
//!
//! The SQL is written once: both engines accept it as is, and [`HealthCheckRow`] decodes
//! from either. `impl_health_store!` expands it for a backend, given how many results one
//! insert carries there.
//!
//! [`HealthCheckRow`]: super::rows::HealthCheckRow

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::model::check::CheckResult;

/// Checks of one service in one uptime bucket (see `health::uptime`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UptimeCount {
    /// The service.
    pub service: String,
    /// The bucket's width in seconds (300 or 3600).
    #[sqlx(try_from = "i32")]
    pub width_s: u32,
    /// When the bucket starts, unix seconds (a multiple of the width).
    pub bucket_start: i64,
    /// Checks that found the service up or degraded.
    pub up: i64,
    /// All checks.
    pub total: i64,
    /// Sum of the latencies of the checks that reached the service, ms.
    pub latency_sum_ms: i64,
    /// How many checks reached the service.
    pub latency_count: i64,
}

/// A time range and a row limit for history queries.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRange {
    /// Only rows at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only rows before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many rows.
    pub limit: u32,
}

/// The head of a multi-row insert of check results (`push_values` adds the rows).
pub(crate) const INSERT_CHECKS: &str = "INSERT INTO health_checks (service, status, message, \
     latency_ms, breaker_open, correlation_id, instance_id, checked_at) ";

pub(crate) const HISTORY: &str = "\
SELECT * FROM health_checks WHERE service = $1
  AND ($2 IS NULL OR checked_at >= $2) AND ($3 IS NULL OR checked_at < $3)
ORDER BY checked_at DESC, id DESC LIMIT $4";

/// One retention batch ([`PRUNE_BATCH`](super::PRUNE_BATCH) rows at most).
pub(crate) const PRUNE_CHECKS: &str = "\
DELETE FROM health_checks WHERE id IN
    (SELECT id FROM health_checks WHERE checked_at < $1 LIMIT $2)";

/// The head of a multi-row upsert of uptime counts (`push_values` adds the rows, then
/// [`ADD_UPTIME_TAIL`]).
pub(crate) const ADD_UPTIME: &str =
    "INSERT INTO health_uptime (service, width_s, bucket_start, up, total, latency_sum_ms, \
     latency_count) ";
pub(crate) const ADD_UPTIME_TAIL: &str = " ON CONFLICT (service, width_s, bucket_start) \
     DO UPDATE SET up = health_uptime.up + excluded.up, \
     total = health_uptime.total + excluded.total, \
     latency_sum_ms = health_uptime.latency_sum_ms + excluded.latency_sum_ms, \
     latency_count = health_uptime.latency_count + excluded.latency_count";

pub(crate) const UPTIME: &str = "\
SELECT service, width_s, bucket_start, up, total, latency_sum_ms, latency_count FROM health_uptime
WHERE (width_s = 300 AND bucket_start >= $1) OR (width_s = 3600 AND bucket_start >= $2)";

/// Buckets that started before `$1`, except hour buckets, kept [`UPTIME_HOURS_KEEP_SECS`]
/// (`$2` is the cutoff for those) for the analytics API's uptime series.
pub(crate) const PRUNE_UPTIME: &str =
    "DELETE FROM health_uptime WHERE bucket_start < $1 AND (width_s <> 3600 OR bucket_start < $2)";

/// How long hour buckets of uptime are kept, seconds (31 days: the default day series and a
/// day more; 744 rows per service).
pub const UPTIME_HOURS_KEEP_SECS: i64 = 31 * 86_400;

/// Health check results and uptime counts in the store.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Appends health check results (one multi-row insert per few hundred results), stamped
    /// with the instance that made them.
    async fn insert_health_checks(
        &self,
        results: &[CheckResult],
        instance_id: &str,
    ) -> Result<(), StoreError>;

    /// Results of one service, newest first, checked in `[since, until)`, at most `limit`.
    async fn health_history(
        &self,
        service: &str,
        range: HistoryRange,
    ) -> Result<Vec<CheckResult>, StoreError>;

    /// Deletes results checked before `before` (in bounded batches); returns how many.
    async fn prune_health_checks(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Adds uptime counts to the stored ones (creating buckets). Each `(service, width,
    /// bucket)` appears at most once per call.
    async fn add_uptime(&self, counts: &[UptimeCount]) -> Result<(), StoreError>;

    /// The stored uptime buckets of width 300 s starting at or after `since_5m` and of width
    /// 3600 s starting at or after `since_1h` (unix seconds).
    async fn uptime_counts(
        &self,
        since_5m: i64,
        since_1h: i64,
    ) -> Result<Vec<UptimeCount>, StoreError>;

    /// Deletes uptime buckets that started before `before` (unix seconds), hour buckets only
    /// after [`UPTIME_HOURS_KEEP_SECS`]; returns how many.
    async fn prune_uptime(&self, before: i64) -> Result<u64, StoreError>;
}

/// The one body of [`HealthStore`] for both backends, given how many check results one
/// insert carries on that backend (`impl_health_store!(SqliteStore, HEALTH_INSERT_CHUNK)`;
/// each insert is its own statement, so on SQLite the chunk bounds how long other writes wait
/// behind it).
macro_rules! impl_health_store {
    ($backend:ty, $checks_per_insert:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::health::HealthStore for $backend {
            async fn insert_health_checks(
                &self,
                results: &[$crate::model::check::CheckResult],
                instance_id: &str,
            ) -> Result<(), $crate::store::StoreError> {
                type Db = <$backend as $crate::store::shared::SqlBackend>::Db;
                for chunk in results.chunks($checks_per_insert) {
                    let mut q = sqlx::QueryBuilder::<Db>::new($crate::store::health::INSERT_CHECKS);
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(r.service.as_str())
                            .push_bind(r.status.as_str())
                            .push_bind(r.message.as_str())
                            .push_bind(r.latency_ms as i64)
                            .push_bind(r.breaker_open)
                            .push_bind(r.correlation_id.as_ref().map(|c| c.as_str()))
                            .push_bind(instance_id)
                            .push_bind(r.timestamp);
                    });
                    q.build()
                        .execute($crate::store::shared::SqlBackend::writer(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                }
                Ok(())
            }

            async fn health_history(
                &self,
                service: &str,
                range: $crate::store::health::HistoryRange,
            ) -> Result<Vec<$crate::model::check::CheckResult>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::rows::HealthCheckRow> =
                    sqlx::query_as($crate::store::health::HISTORY)
                        .bind(service)
                        .bind(range.since)
                        .bind(range.until)
                        .bind(i64::from(range.limit))
                        .fetch_all($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                $crate::store::rows::all(rows)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn prune_health_checks(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, $crate::store::StoreError> {
                $crate::store::shared::prune_in_batches!(
                    self,
                    $crate::store::health::PRUNE_CHECKS,
                    before
                )
            }

            async fn add_uptime(
                &self,
                counts: &[$crate::store::health::UptimeCount],
            ) -> Result<(), $crate::store::StoreError> {
                type Db = <$backend as $crate::store::shared::SqlBackend>::Db;
                for chunk in counts.chunks($crate::store::INSERT_CHUNK) {
                    let mut q = sqlx::QueryBuilder::<Db>::new($crate::store::health::ADD_UPTIME);
                    q.push_values(chunk, |mut b, c| {
                        b.push_bind(c.service.as_str())
                            .push_bind(c.width_s as i32)
                            .push_bind(c.bucket_start)
                            .push_bind(c.up)
                            .push_bind(c.total)
                            .push_bind(c.latency_sum_ms)
                            .push_bind(c.latency_count);
                    });
                    q.push($crate::store::health::ADD_UPTIME_TAIL);
                    q.build()
                        .execute($crate::store::shared::SqlBackend::writer(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                }
                Ok(())
            }

            async fn uptime_counts(
                &self,
                since_5m: i64,
                since_1h: i64,
            ) -> Result<Vec<$crate::store::health::UptimeCount>, $crate::store::StoreError> {
                sqlx::query_as($crate::store::health::UPTIME)
                    .bind(since_5m)
                    .bind(since_1h)
                    .fetch_all($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn prune_uptime(&self, before: i64) -> Result<u64, $crate::store::StoreError> {
                let done = sqlx::query($crate::store::health::PRUNE_UPTIME)
                    .bind(before)
                    .bind(
                        $crate::store::now().timestamp()
                            - $crate::store::health::UPTIME_HOURS_KEEP_SECS,
                    )
                    .execute($crate::store::shared::SqlBackend::writer(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(crate) use impl_health_store;
