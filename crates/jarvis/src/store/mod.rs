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

pub mod agents;
pub mod ai_models;
pub mod ai_usage;
pub mod alerts;
pub mod analytics;
pub mod breaker_state;
pub mod config;
pub mod health;
pub mod history;
pub mod learning;
mod pool;
pub mod postgres;
pub mod retry;
mod rows;
pub mod schedules;
pub mod services;
mod shared;
pub mod sqlite;
pub mod task_rows;
pub mod tasks;
pub mod traces;

use std::sync::Arc;

use async_trait::async_trait;

use crate::store::config::StoreConfig;

/// The current time as the stores keep it (see [`crate::clock::now`]).
pub use crate::clock::now;

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
/// (`53100` disk_full, class `58` system errors such as `58030` io_error; class `08` connection
/// exceptions and `57P01`–`57P03`, the server shutting down or starting: a pooled connection
/// that met a restart reads the shutdown notice on its next statement, an outage like any
/// other, so 503, not 500).
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
        c if c.starts_with("58") || c.starts_with("08") => DbErrorKind::Io,
        "57P01" | "57P02" | "57P03" => DbErrorKind::Io,
        _ => DbErrorKind::Other,
    }
}

pub use agents::AgentStore;
pub use ai_models::AiModelStore;
pub use alerts::AlertStore;
pub use health::{HealthStore, HistoryRange, UptimeCount};
pub use history::{ExecutionFilter, HistoryReadStore, HistoryStore, StatsQuery, StatsRaw};
pub use learning::{LearningRow, LearningStore};
pub use retry::TaskRetryStore;
pub use schedules::{Advance, ScheduleRow, ScheduleStore};
pub use services::{ServiceStore, ServicesFingerprint};
pub use task_rows::{TaskListing, TaskRowStore};
pub use tasks::{Inserted, Lease, ReclaimOutcome, Reclaimed, Settlement, TaskFilter, TaskStore};

/// Everything Jarvis persists. Implemented by each backend; used as `Arc<dyn Store>`. Each
/// domain has its own supertrait in its own file: the queue ([`TaskStore`]), the history
/// ([`HistoryStore`], [`HistoryReadStore`]), the learner ([`LearningStore`]), the breaker state
/// ([`breaker_state::BreakerStateStore`]), the schedules ([`ScheduleStore`]), manual retry
/// ([`TaskRetryStore`]), reading and cancelling tasks ([`TaskRowStore`]), services ([`ServiceStore`]), agents ([`AgentStore`]), health
/// results ([`HealthStore`]), the AI gateway's usage ([`ai_usage::AiUsageStore`]), its
/// model groups ([`AiModelStore`]) and alerts ([`alerts::AlertStore`]).
#[async_trait]
pub trait Store:
    TaskStore
    + HistoryStore
    + HistoryReadStore
    + LearningStore
    + breaker_state::BreakerStateStore
    + ScheduleStore
    + TaskRetryStore
    + TaskRowStore
    + ServiceStore
    + AgentStore
    + HealthStore
    + ai_usage::AiUsageStore
    + AiModelStore
    + analytics::AnalyticsStore
    + traces::TraceStore
    + alerts::AlertStore
    + Send
    + Sync
    + 'static
{
    /// Which engine this is.
    fn backend(&self) -> Backend;

    /// A cheap round trip, for `/health`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The database server's clock (PostgreSQL's `clock_timestamp()`), which every instance
    /// sharing the store takes as its wall time ([`sync_clock`]); `None` for the embedded
    /// store.
    async fn database_time(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError>;

    /// Applies every embedded migration that has not run yet. Safe to call concurrently from
    /// several instances (PostgreSQL serialises it with an advisory lock).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Closes every connection; waits for in-flight queries.
    async fn close(&self);
}

/// Makes the database server's clock the process's wall time (see [`crate::clock`]): the
/// server's time, read somewhere within the round trip, moves the wall time only when it could
/// not have been read then, and then by the least amount ([`crate::clock::follow_within`]).
/// Returns how far the machine's clock is from it (positive: ahead), or `None` for a store
/// without a clock of its own.
pub async fn sync_clock(store: &dyn Store) -> Result<Option<chrono::TimeDelta>, StoreError> {
    let sent = std::time::Instant::now();
    let Some(server) = store.database_time().await? else {
        return Ok(None);
    };
    let received = std::time::Instant::now();
    // PostgreSQL's clock has microseconds: a reading is up to 1 µs before the moment it was
    // taken.
    let earliest = sent
        .checked_sub(std::time::Duration::from_micros(1))
        .unwrap_or(sent);
    crate::clock::follow_within(server.into(), earliest, received);
    Ok(Some(crate::clock::machine_offset()))
}

/// Keeps the process's wall time on the database server's clock: [`sync_clock`] every
/// [`crate::clock::SYNC_EVERY`] until `stop` (an unreachable store keeps the last reference,
/// which the monotonic clock carries on). Logs when the machine's clock is more than a second
/// off, and when it comes back.
pub async fn clock_sync_loop(store: Arc<dyn Store>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut off = false;
    loop {
        match sync_clock(&*store).await {
            Ok(Some(offset)) => {
                let ms = offset.num_milliseconds();
                if ms.abs() > 1_000 && !off {
                    tracing::warn!(
                        machine_clock_offset_ms = ms,
                        "this machine's clock is off from the database server's; Jarvis keeps \
                         time by the database server's clock"
                    );
                } else if ms.abs() <= 1_000 && off {
                    tracing::info!(
                        machine_clock_offset_ms = ms,
                        "this machine's clock agrees with the database server's again"
                    );
                }
                off = ms.abs() > 1_000;
            }
            Ok(None) => return,
            Err(e) => tracing::debug!(error = %e, "clock sync skipped: store unreachable"),
        }
        tokio::select! {
            () = tokio::time::sleep(crate::clock::SYNC_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
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
            listen_url,
            pooler,
            connect_timeout,
        } => Ok(Arc::new(
            postgres::PostgresStore::connect_to(
                url,
                listen_url.as_ref(),
                *pooler,
                *connect_timeout,
            )
            .await?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_say_outage_full_disk_or_refusal() {
        let kind = |c: &str| match error_kind(c) {
            DbErrorKind::Full => "full",
            DbErrorKind::Io => "outage",
            DbErrorKind::Other => "other",
        };
        // PostgreSQL: a full disk; I/O and connection failures; the server shutting down or
        // starting (a pooled connection that met a restart reads 57P01 on its next statement).
        assert_eq!(kind("53100"), "full");
        for c in ["58030", "08006", "08003", "57P01", "57P02", "57P03"] {
            assert_eq!(kind(c), "outage", "{c}");
        }
        // The write itself refused: a constraint, a syntax error, a cancelled statement.
        for c in ["23505", "42601", "57014", "22P02"] {
            assert_eq!(kind(c), "other", "{c}");
        }
        // SQLite's extended result codes: the low byte is the primary code.
        assert_eq!(kind("13"), "full");
        assert_eq!(kind("3338"), "outage"); // SQLITE_IOERR_WRITE
        assert_eq!(kind("2067"), "other"); // SQLITE_CONSTRAINT_UNIQUE
    }
}
