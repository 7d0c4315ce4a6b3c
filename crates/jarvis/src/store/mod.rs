//! Storage: one trait, two backends.
//!
//! [`Store`] is everything Jarvis keeps: breaker state, task history and (in later migrations)
//! the queue, services and agents. [`sqlite::SqliteStore`] is the embedded single-machine
//! default; [`postgres::PostgresStore`] is the shared engine several instances coordinate
//! through. Both pass one behaviour suite (`tests/api/store.rs`), so code above this module
//! never asks which one it has.
//!
//! Migrations are embedded in the binary (`migrations/<backend>/*.sql`) and applied at start.
//! The PostgreSQL files are plain, idempotent SQL that also run with `psql`.

pub mod breaker_state;
pub mod history;
pub mod learning;
pub mod postgres;
pub mod retry;
mod rows;
pub mod schedules;
pub mod sqlite;
pub mod tasks;

use std::sync::Arc;

use async_trait::async_trait;

use crate::agents::AgentSpec;
use crate::config::StoreConfig;
use crate::health::{CheckResult, ServiceSpec};

/// The current time as the stores keep it (see [`crate::clock::now`]).
pub use crate::clock::now;

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A storage failure, phrased for an operator. Never contains a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (refused, timed out, closed, an I/O error).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database is out of space (SQLite `SQLITE_FULL`, PostgreSQL `disk_full`): nothing
    /// was written; writes work again once space is freed.
    #[error("storage full: {0}")]
    Full(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// Classifies a driver error: connection-level problems are `Unavailable`, running out of
    /// space is `Full`.
    pub(crate) fn from_sqlx(e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(ref db) => match db.code().as_deref().map(error_kind) {
                Some(DbErrorKind::Full) => StoreError::Full(e.to_string()),
                Some(DbErrorKind::Io) => StoreError::Unavailable(e.to_string()),
                _ => StoreError::Other(e.to_string()),
            },
            other => StoreError::Other(other.to_string()),
        }
    }

    /// Whether trying again later may succeed (an outage, a full disk), as opposed to a
    /// refusal of this very write.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Full(_))
    }
}

enum DbErrorKind {
    Full,
    Io,
    Other,
}

/// What a driver's error code says: SQLite's (extended) result codes are numbers, whose low
/// byte is the primary code (13 `SQLITE_FULL`, 10 `SQLITE_IOERR`); PostgreSQL's are SQLSTATEs
/// (`53100` disk_full, class `58` system errors such as `58030` io_error).
fn error_kind(code: &str) -> DbErrorKind {
    if let Ok(n) = code.parse::<u32>() {
        if code.len() != 5 {
            return match n & 0xff {
                13 => DbErrorKind::Full,
                10 => DbErrorKind::Io,
                _ => DbErrorKind::Other,
            };
        }
    }
    match code {
        "53100" => DbErrorKind::Full,
        c if c.starts_with("58") => DbErrorKind::Io,
        _ => DbErrorKind::Other,
    }
}

pub use history::{ExecutionFilter, HistoryStore, StatsQuery, StatsRaw};
pub use learning::{LearningRow, LearningStore};
pub use retry::TaskRetryStore;
pub use schedules::{Advance, ScheduleRow, ScheduleStore};
pub use tasks::{Inserted, Lease, ReclaimOutcome, Reclaimed, Settlement, TaskFilter, TaskStore};

