//! The history's part of the storage trait: execution records, rollups, statistics, retention.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;
use crate::history::record::{ExecutionRecord, StoredExecution};
use crate::history::rollup::{FailureCount, HourTotals};

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
}

/// History operations of the store.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Inserts `records` in one transaction, skipping any whose `record_id` is stored already,
    /// and adds the inserted ones to the rollups in the same transaction. Returns how many were
    /// inserted.
    async fn insert_history(&self, records: &[ExecutionRecord]) -> Result<u64, StoreError>;

    /// Sums the rollups (and samples recent successful parameters) for statistics.
    async fn history_stats(&self, query: &StatsQuery) -> Result<StatsRaw, StoreError>;

    /// Raw records, newest first.
    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<StoredExecution>, StoreError>;

    /// Number of records (all, or of one task).
    async fn count_executions(&self, task_id: Option<Uuid>) -> Result<u64, StoreError>;

    /// Deletes, among the `limit` oldest records (in insertion order: the primary key, so no
    /// time index is maintained for retention), those that finished before `before`, and whole
    /// rollup hours older than `before`. Returns how many records were deleted; fewer than
    /// `limit` means the old end of the history is reached (or holds newer records).
    async fn purge_history(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}
