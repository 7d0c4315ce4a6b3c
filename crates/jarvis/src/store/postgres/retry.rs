//! Manual retry on PostgreSQL: one `UPDATE … RETURNING` that also wakes idle workers of every
//! instance (`NOTIFY jarvis_tasks`, as a submission does).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::PostgresStore;
use crate::store::retry::TaskRetryStore;
use crate::store::tasks::TaskStore;
use crate::store::{rows, StoreError};
use crate::tasks::model::Task;

const RETRY: &str = "\
WITH up AS (
    UPDATE tasks SET status = 'queued', max_attempts = attempts + $2, run_at = $3,
           error = NULL, result = NULL, finished_at = NULL, locked_by = NULL, called_at = NULL,
           lease_until = NULL, updated_at = $3
    WHERE id = $1 AND status IN ('failed', 'cancelled')
    RETURNING *
), wake AS (
    SELECT pg_notify('jarvis_tasks', '') AS sent WHERE EXISTS (SELECT 1 FROM up)
)
SELECT up.* FROM up LEFT JOIN wake ON true";

#[async_trait]
impl TaskRetryStore for PostgresStore {
    async fn retry_task(
        &self,
        id: Uuid,
        extra_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<(Task, bool)>, StoreError> {
        let row = sqlx::query(RETRY)
            .bind(id)
            .bind(extra_attempts as i32)
            .bind(now)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.error(e))?;
        match row {
            Some(r) => Ok(Some((rows::task(&r).map_err(|e| self.error(e))?, true))),
            None => Ok(self.get_task(id).await?.map(|t| (t, false))),
        }
    }
}
