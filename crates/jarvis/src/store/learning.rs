//! The learner's part of the storage trait: one state row per domain/action, written with
//! optimistic concurrency (see `crate::learning` for why).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreError;

/// The stored learner state of one domain/action.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningRow {
    /// The state as JSON (`crate::learning::LearnerState`).
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
