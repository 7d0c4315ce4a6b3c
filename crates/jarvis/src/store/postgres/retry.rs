//! Manual retry on PostgreSQL: the shared requeue (`store::retry`) wrapped so that the same
//! statement wakes idle workers of every instance (`NOTIFY jarvis_tasks`, as a submission
//! does).

/// The requeue and its wake-up in one statement (`impl_task_retry_store!`).
pub(super) const RETRY: &str = concat!(
    "WITH up AS (",
    crate::store::retry::requeue_sql!(),
    "), wake AS (
    SELECT pg_notify('jarvis_tasks', '') AS sent WHERE EXISTS (SELECT 1 FROM up)
)
SELECT up.* FROM up LEFT JOIN wake ON true"
);
