//! Manual retry on PostgreSQL: the shared requeue (`store::retry`) wrapped so that the same
//! statement wakes idle workers of every instance (`NOTIFY jarvis_tasks`, as a submission
//! does).

pub(super) const RETRY: &str = concat!(
    "WITH up AS (",
    crate::store::retry::requeue_sql!(),
    "), wake AS (
    SELECT pg_notify('jarvis_tasks', '') AS sent WHERE EXISTS (SELECT 1 FROM up)
)
SELECT up.* FROM up LEFT JOIN wake ON true"
);
