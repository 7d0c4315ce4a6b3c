//! The queue's part of the storage trait: submitting, claiming with leases, settling, reclaiming.
//!
//! [`TaskStore`] is written once (`impl_task_store!`): the claim and the lookup of tasks by
//! idempotency key are one statement each whose text a backend gives ([`QueueDialect::CLAIM`],
//! [`QueueDialect::BY_KEYS`]); the next due time ([`NEXT_RUN_AT`]), pairing submitted tasks
//! with what was stored, the empty batches and the error classification are the same
//! everywhere. What really differs by dialect is a [`QueueDialect`] method in each backend's
//! `tasks.rs`: storing a batch, renewing leases, settling, marking attempts called and
//! reclaiming (`UNNEST`, `SKIP LOCKED`, `NOTIFY` and plan pinning on PostgreSQL; a loop in one
//! transaction on SQLite's single writer).
//! Reading, listing and cancelling tasks are shared too (`store::task_rows`).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::shared::SqlBackend;
use super::StoreError;
use crate::model::task::{NewTask, Task, TaskStatus};

/// Who claims, when, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// The claiming instance.
    pub instance: &'a str,
    /// The claim's time (also the new `started_at`).
    pub now: DateTime<Utc>,
    /// Until when the claim holds unless extended.
    pub until: DateTime<Utc>,
}

/// A stored task and whether this call created it (false: an idempotency key matched).
#[derive(Debug, Clone, PartialEq)]
pub struct Inserted {
    /// The task as stored.
    pub task: Task,
    /// Whether it is new.
    pub created: bool,
}

/// What becomes of a claimed task after an attempt (or a refused one).
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// The task.
    pub id: Uuid,
    /// The attempt number the claim gave it; a settlement for another attempt is ignored.
    pub attempt: u32,
    /// The new status: `queued` (retry), `waiting` (open circuit), or final.
    pub status: TaskStatus,
    /// Added to `attempts`: -1 when the claim did not spend an attempt (an open circuit, a
    /// task released unstarted), else 0.
    pub attempts_delta: i32,
    /// When it may run again (retry backoff, end of the open period).
    pub run_at: Option<DateTime<Utc>>,
    /// The agent's output.
    pub result: Option<Value>,
    /// The failure reason.
    pub error: Option<String>,
    /// When it finished, for final statuses.
    pub finished_at: Option<DateTime<Utc>>,
    /// The attempt's duration.
    pub duration_ms: Option<u64>,
}

/// What the reclaimer made of an attempt whose holder stopped renewing its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReclaimOutcome {
    /// The agent was called and the attempt has no record: it was interrupted. The task is
    /// queued again (failed when out of attempts) and the caller records the attempt.
    Interrupted,
    /// The holder recorded the attempt before it died: the task is settled as that record says
    /// (succeeded; or failed / queued again after a failure). Nothing more is recorded.
    Recorded,
    /// The agent was never called (claimed ahead, or stopped before the call): the attempt is
    /// given back, not spent, and nothing is recorded.
    GivenBack,
}

/// A task whose holder stopped renewing its lease, after reclaiming.
#[derive(Debug, Clone, PartialEq)]
pub struct Reclaimed {
    /// The task after reclaiming.
    pub task: Task,
    /// The instance that held it.
    pub lost_by: Option<String>,
    /// When the lost attempt started.
    pub attempt_started_at: Option<DateTime<Utc>>,
    /// The lease its holder last set (`lease_until` before reclaiming): the holder was alive
    /// at its last renewal, a lease before that.
    pub lost_lease_until: Option<DateTime<Utc>>,
    /// What became of the lost attempt.
    pub outcome: ReclaimOutcome,
}

/// Filters of a task listing.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this domain.
    pub domain: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this status.
    pub status: Option<TaskStatus>,
    /// At most this many (newest first).
    pub limit: u32,
}

