//! Task rows outside the queue's claim-and-settle protocol: one task, a listing (filtered and
//! paged with a keyset cursor), the queue's depth, and cancelling a task (one
//! `UPDATE … RETURNING`).
//!
//! The SQL is written once: both engines accept it as is, and [`TaskRow`] decodes from
//! either. `impl_task_row_store!` expands it for a backend. The queue itself
//! ([`TaskStore`](super::TaskStore)) differs by dialect and lives in each backend.
//!
//! [`TaskRow`]: super::rows::TaskRow

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::tasks::TaskFilter;
use super::StoreError;
use crate::model::task::{Task, TaskStatus};

pub(crate) const GET: &str = "SELECT * FROM tasks WHERE id = $1";

pub(crate) const GET_BY_KEY: &str = "SELECT * FROM tasks WHERE idempotency_key = $1";

/// Newest first: task ids are UUIDv7, so the primary key is the creation order, and a total
/// order (the same on both engines: SQLite compares the lower-case hyphenated text, PostgreSQL
/// the bytes, in the same order), so the keyset cursor `id < $8` neither repeats nor skips a
/// task while new ones arrive. System tasks (`system-*` domains) are left out unless `$7`;
/// `substr` rather than `LIKE`, which SQLite compares without case.
pub(crate) const LIST: &str = "\
SELECT * FROM tasks WHERE ($1 IS NULL OR domain = $1) AND ($2 IS NULL OR action = $2)
  AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR correlation_id = $4)
  AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6)
  AND ($7 OR substr(domain, 1, 7) <> 'system-') AND ($8 IS NULL OR id < $8)
ORDER BY id DESC LIMIT $9";

/// The domains of Jarvis's own work (`system-health`, …): left out of listings unless asked for.
pub const SYSTEM_DOMAIN_PREFIX: &str = "system-";

/// Which tasks a listing returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct TaskListing {
    /// Only this domain.
    pub domain: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this status.
    pub status: Option<TaskStatus>,
    /// Only tasks submitted under this correlation ID.
    pub correlation_id: Option<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// Also tasks of the `system-*` domains.
    pub include_system: bool,
    /// Only tasks older than this one (the cursor: the last task of the previous page).
    pub before: Option<Uuid>,
    /// At most this many.
    pub limit: u32,
}

impl From<&TaskFilter> for TaskListing {
    fn from(f: &TaskFilter) -> TaskListing {
        TaskListing {
            domain: f.domain.clone(),
            action: f.action.clone(),
            status: f.status,
            include_system: true,
            limit: f.limit,
            ..TaskListing::default()
        }
    }
}

pub(crate) const CANCEL: &str = "\
UPDATE tasks SET status = 'cancelled', finished_at = $2, locked_by = NULL, lease_until = NULL,
       updated_at = $2
WHERE id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled')
RETURNING *";

pub(crate) const DEPTH: &str = "SELECT count(*) FROM tasks WHERE status IN ('queued', 'waiting')";

/// Reading, listing and cancelling tasks.
#[async_trait]
pub trait TaskRowStore: Send + Sync {
    /// One task.
    async fn get_task(&self, id: Uuid) -> Result<Option<Task>, StoreError>;

    /// The task stored under an idempotency key (the unique index finds it).
    async fn get_task_by_idempotency_key(&self, key: &str) -> Result<Option<Task>, StoreError>;

    /// Tasks, newest first (every domain, system ones included).
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        self.list_task_page(&TaskListing::from(filter)).await
    }

    /// Tasks as `listing` says, newest first.
    async fn list_task_page(&self, listing: &TaskListing) -> Result<Vec<Task>, StoreError>;

    /// Cancels a task that has not finished. Returns the task after the call and whether this
    /// call cancelled it; `None` when there is no such task.
    async fn cancel_task(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<(Task, bool)>, StoreError>;

    /// Tasks queued or waiting.
    async fn queue_depth(&self) -> Result<u64, StoreError>;
}

/// The one body of [`TaskRowStore`] for both backends (`impl_task_row_store!(SqliteStore)`):
/// reads on the backend's reader, the cancellation on its writer (see
/// `store::shared::SqlBackend`).
macro_rules! impl_task_row_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::task_rows::TaskRowStore for $backend {
            async fn get_task(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::model::task::Task>, $crate::store::StoreError> {
                let row: Option<$crate::store::rows::TaskRow> =
                    sqlx::query_as($crate::store::task_rows::GET)
                        .bind($crate::store::shared::DbUuid(id))
                        .fetch_optional($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                $crate::store::rows::one(row)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn get_task_by_idempotency_key(
                &self,
                key: &str,
            ) -> Result<Option<$crate::model::task::Task>, $crate::store::StoreError> {
                let row: Option<$crate::store::rows::TaskRow> =
                    sqlx::query_as($crate::store::task_rows::GET_BY_KEY)
                        .bind(key)
                        .fetch_optional($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                $crate::store::rows::one(row)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn list_task_page(
                &self,
                listing: &$crate::store::task_rows::TaskListing,
            ) -> Result<Vec<$crate::model::task::Task>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::rows::TaskRow> =
                    sqlx::query_as($crate::store::task_rows::LIST)
                        .bind(listing.domain.as_deref())
                        .bind(listing.action.as_deref())
                        .bind(listing.status.map(|s| s.as_str()))
                        .bind(listing.correlation_id.as_deref())
                        .bind(listing.since)
                        .bind(listing.until)
                        .bind(listing.include_system)
                        .bind(listing.before.map($crate::store::shared::DbUuid))
                        .bind(i64::from(listing.limit))
                        .fetch_all($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                $crate::store::rows::all(rows)
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn cancel_task(
                &self,
                id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<($crate::model::task::Task, bool)>, $crate::store::StoreError> {
                let row: Option<$crate::store::rows::TaskRow> =
                    sqlx::query_as($crate::store::task_rows::CANCEL)
                        .bind($crate::store::shared::DbUuid(id))
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

            async fn queue_depth(&self) -> Result<u64, $crate::store::StoreError> {
                let n: i64 = sqlx::query_scalar($crate::store::task_rows::DEPTH)
                    .fetch_one($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(n.max(0) as u64)
            }
        }
    };
}
pub(crate) use impl_task_row_store;
