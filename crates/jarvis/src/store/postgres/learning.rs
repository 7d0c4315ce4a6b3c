//! The learner's state on PostgreSQL: one JSONB row per domain/action, versioned.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;

use super::PostgresStore;
use crate::store::learning::{LearningRow, LearningStore};
use crate::store::StoreError;

#[async_trait]
impl LearningStore for PostgresStore {
    async fn learning_state(
        &self,
        domain: &str,
        action: &str,
    ) -> Result<Option<LearningRow>, StoreError> {
        let row = sqlx::query(
            "SELECT state, runs, version, updated_at FROM learning_state \
             WHERE domain = $1 AND action = $2",
        )
        .bind(domain)
        .bind(action)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.error(e))?;
        row.map(|r| {
            Ok(LearningRow {
                state: r.try_get::<Value, _>("state")?,
                runs: r.try_get("runs")?,
                version: r.try_get("version")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| self.error(e))
    }

    async fn put_learning_state(
        &self,
        domain: &str,
        action: &str,
        state: &Value,
        runs: i64,
        expected: Option<i64>,
        instance: &str,
    ) -> Result<bool, StoreError> {
        let result = match expected {
            None => sqlx::query(
                "INSERT INTO learning_state (domain, action, state, runs, version, updated_by) \
                 VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (domain, action) DO NOTHING",
            )
            .bind(domain)
            .bind(action)
            .bind(state)
            .bind(runs)
            .bind(instance)
            .execute(self.pool())
            .await,
            Some(version) => {
                sqlx::query(
                    "UPDATE learning_state SET state = $3, runs = $4, version = version + 1, \
                 updated_at = now(), updated_by = $5 \
                 WHERE domain = $1 AND action = $2 AND version = $6",
                )
                .bind(domain)
                .bind(action)
                .bind(state)
                .bind(runs)
                .bind(instance)
                .bind(version)
                .execute(self.pool())
                .await
            }
        };
        result
            .map(|r| r.rows_affected() == 1)
            .map_err(|e| self.error(e))
    }
}
