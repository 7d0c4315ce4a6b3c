//! Task history: every attempt of every task as an [`ExecutionRecord`], written in batches off
//! the hot path by the [`Recorder`] (with a local spool when the store is unreachable), rolled
//! up per hour for fast [`Stats`], and pruned by a retention job.

pub mod recorder;
pub use crate::model::{record, rollup};
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

pub use record::{ExecutionRecord, StoredExecution};
pub use recorder::{Recorder, RecorderTask};
pub use stats::Stats;

use crate::store::{StatsQuery, Store, StoreError};

/// Failure groups shown in the stats.
pub const TOP_FAILURES: u32 = 5;
/// Recent successful runs that `optimalParameters` is learned from.
pub const RECENT_SUCCESSES: u32 = 200;

/// The statistics of one domain/action over an optional time range.
pub async fn stats(
    store: &dyn Store,
    domain: &str,
    action: &str,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Stats, StoreError> {
    let raw = store
        .history_stats(&StatsQuery {
            domain: domain.to_string(),
            action: action.to_string(),
            since,
            until,
            top_failures: TOP_FAILURES,
            recent_successes: RECENT_SUCCESSES,
        })
        .await?;
    Ok(Stats::from_raw(domain, action, since, until, raw))
}

/// Deletes records older than `retention`, in chunks, every `every`, until `stop` fires.
pub async fn retention_loop(
    store: Arc<dyn Store>,
    retention: Duration,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let before = crate::clock::now()
            - chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::days(36_500));
        let mut deleted = 0;
        loop {
            match store.purge_history(before, 10_000).await {
                Ok(n) => {
                    deleted += n;
                    if n < 10_000 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "history retention: cannot delete old records");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, before = %before, "history retention removed old records");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
