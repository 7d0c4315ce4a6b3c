//! The task queue of one instance: submitting, the workers, settling, leases, reclaiming.
//!
//! ```text
//!  submit ──► store (one transaction, one NOTIFY) ──► dispatcher ──claim batch──► local buffer
//!     │ (single task, free worker: stored already claimed, runs at once)            │ by priority
//!     └────────────────────────────────────────────────► attempt (span: correlation ID)
//!                                                           │ breaker ─► agent
//!                           settler (batched UPDATE) ◄──────┤
//!                           recorder (batched history) ◄────┘
//!  lease keeper: renews every held task's lease in one UPDATE; drops what it lost
//!  reclaimer:    takes back tasks whose holder stopped renewing (settled as recorded, given
//!                back when never called, else recorded as interrupted)
//! ```
//!
//! Delivery is at least once: a task whose worker dies is claimed again when its lease
//! expires. Every attempt has exactly one record: an attempt whose holder recorded it before
//! dying is settled as recorded (a recorded success never runs again), one whose agent was
//! never called (claimed ahead, or the store was unreachable before the call) is given back
//! without a record, and only an attempt cut off mid-call is recorded as interrupted.
//!
//! Waiters (`?wait=true`) hear of a settlement at once: in-process through `finished`, from
//! other instances through the store's notification (PostgreSQL `NOTIFY jarvis_task_done`);
//! a slow poll is only the fallback.
//!
//! Files: this one holds the queue's state, submitting, reading, cancelling and waiting;
//! `dispatch` the dispatcher and the workers' buffer, `attempt` one attempt from agent lookup
//! to its record, `settle` the batched settlements, `leases` the lease keeper and the
//! reclaimer, `shutdown` the graceful stop.

mod attempt;
mod dispatch;
mod leases;
mod settle;
mod shutdown;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use uuid::Uuid;

use super::agents::{AgentAnswer, AgentCall, BuiltinAgent, BuiltinAgents, HttpAgents};
use super::called::CallMarks;
use super::metrics::TaskMetrics;
use super::model::{NewTask, Task, TaskStatus};
use crate::agents::AgentSpec;
use crate::breakers::{BreakerRegistry, Outcome};
use crate::clock::{self, SharedClock};
use crate::config::TaskSettings;
use crate::history::{ExecutionRecord, Recorder};
use crate::store::{Inserted, Lease, ReclaimOutcome, Settlement, Store, StoreError};

/// Per-attempt timeout of built-in agents when the task gives none.
pub const DEFAULT_TIMEOUT_MS: u64 = crate::agents::DEFAULT_TIMEOUT_MS;
/// Most tasks reclaimed in one go.
const RECLAIM_BATCH: u32 = 500;
/// Most settlements in one transaction.
const SETTLE_BATCH: usize = 2_000;
/// How often a waiter reads its task when no notification came (the fallback: a settlement
/// on any instance is normally announced at once).
const WAIT_POLL: Duration = Duration::from_millis(500);
/// How long an attempt given back because the store was unreachable waits before it runs
/// again.
const GIVE_BACK_DELAY: Duration = Duration::from_secs(1);
/// How often a task whose domain has no agent looks again (it waits without spending an
/// attempt; docs/api.md, How a task runs).
const NO_AGENT_RECHECK: Duration = Duration::from_secs(2);

/// Why a running attempt is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The task was cancelled.
    Cancelled,
    /// Another instance reclaimed the task (this one could not renew its lease in time): the
    /// reclaimer has recorded the attempt or given it back, so nothing is written here.
    LeaseLost,
    /// The instance is shutting down and the grace period is over.
    Shutdown,
}

/// A claimed task waiting for a free worker, ordered by priority then due time.
struct Ready(Task);

impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .priority
            .cmp(&other.0.priority)
            .then_with(|| other.0.run_at.cmp(&self.0.run_at))
            .then_with(|| other.0.id.cmp(&self.0.id))
    }
}

/// What this instance knows about a task it holds.
struct Held {
    /// Stops the running attempt; `None` while the task waits in the buffer.
    stop: Option<oneshot::Sender<Stop>>,
    /// Which claim of the task this is (a number unique in the process): a task settled and
    /// claimed again is held under a new one, so that a renewal that missed the old claim does
    /// not stop the new one.
    claim: u64,
}

