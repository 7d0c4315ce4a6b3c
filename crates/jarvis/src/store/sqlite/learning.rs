//! The learner's state on SQLite: one JSON text row per domain/action, versioned, written on
//! the single writer connection.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;

use super::SqliteStore;
use crate::store::learning::{LearningRow, LearningStore};
use crate::store::StoreError;

#[async_trait]
impl LearningStore for SqliteStore {
    async fn learning_state(
        &self,
        domain: &str,
        action: &str,
    ) -> Result<Option<LearningRow>, StoreError> {
        let row = sqlx::query(
            "SELECT state, runs, version, updated_at FROM learning_state \
             WHERE domain = ?1 AND action = ?2",
        )
        .bind(domain)
        .bind(action)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        let Some(r) = row else { return Ok(None) };
        let text: String = r.try_get("state").map_err(StoreError::from_sqlx)?;
        Ok(Some(LearningRow {
            state: serde_json::from_str(&text)
                .map_err(|e| StoreError::Other(format!("learning_state.state: {e}")))?,
            runs: r.try_get("runs").map_err(StoreError::from_sqlx)?,
            version: r.try_get("version").map_err(StoreError::from_sqlx)?,
            updated_at: r.try_get("updated_at").map_err(StoreError::from_sqlx)?,
        }))
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
        let now = crate::store::now();
        let text = state.to_string();
        let result = match expected {
            None => sqlx::query(
                "INSERT INTO learning_state (domain, action, state, runs, version, updated_at, \
                 updated_by) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6) \
                 ON CONFLICT (domain, action) DO NOTHING",
            )
            .bind(domain)
            .bind(action)
            .bind(&text)
            .bind(runs)
            .bind(now)
            .bind(instance)
            .execute(self.writer())
            .await,
            Some(version) => {
                sqlx::query(
                    "UPDATE learning_state SET state = ?3, runs = ?4, version = version + 1, \
                 updated_at = ?5, updated_by = ?6 \
                 WHERE domain = ?1 AND action = ?2 AND version = ?7",
                )
                .bind(domain)
                .bind(action)
                .bind(&text)
                .bind(runs)
                .bind(now)
                .bind(instance)
                .bind(version)
                .execute(self.writer())
                .await
            }
        };
        result
            .map(|r| r.rows_affected() == 1)
            .map_err(|e| self.err(e))
    }
}
