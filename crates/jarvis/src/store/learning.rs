//! The learner's part of the storage trait: one state row per domain/action, written with
//! optimistic concurrency (see `crate::learning` for why).
//!
//! The body is written once (`impl_learning_store!`); each backend gives its two
//! compare-and-swap statements, which differ only in whose clock stamps `updated_at`.

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

/// The one body of [`LearningStore`] for both backends, given the backend's compare-and-swap
/// statements (`impl_learning_store!(SqliteStore, INSERT, UPDATE)`): `INSERT` creates the
/// row at version 1 unless it exists (`$1` domain, `$2` action, `$3` state, `$4` runs, `$5`
/// instance), `UPDATE` writes the same values if the version is still `$6`, incrementing it.
/// Reads on the backend's reader, writes on its writer.
macro_rules! impl_learning_store {
    ($backend:ty, $insert:expr, $update:expr) => {
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
                    None => sqlx::query($insert),
                    Some(_) => sqlx::query($update),
                };
                let mut q = statement
                    .bind(domain)
                    .bind(action)
                    .bind(sqlx::types::Json(state))
                    .bind(runs)
                    .bind(instance);
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
