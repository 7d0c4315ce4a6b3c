//! The queue's part of the storage trait: submitting, claiming with leases, settling, reclaiming.
//! Its statements differ by dialect (`SKIP LOCKED`, `UNNEST`, `NOTIFY`, plan pinning on
//! PostgreSQL; the single writer on SQLite), so each backend has its own `tasks.rs`; reading,
//! listing and cancelling tasks are shared (`store::task_rows`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;
use crate::tasks::model::{NewTask, Task, TaskStatus};

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

    /// The earliest `run_at` of a claimable task, if any.
    async fn next_run_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Starts a background listener that calls `wake.notify_one()` whenever another instance
    /// submits tasks (PostgreSQL `LISTEN`). `None` when the backend has no such channel.
    async fn listen_for_tasks(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let _ = wake;
        None
    }

    /// Announces to every instance that these tasks (submitted with `notify_done`) reached a
    /// final status. Settlements announce their own in the same statement; this is for the
    /// rarer ways a task ends (cancelled, reclaimed). A no-op where one process is all there
    /// is (SQLite: the queue's in-process channel reaches every waiter).
    async fn notify_finished(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let _ = ids;
        Ok(())
    }

    /// Starts a background listener that sends the ID of every task another instance
    /// announced as finished (PostgreSQL `LISTEN`). `None` when the backend has no such
    /// channel.
    async fn listen_for_finished(
        &self,
        finished: tokio::sync::broadcast::Sender<Uuid>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let _ = finished;
        None
    }
}