/// A settlement on its way to the store, with what to do once it is applied.
struct Settle {
    settlement: Settlement,
    /// How many records were queued when the settlement was made ([`Recorder::queued`]): the
    /// settlement is applied once those are written, its attempt's record among them.
    records: u64,
    /// The claim being settled (its [`Held::claim`] when it was handed to the settler): only
    /// that claim's entry is removed after the commit, never one made after it.
    claim: Option<u64>,
    domain: String,
    action: String,
}

enum SettleMsg {
    Settle(Box<Settle>),
    Flush(oneshot::Sender<()>),
}

/// What the queue needs from the application.
pub struct QueueParts {
    /// Where tasks live.
    pub store: Arc<dyn Store>,
    /// Every agent call goes through its domain's breaker.
    pub breakers: Arc<BreakerRegistry>,
    /// Built-in agents by domain.
    pub builtins: BuiltinAgents,
    /// Where execution records go.
    pub recorder: Recorder,
    /// Task metrics.
    pub metrics: Arc<TaskMetrics>,
    /// Queue settings.
    pub settings: TaskSettings,
    /// Workers of this instance.
    pub concurrency: u32,
    /// This instance's name.
    pub instance: String,
    /// Where the queue reads time ([`clock::system`] outside tests).
    pub clock: SharedClock,
    /// The AI gateway `ai` agents' tasks run through (`None`: such tasks fail, saying so).
    pub ai: Option<Arc<crate::ai::Gateway>>,
}

/// The task queue of one instance. Cheap to share (`Arc`).
pub struct TaskQueue {
    store: Arc<dyn Store>,
    breakers: Arc<BreakerRegistry>,
    builtins: BuiltinAgents,
    http: HttpAgents,
    ai: Option<Arc<crate::ai::Gateway>>,
    recorder: Recorder,
    metrics: Arc<TaskMetrics>,
    settings: TaskSettings,
    concurrency: u32,
    instance: String,
    clock: SharedClock,
    slots: Arc<Semaphore>,
    wake: Arc<Notify>,
    finished: broadcast::Sender<Uuid>,
    held: Mutex<HashMap<Uuid, Held>>,
    buffer: Mutex<BinaryHeap<Ready>>,
    settle_tx: mpsc::UnboundedSender<SettleMsg>,
    settle_rx: Mutex<Option<mpsc::UnboundedReceiver<SettleMsg>>>,
    running: AtomicUsize,
    /// The last claim number given out (see [`Held::claim`]).
    claims: AtomicU64,
    started: AtomicBool,
    stopping: watch::Sender<bool>,
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    calls: Mutex<Option<CallMarks>>,
    /// When a store call of this instance last failed: a holder cut off from the store could
    /// not renew its leases either, so the reclaimer waits a whole lease after that.
    store_trouble: Mutex<Option<Instant>>,
    /// Where agent calls and breaker decisions are traced (none: not traced).
    tracer: std::sync::OnceLock<crate::trace::Tracer>,
}

impl TaskQueue {
    /// A queue that is not running yet (submitting works; nothing runs before [`start`]).
    ///
    /// [`start`]: TaskQueue::start
    pub fn new(parts: QueueParts) -> Arc<TaskQueue> {
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let (finished, _) = broadcast::channel(4096);
        let (stopping, _) = watch::channel(false);
        Arc::new(TaskQueue {
            store: parts.store,
            breakers: parts.breakers,
            builtins: parts.builtins,
            http: HttpAgents::new(),
            ai: parts.ai,
            recorder: parts.recorder,
            metrics: parts.metrics,
            settings: parts.settings,
            concurrency: parts.concurrency.max(1),
            instance: parts.instance,
            clock: parts.clock,
            slots: Arc::new(Semaphore::new(parts.concurrency.max(1) as usize)),
            wake: Arc::new(Notify::new()),
            finished,
            held: Mutex::new(HashMap::new()),
            buffer: Mutex::new(BinaryHeap::new()),
            settle_tx,
            settle_rx: Mutex::new(Some(settle_rx)),
            running: AtomicUsize::new(0),
            claims: AtomicU64::new(0),
            started: AtomicBool::new(false),
            stopping,
            background: Mutex::new(Vec::new()),
            calls: Mutex::new(None),
            store_trouble: Mutex::new(None),
            tracer: std::sync::OnceLock::new(),
        })
    }

