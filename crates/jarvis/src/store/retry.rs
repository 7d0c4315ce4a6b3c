//! Running a finished task again by hand (`POST /api/v1/tasks/{id}/retry`): a storage
//! operation of its own, next to the queue's, so that the queue's statements stay as they are.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::tasks::model::Task;

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
