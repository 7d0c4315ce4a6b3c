//! The learner's part of the storage trait: one state row per domain/action, written with
//! optimistic concurrency (see `crate::learning` for why).
//!
//! The body and its two compare-and-swap statements are written once (`impl_learning_store!`);
//! `updated_at` is the writing instance's clock, bound like every other time the queue stamps.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreError;

/// The stored learner state of one domain/action.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LearningRow {
    /// The state as JSON (`crate::learning::LearnerState`).
    #[sqlx(json)]
    pub state: Value,
    /// Executions folded in.
    pub runs: i64,
    /// The row's version; a write must name it.
    pub version: i64,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

/// Learner-state operations of the store.
#[async_trait]
pub trait LearningStore: Send + Sync {
    /// The state of a domain/action, if any was written.
    async fn learning_state(
        &self,
        domain: &str,
        action: &str,
    ) -> Result<Option<LearningRow>, StoreError>;

    /// Writes the state if the stored version is still `expected` (`None`: no row may exist
    /// yet). Returns false, writing nothing, when another writer came first.
    async fn put_learning_state(
        &self,
        domain: &str,
        action: &str,
        state: &Value,
        runs: i64,
        expected: Option<i64>,
        instance: &str,
    ) -> Result<bool, StoreError>;
}

pub(crate) const GET: &str = "\
SELECT state, runs, version, updated_at FROM learning_state WHERE domain = $1 AND action = $2";

/// Creates the row at version 1 unless it exists: `$1` domain, `$2` action, `$3` state, `$4`
/// runs, `$5` instance, `$6` the time of the write.
pub(crate) const INSERT: &str = "\
INSERT INTO learning_state (domain, action, state, runs, version, updated_at, updated_by)
VALUES ($1, $2, $3, $4, 1, $6, $5)
ON CONFLICT (domain, action) DO NOTHING";

/// Writes the same values if the row's version is still `$7`, incrementing it.
pub(crate) const UPDATE: &str = "\
UPDATE learning_state SET state = $3, runs = $4, version = version + 1, updated_at = $6,
       updated_by = $5
WHERE domain = $1 AND action = $2 AND version = $7";

/// The one body of [`LearningStore`] for both backends (`impl_learning_store!(SqliteStore)`):
/// reads on the backend's reader, writes on its writer.
macro_rules! impl_learning_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::learning::LearningStore for $backend {
            async fn learning_state(
                &self,
                domain: &str,
                action: &str,
            ) -> Result<Option<$crate::store::learning::LearningRow>, $crate::store::StoreError>
            {
                sqlx::query_as($crate::store::learning::GET)
                    .bind(domain)
                    .bind(action)
                    .fetch_optional($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn put_learning_state(
                &self,
                domain: &str,
                action: &str,
                state: &serde_json::Value,
                runs: i64,
                expected: Option<i64>,
                instance: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                let statement = match expected {
                    None => sqlx::query($crate::store::learning::INSERT),
                    Some(_) => sqlx::query($crate::store::learning::UPDATE),
                };
                let mut q = statement
                    .bind(domain)
                    .bind(action)
                    .bind(sqlx::types::Json(state))
                    .bind(runs)
                    .bind(instance)
                    .bind(crate::clock::now());
                if let Some(version) = expected {
                    q = q.bind(version);
                }
                q.execute($crate::store::shared::SqlBackend::writer(self))
                    .await
                    .map(|r| r.rows_affected() == 1)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }
        }
    };
}
pub(crate) use impl_learning_store;