    /// The ID of every task that settles finally (succeeded, failed, cancelled) from now on, on
    /// this instance or, with PostgreSQL, on another (the channel `?wait=true` waits on).
    pub fn subscribe_finished(&self) -> broadcast::Receiver<Uuid> {
        self.finished.subscribe()
    }

    /// Traces agent calls and breaker decisions through `tracer` from now on (once).
    pub fn set_tracer(&self, tracer: crate::trace::Tracer) {
        let _ = self.tracer.set(tracer);
    }

    /// The recorder execution records go to.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The task metrics.
    pub fn metrics(&self) -> &Arc<TaskMetrics> {
        &self.metrics
    }

    /// Whether a built-in agent serves `domain` (its tasks need no HTTP agent, and no HTTP
    /// agent can be registered for it).
    pub fn has_builtin(&self, domain: &str) -> bool {
        self.builtins.get(domain).is_some()
    }

    /// Attempts running on this instance now.
    pub fn running(&self) -> usize {
        self.running.load(AtomicOrdering::Relaxed)
    }

    /// The queue clock's wall time, as the store keeps it.
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        clock::utc(&*self.clock)
    }

    /// A new entry of [`TaskQueue::held`] for a task just claimed.
    fn held_claim(&self) -> Held {
        Held {
            stop: None,
            claim: self.claims.fetch_add(1, AtomicOrdering::Relaxed) + 1,
        }
    }

    /// Notes that this instance now holds `tasks` (just claimed), each under a new claim.
    fn hold(&self, tasks: &[Task]) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for t in tasks {
            held.insert(t.id, self.held_claim());
        }
    }

    /// The tasks this instance holds, each with its claim number.
    fn held_claims(&self) -> Vec<(Uuid, u64)> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, h)| (*id, h.claim))
            .collect()
    }

    /// The tasks this instance holds (running or waiting in its buffer).
    fn held_ids(&self) -> Vec<Uuid> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Time passed on the queue's clock since `t`.
    fn since(&self, t: Instant) -> Duration {
        self.clock.now().saturating_duration_since(t)
    }

    fn lease(&self) -> Duration {
        Duration::from_millis(self.settings.lease_ms)
    }

    fn lease_from(&self, now: chrono::DateTime<chrono::Utc>) -> Lease<'_> {
        Lease {
            instance: &self.instance,
            now,
            until: now + chrono::TimeDelta::milliseconds(self.settings.lease_ms as i64),
        }
    }

    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Notes that a store call failed just now (see `store_trouble`).
    fn store_failed(&self) {
        *self.store_trouble.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.clock.now());
    }

    /// Whether a store call failed within the last lease.
    fn store_troubled_recently(&self) -> bool {
        self.store_trouble
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| self.clock.now().saturating_duration_since(t) < self.lease())
    }

    /// Whether the process's wall time stepped within the last lease (`clock::last_step`):
    /// leases renewed before the step look expired (or far off) until renewed after it.
    fn clock_stepped_recently(&self) -> bool {
        clock::last_step().is_some_and(|t| t.elapsed() < self.lease())
    }

    /// Starts the settler, and with workers enabled the dispatcher, lease keeper, reclaimer
    /// and (PostgreSQL) the `LISTEN` wake-up.
    pub async fn start(self: &Arc<Self>) {
        let mut bg = Vec::new();
        if let Some(rx) = self
            .settle_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bg.push(tokio::spawn(self.clone().settler(rx)));
        }
        // Every instance hears of settlements elsewhere: an API-only instance answers waiters.
        if let Some(h) = self.store.listen_for_finished(self.finished.clone()).await {
            bg.push(h);
        }
        if self.settings.workers_enabled {
            let (calls, h) = CallMarks::start(self.store.clone(), self.instance.clone());
            *self.calls.lock().unwrap_or_else(|e| e.into_inner()) = Some(calls);
            bg.push(h);
            self.started.store(true, AtomicOrdering::SeqCst);
            if let Some(h) = self.store.listen_for_tasks(self.wake.clone()).await {
                bg.push(h);
            }
            bg.push(tokio::spawn(self.clone().dispatcher()));
            bg.push(tokio::spawn(self.clone().lease_keeper()));
            bg.push(tokio::spawn(self.clone().reclaimer()));
            tracing::info!(
                concurrency = self.concurrency,
                prefetch = self.settings.prefetch,
                lease_ms = self.settings.lease_ms,
                "task workers started"
            );
        } else {
            tracing::info!("task workers disabled on this instance (JARVIS_WORKERS_ENABLED=false)");
        }
        self.background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(bg);
    }

    // ---- submitting, reading, cancelling ------------------------------------------------

    /// Stores tasks (one transaction). A single task due now, submitted while a worker of this
    /// instance is free, is stored already claimed and starts at once.
    pub async fn submit(
        self: &Arc<Self>,
        tasks: Vec<NewTask>,
    ) -> Result<Vec<Inserted>, StoreError> {
        let now = self.now();
        if tasks.len() == 1
            && self.started.load(AtomicOrdering::Relaxed)
            && !self.stopping()
            && tasks[0].run_at <= now
            && self
                .buffer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
        {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                let out = self
                    .store
                    .insert_tasks(&tasks, Some(self.lease_from(now)))
                    .await?;
                self.trace_submitted(&out);
                if let Some(ins) = out.first() {
                    if ins.created && ins.task.status == TaskStatus::Running {
                        self.hold(std::slice::from_ref(&ins.task));
                        self.spawn_attempt(ins.task.clone(), permit);
                    }
                }
                return Ok(out);
            }
        }
        let out = self.store.insert_tasks(&tasks, None).await?;
        if out.iter().any(|i| i.created) {
            self.wake.notify_one();
        }
        self.trace_submitted(&out);
        Ok(out)
    }

    /// Records one submission marker per correlation ID among the tasks this submission
    /// stored (not those an idempotency key found): a `task` trace event whose detail names
    /// their IDs, which is how the trace API finds a task that has not run yet (`tasks` is not
    /// indexed by correlation ID; see `store::traces`).
    fn trace_submitted(&self, out: &[Inserted]) {
        let Some(tracer) = self.tracer.get() else {
            return;
        };
        let mut groups: Vec<(&str, Vec<serde_json::Value>)> = Vec::new();
        for ins in out.iter().filter(|i| i.created) {
            let corr = ins.task.correlation_id.as_str();
            let id = serde_json::Value::String(ins.task.id.to_string());
            match groups.iter_mut().find(|(c, _)| *c == corr) {
                Some((_, ids)) => ids.push(id),
                None => groups.push((corr, vec![id])),
            }
        }
        for (corr, ids) in groups {
            let n = ids.len();
            let mut e = tracer.event(
                corr,
                crate::trace::TraceKind::Task,
                format!("{n} task(s) submitted"),
            );
            if n == 1 {
                e.task_id = ids[0].as_str().and_then(|s| Uuid::parse_str(s).ok());
            }
            e.detail = serde_json::json!({ crate::store::traces::SUBMITTED_IDS: ids });
            tracer.record(e);
        }
    }

    /// One task.
    pub async fn get(&self, id: Uuid) -> Result<Option<Task>, StoreError> {
        self.store.get_task(id).await
    }

    /// Cancels a task that has not finished; a running attempt on this instance is stopped
    /// (on another instance it stops when that instance next renews its lease). Returns the
    /// task and whether this call cancelled it.
    pub async fn cancel(&self, id: Uuid) -> Result<Option<(Task, bool)>, StoreError> {
        let result = self.store.cancel_task(id, self.now()).await?;
        if let Some((task, true)) = &result {
            if task.notify_done {
                if let Err(e) = self.store.notify_finished(&[id]).await {
                    tracing::warn!(error = %e, "cannot announce a cancellation; waiters poll");
                }
            }
            self.stop_local(id, Stop::Cancelled);
            self.metrics.finished(
                task.domain.as_str(),
                task.action.as_str(),
                TaskStatus::Cancelled,
            );
            let _ = self.finished.send(id);
            let span = task_span(task);
            span.in_scope(|| tracing::info!(task_id = %id, "task cancelled"));
        }
        Ok(result)
    }

    /// Queues a failed or cancelled task again with `extra` more attempts (see
    /// `store::retry`), and wakes this instance's workers for it. Returns the task and whether
    /// this call queued it (`false`: it was not failed or cancelled); `None` when unknown.
    pub async fn retry(&self, id: Uuid, extra: u32) -> Result<Option<(Task, bool)>, StoreError> {
        let result = self.store.retry_task(id, extra, self.now()).await?;
        if let Some((_, true)) = &result {
            self.wake.notify_one();
        }
        Ok(result)
    }

    /// Stops a task this instance holds: a running attempt is told to stop, a buffered task is
    /// dropped from the buffer.
    fn stop_local(&self, id: Uuid, why: Stop) {
        self.stop_claim(id, None, why)
    }

    /// [`TaskQueue::stop_local`], only while the task is held under claim `claim` (when
    /// given): a claim made since is another attempt, not concerned.
    fn stop_claim(&self, id: Uuid, claim: Option<u64>, why: Stop) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if claim.is_some() && held.get(&id).map(|h| h.claim) != claim {
            return;
        }
        match held.get_mut(&id) {
            Some(Held { stop: Some(_), .. }) => {
                if let Some(Held { stop: Some(tx), .. }) = held.remove(&id) {
                    let _ = tx.send(why);
                }
            }
            Some(Held { stop: None, .. }) => {
                held.remove(&id);
                drop(held);
                self.buffer
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|r| r.0.id != id);
            }
            None => {}
        }
    }

    /// Whether a task not yet running cannot start within `within`: it waits for its `runAt`
    /// (a delayed submission, a retry's backoff, an OPEN circuit's next attempt, a recheck for
    /// an agent), and only a claim, which `runAt` holds back, moves that time. A wait for it
    /// would end with nothing changed, so it ends at once instead.
    fn not_before(&self, task: &Task, within: Duration) -> bool {
        matches!(task.status, TaskStatus::Queued | TaskStatus::Waiting)
            && chrono::TimeDelta::from_std(within).is_ok_and(|w| task.run_at > self.now() + w)
    }

    /// Waits (at most `limit`) for a task to finish; returns it as it is then, or at once
    /// when it cannot start before the wait ends.
    pub async fn wait(&self, id: Uuid, limit: Duration) -> Result<Option<Task>, StoreError> {
        let mut rx = self.finished.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let Some(task) = self.store.get_task(id).await? else {
                return Ok(None);
            };
            let now = tokio::time::Instant::now();
            if task.status.is_final() || now >= deadline || self.not_before(&task, deadline - now) {
                return Ok(Some(task));
            }
            // Woken by a finish here or, through the store's notification, on another
            // instance; the poll is only a fallback (a notification lost to a reconnect).
            let poll = tokio::time::Instant::now() + WAIT_POLL;
            let until = poll.min(deadline);
            loop {
                tokio::select! {
                    r = rx.recv() => match r {
                        Ok(done) if done == id => break,
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => {
                            tokio::time::sleep_until(until).await;
                            break;
                        }
                    },
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
        }
    }
}

