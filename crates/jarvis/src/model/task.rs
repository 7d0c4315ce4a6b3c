//! The task as the queue keeps it, and what a caller submits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::names::Name;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting for a worker (possibly until its `runAt` or a retry's backoff).
    Queued,
    /// Held by a worker, which is running an attempt.
    Running,
    /// Not attempted because the agent's circuit is OPEN; runs when it closes.
    Waiting,
    /// An attempt succeeded.
    Succeeded,
    /// Every allowed attempt failed.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl TaskStatus {
    /// The stored and shown form.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Waiting => "waiting",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the stored form.
    pub fn parse(raw: &str) -> Option<TaskStatus> {
        Some(match raw {
            "queued" => TaskStatus::Queued,
            "running" => TaskStatus::Running,
            "waiting" => TaskStatus::Waiting,
            "succeeded" => TaskStatus::Succeeded,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the task will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated task, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Its ID.
    pub id: Uuid,
    /// The domain (which agent runs it).
    pub domain: Name,
    /// What the agent is asked to do.
    pub action: Name,
    /// The caller's parameters: a JSON object.
    pub parameters: Value,
    /// What was learned for it (`useLearned`): the learned values with the probability each was
    /// chosen with, the given names, the learned timeout; `None` without `useLearned`.
    pub learned_parameters: Option<Value>,
    /// Higher runs first.
    pub priority: i32,
    /// Not before this time.
    pub run_at: DateTime<Utc>,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// Per-attempt timeout; `None` uses the agent's.
    pub timeout_ms: Option<u64>,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// The submitting request's correlation ID.
    pub correlation_id: String,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// Someone waits for it (`?wait=true`): its settlement is announced to every instance
    /// (PostgreSQL `NOTIFY`), so a waiter on another instance learns of it at once.
    pub notify_done: bool,
    /// The W3C `traceparent` the submitting request brought (none: the trace is the one
    /// derived from the correlation ID, see `trace::context`).
    pub traceparent: Option<String>,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Its ID.
    pub id: Uuid,
    /// The domain (which agent runs it).
    pub domain: Name,
    /// What the agent is asked to do.
    pub action: Name,
    /// The caller's parameters.
    pub parameters: Value,
    /// Parameters filled in from what was learned.
    pub learned_parameters: Option<Value>,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Higher runs first.
    pub priority: i32,
    /// Not claimed before this time.
    pub run_at: DateTime<Utc>,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// Per-attempt timeout; `None` uses the agent's.
    pub timeout_ms: Option<u64>,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// The submitting request's correlation ID.
    pub correlation_id: String,
    /// The instance holding it, while running.
    pub locked_by: Option<String>,
    /// Until when that instance holds it.
    pub lease_until: Option<DateTime<Utc>>,
    /// The agent's output of the successful attempt.
    pub result: Option<Value>,
    /// Why the latest attempt failed.
    pub error: Option<String>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished (succeeded, failed or cancelled).
    pub finished_at: Option<DateTime<Utc>>,
    /// Duration of its latest attempt.
    pub duration_ms: Option<u64>,
    /// Its settlement is announced to every instance (see [`NewTask::notify_done`]).
    pub notify_done: bool,
    /// The submitting request's W3C `traceparent` (see [`NewTask::traceparent`]).
    pub traceparent: Option<String>,
}

impl Task {
    /// The task a worker holds right after claiming `new` on insert.
    pub fn from_new(new: &NewTask) -> Task {
        Task {
            id: new.id,
            domain: new.domain.clone(),
            action: new.action.clone(),
            parameters: new.parameters.clone(),
            learned_parameters: new.learned_parameters.clone(),
            status: TaskStatus::Queued,
            priority: new.priority,
            run_at: new.run_at,
            attempts: 0,
            max_attempts: new.max_attempts,
            timeout_ms: new.timeout_ms,
            idempotency_key: new.idempotency_key.clone(),
            correlation_id: new.correlation_id.clone(),
            locked_by: None,
            lease_until: None,
            result: None,
            error: None,
            created_at: new.created_at,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            notify_done: new.notify_done,
            traceparent: new.traceparent.clone(),
        }
    }
}
