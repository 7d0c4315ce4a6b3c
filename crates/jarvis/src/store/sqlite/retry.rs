//! Manual retry on SQLite: one `UPDATE … RETURNING` on the writer connection (the one
//! instance's workers are woken by `TaskQueue::retry`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SqliteStore;
use crate::store::retry::TaskRetryStore;
use crate::store::tasks::TaskStore;
use crate::store::{rows, StoreError};
use crate::tasks::model::Task;

const RETRY: &str = "\
UPDATE tasks SET status = 'queued', max_attempts = attempts + $2, run_at = $3,
       error = NULL, result = NULL, finished_at = NULL, locked_by = NULL, called_at = NULL,
       lease_until = NULL, updated_at = $3
WHERE id = $1 AND status IN ('failed', 'cancelled')
RETURNING *";

#[async_trait]
impl TaskRetryStore for SqliteStore {
    async fn retry_task(
        &self,
        id: Uuid,
        extra_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<(Task, bool)>, StoreError> {
        let row = sqlx::query(RETRY)
            .bind(id.hyphenated().to_string())
            .bind(i64::from(extra_attempts))
            .bind(now)
            .fetch_optional(self.writer())
            .await
            .map_err(|e| self.err(e))?;
        match row {
            Some(r) => Ok(Some((rows::task(&r).map_err(|e| self.err(e))?, true))),
            None => Ok(self.get_task(id).await?.map(|t| (t, false))),
        }
    }
}