/// The record of the task's current attempt, as a failure without a reason yet: the caller
/// sets the outcome (`with_failure`, or `success` and what the agent answered).
fn attempt_record(
    task: &Task,
    instance: Option<String>,
    started_at: chrono::DateTime<chrono::Utc>,
    finished_at: chrono::DateTime<chrono::Utc>,
    duration_ms: u64,
) -> ExecutionRecord {
    ExecutionRecord {
        record_id: Uuid::now_v7(),
        task_id: task.id,
        domain: task.domain.to_string(),
        action: task.action.to_string(),
        attempt: task.attempts.max(1),
        parameters: task.parameters.clone(),
        learned_parameters: task.learned_parameters.clone(),
        success: false,
        duration_ms,
        impact_score: None,
        failure_reason: None,
        failure_group: None,
        cost_usd: None,
        correlation_id: Some(task.correlation_id.clone()),
        instance_id: instance,
        started_at,
        finished_at,
        timed_out: false,
        model_call: None,
    }
}

/// The span every line about a task is written in: it carries the submitting request's
/// correlation ID.
pub fn task_span(task: &Task) -> tracing::Span {
    tracing::info_span!(
        "task",
        correlation_id = %task.correlation_id,
        task_id = %task.id,
        domain = %task.domain,
        action = %task.action,
        attempt = task.attempts,
    )
}