/// Everything Jarvis persists. Implemented by each backend; used as `Arc<dyn Store>`. The queue
/// the history and the learner have their own supertraits ([`TaskStore`], [`HistoryStore`],
/// [`LearningStore`]) in their own files, as the breaker state has
/// ([`breaker_state::BreakerStateStore`]), the schedules ([`ScheduleStore`]) and manual retry
/// ([`TaskRetryStore`]).
#[async_trait]
pub trait Store:
    TaskStore
    + HistoryStore
    + LearningStore
    + breaker_state::BreakerStateStore
    + ScheduleStore
    + TaskRetryStore
    + Send
    + Sync
    + 'static
{
    /// Which engine this is.
    fn backend(&self) -> Backend;

    /// A cheap round trip, for `/health`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies every embedded migration that has not run yet. Safe to call concurrently from
    /// several instances (PostgreSQL serialises it with an advisory lock).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Closes every connection; waits for in-flight queries.
    async fn close(&self);

    /// Creates or replaces a service (keeping its `created_at`). Returns what is stored and
    /// whether it was new.
    async fn put_service(&self, spec: &ServiceSpec) -> Result<(ServiceSpec, bool), StoreError>;

    /// One service by name.
    async fn get_service(&self, name: &str) -> Result<Option<ServiceSpec>, StoreError>;

    /// Every service, by name.
    async fn list_services(&self) -> Result<Vec<ServiceSpec>, StoreError>;

    /// Removes a service and its uptime counts; false when there was none.
    async fn delete_service(&self, name: &str) -> Result<bool, StoreError>;

    /// A cheap fingerprint of the service list: how many there are and the latest `updated_at`.
    /// Any create, replace or delete changes it (a replace stamps a newer `updated_at`), so a
    /// monitor polls this instead of reading every service.
    async fn services_fingerprint(&self) -> Result<ServicesFingerprint, StoreError>;

    /// Creates or replaces an agent (keeping its `created_at`). Returns what is stored and
    /// whether it was new.
    async fn put_agent(&self, spec: &AgentSpec) -> Result<(AgentSpec, bool), StoreError>;

    /// The agent of a domain.
    async fn get_agent(&self, domain: &str) -> Result<Option<AgentSpec>, StoreError>;

    /// Every agent, by domain.
    async fn list_agents(&self) -> Result<Vec<AgentSpec>, StoreError>;

    /// Removes an agent; false when there was none.
    async fn delete_agent(&self, domain: &str) -> Result<bool, StoreError>;

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
    async fn prune_health_checks(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError>;

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

    /// Deletes uptime buckets that started before `before` (unix seconds); returns how many.
    async fn prune_uptime(&self, before: i64) -> Result<u64, StoreError>;
}

/// Checks of one service in one uptime bucket (see `health::uptime`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UptimeCount {
    /// The service.
    pub service: String,
    /// The bucket's width in seconds (300 or 3600).
    pub width_s: u32,
    /// When the bucket starts, unix seconds (a multiple of the width).
    pub bucket_start: i64,
    /// Checks that found the service up or degraded.
    pub up: i64,
    /// All checks.
    pub total: i64,
}

/// See [`Store::services_fingerprint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicesFingerprint {
    /// Number of services.
    pub count: i64,
    /// The latest `updated_at`, as stored.
    pub latest: Option<chrono::DateTime<chrono::Utc>>,
}

/// A time range and a row limit for history queries.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRange {
    /// Only rows at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only rows before this time.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many rows.
    pub limit: u32,
}

/// Rows per multi-row insert: 8 binds each stays far below both engines' bind limits.
pub(crate) const INSERT_CHUNK: usize = 500;
/// Rows per retention delete, so a large backlog never holds a long lock.
pub(crate) const PRUNE_BATCH: i64 = 10_000;

/// Opens the store the configuration names (creating the SQLite file on first start, retrying a
/// refused PostgreSQL connection for a bounded time) without migrating it.
pub async fn open(config: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    match config {
        StoreConfig::Sqlite { path } => Ok(Arc::new(sqlite::SqliteStore::open(path).await?)),
        StoreConfig::Postgres {
            url,
            connect_timeout,
        } => Ok(Arc::new(
            postgres::PostgresStore::connect(url, *connect_timeout).await?,
        )),
    }
}

/// The hour range of a stats query: from the hour of `since` to the hour of `until` (both
/// included), everything when unset.
pub(crate) fn history_range(
    q: &StatsQuery,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    use crate::history::rollup::hour_of;
    let since = q
        .since
        .map(hour_of)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    let until = q
        .until
        .map(hour_of)
        .unwrap_or_else(|| hour_of(now() + chrono::TimeDelta::days(365 * 100)));
    (since, until)
}

/// The summed totals row of a stats query (same column names on both backends).
pub(crate) fn totals_of<'r, R>(
    row: &'r R,
) -> Result<crate::history::rollup::HourTotals, sqlx::Error>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    chrono::DateTime<chrono::Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(crate::history::rollup::HourTotals {
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
