//! Running a finished task again by hand (`POST /api/v1/tasks/{id}/retry`): a storage
//! operation of its own, next to the queue's, so that the queue's statements stay as they are.
//!
//! The requeue is written once (`requeue_sql!`); SQLite runs it as is, PostgreSQL wraps it
//! so the same statement wakes idle workers of every instance (`NOTIFY`). The body around it
//! is written once too (`impl_task_retry_store!`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::model::task::Task;

/// The requeue: a `failed` or `cancelled` task goes back to `queued`, due at `$3`, with `$2`
/// more attempts allowed; `RETURNING *` gives the task after it. A macro so that the
/// PostgreSQL statement can `concat!` it into its `NOTIFY` wrapper at compile time.
macro_rules! requeue_sql {
    () => {
        "UPDATE tasks SET status = 'queued', max_attempts = attempts + $2, run_at = $3,
       error = NULL, result = NULL, finished_at = NULL, locked_by = NULL, called_at = NULL,
       lease_until = NULL, updated_at = $3
WHERE id = $1 AND status IN ('failed', 'cancelled')
RETURNING *"
    };
}
pub(crate) use requeue_sql;

/// The requeue as one statement, where nothing else has to happen with it (SQLite).
pub(crate) const REQUEUE: &str = requeue_sql!();

/// Manual retry of tasks.
#[async_trait]
pub trait TaskRetryStore: Send + Sync {
    /// Puts a `failed` or `cancelled` task back in the queue, in one statement: status
    /// `queued`, due at `now`, error, result and finish time cleared, `extra_attempts` more
    /// attempts allowed (`max_attempts = attempts + extra_attempts`); id, correlation ID,
    /// attempts so far and history stay. Wakes idle workers (PostgreSQL `NOTIFY`). Returns
    /// the task after the call and whether this call requeued it (false: it was not failed
    /// or cancelled); `None` when there is no such task.
    async fn retry_task(
        &self,
        id: Uuid,
        extra_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<(Task, bool)>, StoreError>;
}

/// The one body of [`TaskRetryStore`] for both backends, given the backend's statement
/// (`impl_task_retry_store!(SqliteStore, REQUEUE)`), which takes the task's id, the extra
/// attempts and the time, and returns the requeued task's row. Runs on the backend's writer.
macro_rules! impl_task_retry_store {
    ($backend:ty, $statement:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::retry::TaskRetryStore for $backend {
            async fn retry_task(
                &self,
                id: uuid::Uuid,
                extra_attempts: u32,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<($crate::model::task::Task, bool)>, $crate::store::StoreError> {
                let row: Option<$crate::store::rows::TaskRow> = sqlx::query_as($statement)
                    .bind($crate::store::shared::DbUuid(id))
                    .bind(i64::from(extra_attempts))
                    .bind(now)
                    .fetch_optional($crate::store::shared::SqlBackend::writer(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                match $crate::store::rows::one(row)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?
                {
                    Some(task) => Ok(Some((task, true))),
                    None => Ok($crate::store::task_rows::TaskRowStore::get_task(self, id)
                        .await?
                        .map(|t| (t, false))),
                }
            }
        }
    };
}
pub(crate) use impl_task_retry_store;