/// The queue operations of the store.
#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Stores `tasks` in one transaction. A task whose idempotency key exists already is not
    /// stored again: the existing one is returned with `created: false`. With `claim`, new
    /// tasks are stored already claimed by that instance (the submitting instance runs them
    /// at once; used for single submissions when it has a free worker). Wakes idle workers of
    /// every instance with one notification per transaction.
    async fn insert_tasks(
        &self,
        tasks: &[NewTask],
        claim: Option<Lease<'_>>,
    ) -> Result<Vec<Inserted>, StoreError>;

    /// Claims up to `limit` due tasks, highest priority first, skipping tasks other workers
    /// hold. Each claim counts an attempt.
    async fn claim_tasks(&self, lease: Lease<'_>, limit: u32) -> Result<Vec<Task>, StoreError>;

    /// Extends the leases of `ids` held by `instance`; returns those still held (a cancelled
    /// or reclaimed task is not).
    async fn extend_leases(
        &self,
        instance: &str,
        ids: &[Uuid],
        until: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Applies settlements of tasks `instance` holds, in one transaction. Returns how many
    /// applied (a task cancelled or reclaimed meanwhile is left alone).
    async fn settle_tasks(
        &self,
        instance: &str,
        settlements: &[Settlement],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Marks attempts as called (the worker is about to call their agent), durably. Returns
    /// the IDs still held by `instance` at that attempt; the others were cancelled or
    /// reclaimed meanwhile and must not be called.
    async fn mark_called(
        &self,
        instance: &str,
        attempts: &[(Uuid, u32)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Takes back up to `limit` running tasks whose lease expired before `now`, each as its
    /// [`ReclaimOutcome`] says: an attempt that was recorded is settled as recorded, one whose
    /// agent was never called is given back, an interrupted one is requeued (failed when out
    /// of attempts). `grace` is how long after the database itself (re)started nothing is
    /// reclaimed: a holder that is alive needs that long to renew leases that expired while
    /// the database was down.
    async fn reclaim_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        grace: std::time::Duration,
    ) -> Result<Vec<Reclaimed>, StoreError>;

    /// Takes back up to `limit` running tasks whatever their lease, as
    /// [`reclaim_expired`](TaskStore::reclaim_expired) does expired ones. Only for a process
    /// that knows every holder is gone: the embedded store's `serve` starting with the data
    /// directory's lock, before it claims anything (`files::ServeLock`).
    async fn reclaim_orphaned(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Reclaimed>, StoreError>;

    /// The earliest `run_at` of a claimable task, if any.
    async fn next_run_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Starts a background listener that calls `wake.notify_one()` whenever another instance
    /// submits tasks (PostgreSQL `LISTEN`). `None` when the backend has no such channel.
    async fn listen_for_tasks(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>>;

    /// Announces to every instance that these tasks (submitted with `notify_done`) reached a
    /// final status. Settlements announce their own in the same statement; this is for the
    /// rarer ways a task ends (cancelled, reclaimed). A no-op where one process is all there
    /// is (SQLite: the queue's in-process channel reaches every waiter).
    async fn notify_finished(&self, ids: &[Uuid]) -> Result<(), StoreError>;

    /// Starts a background listener that sends the ID of every task another instance
    /// announced as finished (PostgreSQL `LISTEN`). `None` when the backend has no such
    /// channel.
    async fn listen_for_finished(
        &self,
        finished: tokio::sync::broadcast::Sender<Uuid>,
    ) -> Option<tokio::task::JoinHandle<()>>;
}

/// What differs by dialect in the queue. Each method is one step of the [`TaskStore`] method
/// of the same purpose, called with a non-empty batch (`take_back_expired`: any `limit`);
/// errors are classified by the caller.
/// The notification defaults are those of a store one process owns (SQLite), where the
/// queue's in-process channels reach every waiter.
pub(crate) trait QueueDialect: SqlBackend + Sync {
    /// Claims due tasks, highest priority first, for `$1` (the instance) at `$2` (now), at most
    /// `$3`, leased until `$4`; returns the claimed rows (`tasks.*`) in any order.
    const CLAIM: &'static str;

    /// The tasks (`tasks.*`) whose idempotency key is in `$1`, a list of keys bound as
    /// [`DbTexts`](super::shared::DbTexts).
    const BY_KEYS: &'static str;

    /// Stores `tasks` (claimed by `claim`'s instance if given) unless their idempotency key is
    /// taken; returns the tasks it stored. Once it returns, they are durable and readable on the
    /// writer, where the earlier tasks holding the [`missing_keys`] of the others are read.
    async fn store_tasks(
        &self,
        tasks: &[NewTask],
        claim: Option<Lease<'_>>,
    ) -> Result<Vec<Task>, sqlx::Error>;

    /// Renews the leases of the tasks `$2` (a [`DbList`](super::shared::DbList) of IDs) until
    /// `$1` where they are still running (`$4`, "running" per task) for this instance (`$3`,
    /// the instance per task); returns the IDs renewed. The holder and the expected status are
    /// bound per task, like the batch, for PostgreSQL's plan (see its `SETTLE`).
    const RENEW: &'static str;

    /// See [`TaskStore::settle_tasks`].
    async fn apply_settlements(
        &self,
        instance: &str,
        settlements: &[Settlement],
        now: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error>;

    /// Marks the attempts `($2, $3)` (lists of task IDs and attempt numbers) as having called
    /// their agent at `$1`, where the task is still running (`$5`) that attempt for this
    /// instance (`$4`), both per task as in [`RENEW`](Self::RENEW); returns the IDs marked.
    const MARK_CALLED: &'static str;

    /// See [`TaskStore::reclaim_expired`]: the leases that expired before `expired_before`
    /// (`now`, or any time after it for [`TaskStore::reclaim_orphaned`]); `now` stamps what
    /// is taken back.
    async fn take_back_expired(
        &self,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
        limit: u32,
        grace: std::time::Duration,
    ) -> Result<Vec<Reclaimed>, sqlx::Error>;

    /// See [`TaskStore::listen_for_tasks`]; by default there is no such channel.
    async fn listen_for_tasks(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let _ = wake;
        None
    }

    /// See [`TaskStore::notify_finished`]; by default there is nobody else to tell.
    async fn notify_finished(&self, ids: &[Uuid]) -> Result<(), sqlx::Error> {
        let _ = ids;
        Ok(())
    }

    /// See [`TaskStore::listen_for_finished`]; by default there is no such channel.
    async fn listen_for_finished(
        &self,
        finished: tokio::sync::broadcast::Sender<Uuid>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let _ = finished;
        None
    }
}

/// The earliest `run_at` of a claimable task, as a column `run_at` of at most one row (none when
/// nothing is claimable). No index leads with `run_at`, so this walks the claimable rows either
/// way; on PostgreSQL `min(run_at)` plans the same walk.
pub(crate) const NEXT_RUN_AT: &str =
    "SELECT run_at FROM tasks WHERE status IN ('queued', 'waiting') ORDER BY run_at LIMIT 1";

/// The idempotency keys of the tasks a batch insert did not store (`stored`): each names a
/// task stored before, or earlier in the same batch.
pub(crate) fn missing_keys(tasks: &[NewTask], stored: &[Task]) -> Vec<String> {
    let stored: HashSet<Uuid> = stored.iter().map(|t| t.id).collect();
    tasks
        .iter()
        .filter(|t| !stored.contains(&t.id))
        .filter_map(|t| t.idempotency_key.clone())
        .collect()
}

/// Pairs every submitted task with what the store holds for it: the row this call stored
/// (`created`), else the one found under its idempotency key.
pub(crate) fn inserted(
    tasks: &[NewTask],
    stored: Vec<Task>,
    existing: Vec<Task>,
) -> Result<Vec<Inserted>, StoreError> {
    let stored: HashMap<Uuid, Task> = stored.into_iter().map(|t| (t.id, t)).collect();
    let existing: HashMap<String, Task> = existing
        .into_iter()
        .filter_map(|t| Some((t.idempotency_key.clone()?, t)))
        .collect();
    tasks
        .iter()
        .map(|t| {
            if let Some(s) = stored.get(&t.id) {
                return Ok(Inserted {
                    task: s.clone(),
                    created: true,
                });
            }
            t.idempotency_key
                .as_ref()
                .and_then(|k| existing.get(k))
                .map(|e| Inserted {
                    task: e.clone(),
                    created: false,
                })
                .ok_or_else(|| {
                    StoreError::Other(format!("task {} was neither stored nor found", t.id))
                })
        })
        .collect()
}

/// The one body of [`TaskStore`] for both backends (`impl_task_store!(SqliteStore)`), around
/// the backend's [`QueueDialect`].
macro_rules! impl_task_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::tasks::TaskStore for $backend {
            async fn insert_tasks(
                &self,
                tasks: &[$crate::model::task::NewTask],
                claim: Option<$crate::store::tasks::Lease<'_>>,
            ) -> Result<Vec<$crate::store::tasks::Inserted>, $crate::store::StoreError> {
                use $crate::store::{shared::SqlBackend, tasks::QueueDialect};
                if tasks.is_empty() {
                    return Ok(Vec::new());
                }
                let work = async {
                    let stored = self.store_tasks(tasks, claim).await?;
                    // The others: their idempotency key names a task stored before (or earlier
                    // in this batch).
                    let missing = $crate::store::tasks::missing_keys(tasks, &stored);
                    if missing.is_empty() {
                        return Ok((stored, Vec::new()));
                    }
                    let existing = sqlx::query(<$backend as QueueDialect>::BY_KEYS)
                        .bind($crate::store::shared::DbTexts(missing))
                        .fetch_all(self.writer())
                        .await?
                        .iter()
                        .map($crate::store::rows::task)
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok::<_, sqlx::Error>((stored, existing))
                };
                let (stored, existing) = work.await.map_err(|e| self.classify(e))?;
                $crate::store::tasks::inserted(tasks, stored, existing)
            }

            async fn claim_tasks(
                &self,
                lease: $crate::store::tasks::Lease<'_>,
                limit: u32,
            ) -> Result<Vec<$crate::model::task::Task>, $crate::store::StoreError> {
                use $crate::store::{shared::SqlBackend, tasks::QueueDialect};
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let work = async {
                    let claimed = sqlx::query(<$backend as QueueDialect>::CLAIM)
                        .bind(lease.instance)
                        .bind(lease.now)
                        .bind(i64::from(limit))
                        .bind(lease.until)
                        .fetch_all(self.queue())
                        .await?;
                    claimed
                        .iter()
                        .map($crate::store::rows::task)
                        .collect::<Result<Vec<_>, _>>()
                };
                let mut tasks = work.await.map_err(|e| self.classify(e))?;
                tasks.sort_by(|a, b| (b.priority, a.run_at).cmp(&(a.priority, b.run_at)));
                Ok(tasks)
            }

            async fn extend_leases(
                &self,
                instance: &str,
                ids: &[uuid::Uuid],
                until: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<uuid::Uuid>, $crate::store::StoreError> {
                use $crate::store::shared::{DbList, DbUuid, SqlBackend};
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let holders = vec![instance; ids.len()];
                let expected = vec!["running"; ids.len()];
                let renewed: Vec<DbUuid> =
                    sqlx::query_scalar(<$backend as $crate::store::tasks::QueueDialect>::RENEW)
                        .bind(until)
                        .bind(DbList(ids))
                        .bind(DbList(&holders))
                        .bind(DbList(&expected))
                        .fetch_all(self.queue())
                        .await
                        .map_err(|e| self.classify(e))?;
                Ok(renewed.into_iter().map(|u| u.0).collect())
            }

            async fn settle_tasks(
                &self,
                instance: &str,
                settlements: &[$crate::store::tasks::Settlement],
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::{shared::SqlBackend, tasks::QueueDialect};
                if settlements.is_empty() {
                    return Ok(0);
                }
                self.apply_settlements(instance, settlements, now)
                    .await
                    .map_err(|e| self.classify(e))
            }

            async fn mark_called(
                &self,
                instance: &str,
                attempts: &[(uuid::Uuid, u32)],
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<uuid::Uuid>, $crate::store::StoreError> {
                use $crate::store::shared::{DbList, DbUuid, SqlBackend};
                if attempts.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<uuid::Uuid> = attempts.iter().map(|a| a.0).collect();
                let numbers: Vec<i32> = attempts.iter().map(|a| a.1 as i32).collect();
                let holders = vec![instance; ids.len()];
                let expected = vec!["running"; ids.len()];
                let marked: Vec<DbUuid> = sqlx::query_scalar(
                    <$backend as $crate::store::tasks::QueueDialect>::MARK_CALLED,
                )
                .bind(now)
                .bind(DbList(&ids))
                .bind(DbList(&numbers))
                .bind(DbList(&holders))
                .bind(DbList(&expected))
                .fetch_all(self.queue())
                .await
                .map_err(|e| self.classify(e))?;
                Ok(marked.into_iter().map(|u| u.0).collect())
            }

            async fn reclaim_expired(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
                grace: std::time::Duration,
            ) -> Result<Vec<$crate::store::tasks::Reclaimed>, $crate::store::StoreError> {
                use $crate::store::{shared::SqlBackend, tasks::QueueDialect};
                self.take_back_expired(now, now, limit, grace)
                    .await
                    .map_err(|e| self.classify(e))
            }

            async fn reclaim_orphaned(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<$crate::store::tasks::Reclaimed>, $crate::store::StoreError> {
                use $crate::store::{shared::SqlBackend, tasks::QueueDialect};
                // Any lease, however long it still runs (a century on: times stay comparable
                // as SQLite's text).
                let any = now + chrono::TimeDelta::days(36_525);
                self.take_back_expired(now, any, limit, std::time::Duration::ZERO)
                    .await
                    .map_err(|e| self.classify(e))
            }

            async fn next_run_at(
                &self,
            ) -> Result<Option<chrono::DateTime<chrono::Utc>>, $crate::store::StoreError> {
                use $crate::store::shared::SqlBackend;
                sqlx::query_scalar($crate::store::tasks::NEXT_RUN_AT)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(|e| self.classify(e))
            }

            async fn listen_for_tasks(
                &self,
                wake: std::sync::Arc<tokio::sync::Notify>,
            ) -> Option<tokio::task::JoinHandle<()>> {
                $crate::store::tasks::QueueDialect::listen_for_tasks(self, wake).await
            }

            async fn notify_finished(
                &self,
                ids: &[uuid::Uuid],
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{shared::SqlBackend, tasks::QueueDialect};
                if ids.is_empty() {
                    return Ok(());
                }
                QueueDialect::notify_finished(self, ids)
                    .await
                    .map_err(|e| self.classify(e))
            }

            async fn listen_for_finished(
                &self,
                finished: tokio::sync::broadcast::Sender<uuid::Uuid>,
            ) -> Option<tokio::task::JoinHandle<()>> {
                $crate::store::tasks::QueueDialect::listen_for_finished(self, finished).await
            }
        }
    };
}
pub(crate) use impl_task_store;
