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
//!  reclaimer:    requeues tasks whose holder stopped renewing (the attempt is recorded)
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

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
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
use crate::config::TaskSettings;
use crate::history::{ExecutionRecord, Recorder};
use crate::store::{self, Inserted, Lease, ReclaimOutcome, Settlement, Store, StoreError};

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
}

/// A settlement on its way to the store, with what to do once it is applied.
struct Settle {
    settlement: Settlement,
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
}

/// The task queue of one instance. Cheap to share (`Arc`).
pub struct TaskQueue {
    store: Arc<dyn Store>,
    breakers: Arc<BreakerRegistry>,
    builtins: BuiltinAgents,
    http: HttpAgents,
    recorder: Recorder,
    metrics: Arc<TaskMetrics>,
    settings: TaskSettings,
    concurrency: u32,
    instance: String,
    slots: Arc<Semaphore>,
    wake: Arc<Notify>,
    finished: broadcast::Sender<Uuid>,
    held: Mutex<HashMap<Uuid, Held>>,
    buffer: Mutex<BinaryHeap<Ready>>,
    settle_tx: mpsc::UnboundedSender<SettleMsg>,
    settle_rx: Mutex<Option<mpsc::UnboundedReceiver<SettleMsg>>>,
    running: AtomicUsize,
    started: AtomicBool,
    stopping: watch::Sender<bool>,
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    calls: Mutex<Option<CallMarks>>,
    /// When a store call of this instance last failed: a holder cut off from the store could
    /// not renew its leases either, so the reclaimer waits a whole lease after that.
    store_trouble: Mutex<Option<Instant>>,
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
            recorder: parts.recorder,
            metrics: parts.metrics,
            settings: parts.settings,
            concurrency: parts.concurrency.max(1),
            instance: parts.instance,
            slots: Arc::new(Semaphore::new(parts.concurrency.max(1) as usize)),
            wake: Arc::new(Notify::new()),
            finished,
            held: Mutex::new(HashMap::new()),
            buffer: Mutex::new(BinaryHeap::new()),
            settle_tx,
            settle_rx: Mutex::new(Some(settle_rx)),
            running: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            stopping,
            background: Mutex::new(Vec::new()),
            calls: Mutex::new(None),
            store_trouble: Mutex::new(None),
        })
    }

    /// The recorder execution records go to.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The task metrics.
    pub fn metrics(&self) -> &Arc<TaskMetrics> {
        &self.metrics
    }

    /// Attempts running on this instance now.
    pub fn running(&self) -> usize {
        self.running.load(AtomicOrdering::Relaxed)
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
        *self.store_trouble.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether a store call failed within the last lease.
    fn store_troubled_recently(&self) -> bool {
        self.store_trouble
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < self.lease())
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
        let now = store::now();
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
                if let Some(ins) = out.first() {
                    if ins.created && ins.task.status == TaskStatus::Running {
                        self.held
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(ins.task.id, Held { stop: None });
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
        Ok(out)
    }

    /// One task.
    pub async fn get(&self, id: Uuid) -> Result<Option<Task>, StoreError> {
        self.store.get_task(id).await
    }

    /// Cancels a task that has not finished; a running attempt on this instance is stopped
    /// (on another instance it stops when that instance next renews its lease). Returns the
    /// task and whether this call cancelled it.
    pub async fn cancel(&self, id: Uuid) -> Result<Option<(Task, bool)>, StoreError> {
        let result = self.store.cancel_task(id, store::now()).await?;
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

    /// Stops a task this instance holds: a running attempt is told to stop, a buffered task is
    /// dropped from the buffer.
    fn stop_local(&self, id: Uuid, why: Stop) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get_mut(&id) {
            Some(Held { stop: Some(_) }) => {
                if let Some(Held { stop: Some(tx) }) = held.remove(&id) {
                    let _ = tx.send(why);
                }
            }
            Some(Held { stop: None }) => {
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

    /// Waits (at most `limit`) for a task to finish; returns it as it is then.
    pub async fn wait(&self, id: Uuid, limit: Duration) -> Result<Option<Task>, StoreError> {
        let mut rx = self.finished.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let Some(task) = self.store.get_task(id).await? else {
                return Ok(None);
            };
            if task.status.is_final() || tokio::time::Instant::now() >= deadline {
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

    // ---- the workers ----------------------------------------------------------------------

    /// Registers the stop channel of an attempt about to start.
    fn arm(&self, id: Uuid) -> oneshot::Receiver<Stop> {
        let (tx, rx) = oneshot::channel();
        if let Some(h) = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&id)
        {
            h.stop = Some(tx);
        }
        rx
    }

    /// The next buffered task for a worker that just finished one, unless the instance is
    /// stopping. Wakes the dispatcher when the buffer runs low, so that it claims the next
    /// batch while the workers keep draining what is left.
    fn next_buffered(&self) -> Option<Task> {
        if self.stopping() {
            return None;
        }
        let (next, left) = {
            let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            let next = buffer.pop().map(|r| r.0);
            (next, buffer.len())
        };
        if next.is_some() && left <= self.settings.prefetch as usize / 2 {
            self.wake.notify_one();
        }
        next
    }

    /// Starts a worker on `task`. The worker keeps its slot and takes the next buffered task
    /// itself when it is done, so a backlog drains without a round trip through the
    /// dispatcher (which may be waiting for its next claim meanwhile).
    fn spawn_attempt(self: &Arc<Self>, task: Task, permit: OwnedSemaphorePermit) {
        let rx = self.arm(task.id);
        self.running.fetch_add(1, AtomicOrdering::Relaxed);
        let queue = self.clone();
        tokio::spawn(async move {
            let mut current = Some((task, rx));
            while let Some((task, rx)) = current.take() {
                let span = task_span(&task);
                queue.attempt(task, rx).instrument(span).await;
                if let Some(next) = queue.next_buffered() {
                    let rx = queue.arm(next.id);
                    current = Some((next, rx));
                }
            }
            queue.running.fetch_sub(1, AtomicOrdering::Relaxed);
            drop(permit);
            queue.wake.notify_one();
        });
    }

    /// Starts buffered tasks while workers are free.
    fn start_buffered(self: &Arc<Self>) {
        loop {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                return;
            };
            let next = self.buffer.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match next {
                Some(Ready(task)) => self.spawn_attempt(task, permit),
                None => return,
            }
        }
    }

    async fn dispatcher(self: Arc<Self>) {
        let poll = Duration::from_millis(self.settings.poll_ms);
        let prefetch = self.settings.prefetch as usize;
        let mut stop = self.stopping.subscribe();
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            self.start_buffered();
            let buffered = self.buffer.lock().unwrap_or_else(|e| e.into_inner()).len();
            let free = self.slots.available_permits();
            let want = (free + prefetch).saturating_sub(buffered);
            let mut wait = poll;
            if want > 0 && buffered <= prefetch / 2 {
                let now = store::now();
                match self
                    .store
                    .claim_tasks(self.lease_from(now), want as u32)
                    .await
                {
                    Ok(tasks) => {
                        failures = 0;
                        let n = tasks.len();
                        if n > 0 {
                            {
                                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                                for t in &tasks {
                                    held.insert(t.id, Held { stop: None });
                                }
                            }
                            self.buffer
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .extend(tasks.into_iter().map(Ready));
                            self.start_buffered();
                        }
                        if n == want {
                            continue;
                        }
                        // Drained for now: sleep until the next delayed task is due.
                        match self.store.next_run_at().await {
                            Ok(Some(next)) => {
                                let until = (next - store::now())
                                    .to_std()
                                    .unwrap_or(Duration::ZERO)
                                    .max(Duration::from_millis(5));
                                wait = wait.min(until);
                            }
                            Ok(None) => {}
                            Err(_) => {}
                        }
                    }
                    Err(e) => {
                        self.store_failed();
                        failures += 1;
                        if failures == 1 || failures % 30 == 0 {
                            tracing::warn!(error = %e, failures, "cannot claim tasks; retrying");
                        }
                        wait = Duration::from_millis((100 * u64::from(failures)).min(2_000));
                    }
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn attempt(self: &Arc<Self>, task: Task, mut stop: oneshot::Receiver<Stop>) {
        let started_at = store::now();
        let clock = Instant::now();
        tracing::info!(priority = task.priority, "executing task");
        let call = AgentCall {
            task_id: task.id,
            domain: task.domain.to_string(),
            action: task.action.to_string(),
            parameters: task.parameters.clone(),
            attempt: task.attempts,
            correlation_id: task.correlation_id.clone(),
        };
        enum Target {
            Builtin(Arc<dyn BuiltinAgent>),
            Http(AgentSpec),
        }
        let target = match self.builtins.get(task.domain.as_str()) {
            Some(b) => Target::Builtin(b),
            None => match self
                .http
                .lookup(self.store.as_ref(), task.domain.as_str())
                .await
            {
                Ok(Some(spec)) => Target::Http(spec),
                Ok(None) => {
                    let reason = format!("no agent is registered for domain {}", task.domain);
                    let answer = AgentAnswer::Failure { reason };
                    return self.finish(&task, started_at, clock, answer, false);
                }
                Err(e) => {
                    // Nothing was called: the attempt is not spent.
                    self.store_failed();
                    let reason = format!("cannot look up the agent of {}: {e}", task.domain);
                    return self.give_back(&task, reason);
                }
            },
        };
        let admission = match self.breakers.acquire(&task.domain) {
            Ok(a) => a,
            Err(rejected) => {
                let delay = rejected
                    .retry_after()
                    .unwrap_or(Duration::from_millis(100))
                    .max(Duration::from_millis(10));
                tracing::info!(
                    retry_in_ms = delay.as_millis() as u64,
                    "circuit breaker of the agent is OPEN; task waits without spending an attempt"
                );
                self.metrics
                    .waiting(task.domain.as_str(), task.action.as_str());
                self.settle(
                    &task,
                    Settlement {
                        id: task.id,
                        attempt: task.attempts,
                        status: TaskStatus::Waiting,
                        attempts_delta: -1,
                        run_at: Some(
                            store::now()
                                + chrono::TimeDelta::from_std(delay)
                                    .unwrap_or(chrono::TimeDelta::seconds(1)),
                        ),
                        result: None,
                        error: Some(format!(
                            "{rejected}: waiting for the circuit of {} to close",
                            task.domain
                        )),
                        finished_at: None,
                        duration_ms: None,
                    },
                );
                return;
            }
        };
        let timeout = Duration::from_millis(task.timeout_ms.unwrap_or(match &target {
            Target::Http(spec) => spec.timeout_ms,
            Target::Builtin(_) => DEFAULT_TIMEOUT_MS,
        }));
        let call_started = Instant::now();
        let work = async {
            match &target {
                Target::Builtin(agent) => {
                    match tokio::time::timeout(timeout, agent.run(&call)).await {
                        Ok(answer) => (answer, Outcome::Success),
                        Err(_) => (
                            AgentAnswer::Failure {
                                reason: format!("agent timed out after {} ms", timeout.as_millis()),
                            },
                            Outcome::Timeout,
                        ),
                    }
                }
                Target::Http(spec) => {
                    tracing::info!(url = %spec.url, timeout_ms = timeout.as_millis() as u64, "calling agent");
                    // The attempt is spent once the agent has the request: then it is marked
                    // called (see `tasks::called`), in the background while the agent works,
                    // unless it is answered first. Dying before the mark is stored gives the
                    // attempt back; after it, the attempt is recorded.
                    let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let (id, attempt) = (task.id, task.attempts);
                    let on_sent = calls.clone().map(|calls| {
                        Box::new(move || calls.mark(id, attempt)) as Box<dyn FnOnce() + Send>
                    });
                    let r = self.http.call(spec, &call, timeout, on_sent).await;
                    if let Some(calls) = &calls {
                        calls.answered(id, attempt);
                    }
                    (r.answer, r.outcome)
                }
            }
        };
        let stopped = async {
            match (&mut stop).await {
                Ok(why) => why,
                Err(_) => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            r = work => Ok(r),
            why = stopped => Err(why),
        };
        let elapsed = call_started.elapsed();
        self.breakers
            .metrics()
            .observe(task.domain.as_str(), elapsed);
        match result {
            Ok((answer, outcome)) => {
                let reason = match &answer {
                    AgentAnswer::Failure { reason } => reason.clone(),
                    AgentAnswer::Success { .. } => String::new(),
                };
                tracing::info!(
                    duration_ms = elapsed.as_millis() as u64,
                    outcome = %outcome,
                    success = matches!(answer, AgentAnswer::Success { .. }),
                    "agent answered"
                );
                admission.record(outcome, reason);
                let timed_out = outcome == Outcome::Timeout;
                self.finish(&task, started_at, clock, answer, timed_out);
            }
            Err(why) => {
                admission.record(Outcome::Cancelled, "attempt stopped");
                self.interrupted(&task, started_at, clock, why);
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_base_ms as f64
            * 2f64.powi(attempt.saturating_sub(1).min(40) as i32);
        let capped = base.min(self.settings.retry_max_ms as f64).max(1.0);
        // Equal jitter: half fixed (the backoff grows), half random (retries spread out).
        let half = capped / 2.0;
        let jitter = rand::rng().random_range(0.0..=half);
        Duration::from_millis((half + jitter).round() as u64)
    }

    fn record_of(
        &self,
        task: &Task,
        started_at: chrono::DateTime<chrono::Utc>,
        clock: Instant,
    ) -> ExecutionRecord {
        attempt_record(
            task,
            Some(self.instance.clone()),
            started_at,
            store::now(),
            clock.elapsed().as_millis() as u64,
        )
    }

    /// Records the attempt and settles the task after an agent answered (or could not be
    /// reached).
    fn finish(
        self: &Arc<Self>,
        task: &Task,
        started_at: chrono::DateTime<chrono::Utc>,
        clock: Instant,
        answer: AgentAnswer,
        timed_out: bool,
    ) {
        let mut record = self.record_of(task, started_at, clock);
        record.timed_out = timed_out;
        let duration_ms = record.duration_ms;
        let domain = task.domain.as_str();
        let action = task.action.as_str();
        let settlement = match answer {
            AgentAnswer::Success {
                impact_score,
                output,
                cost_usd,
            } => {
                record.success = true;
                record.impact_score = impact_score;
                record.cost_usd = cost_usd;
                tracing::info!(
                    duration_ms,
                    status = "succeeded",
                    attempts = task.attempts,
                    "task completed"
                );
                Settlement {
                    id: task.id,
                    attempt: task.attempts,
                    status: TaskStatus::Succeeded,
                    attempts_delta: 0,
                    run_at: None,
                    result: Some(output.unwrap_or(serde_json::Value::Null)),
                    error: None,
                    finished_at: Some(record.finished_at),
                    duration_ms: Some(duration_ms),
                }
            }
            AgentAnswer::Failure { reason } => {
                record = record.with_failure(&reason);
                if task.attempts < task.max_attempts {
                    let delay = self.backoff(task.attempts);
                    tracing::warn!(
                        duration_ms,
                        error = %reason,
                        attempts = task.attempts,
                        max_attempts = task.max_attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        "task attempt failed; retrying"
                    );
                    Settlement {
                        id: task.id,
                        attempt: task.attempts,
                        status: TaskStatus::Queued,
                        attempts_delta: 0,
                        run_at: Some(
                            record.finished_at
                                + chrono::TimeDelta::from_std(delay)
                                    .unwrap_or(chrono::TimeDelta::seconds(1)),
                        ),
                        result: None,
                        error: Some(reason),
                        finished_at: None,
                        duration_ms: Some(duration_ms),
                    }
                } else {
                    tracing::warn!(
                        duration_ms,
                        error = %reason,
                        status = "failed",
                        attempts = task.attempts,
                        "task completed"
                    );
                    Settlement {
                        id: task.id,
                        attempt: task.attempts,
                        status: TaskStatus::Failed,
                        attempts_delta: 0,
                        run_at: None,
                        result: None,
                        error: Some(reason),
                        finished_at: Some(record.finished_at),
                        duration_ms: Some(duration_ms),
                    }
                }
            }
        };
        self.metrics
            .attempt(domain, action, record.success, clock.elapsed());
        self.metrics.cost(record.cost_usd);
        self.recorder.record(record);
        self.settle(task, settlement);
    }

    /// Records an attempt stopped by cancellation, a lost lease or shutdown.
    fn interrupted(
        self: &Arc<Self>,
        task: &Task,
        started_at: chrono::DateTime<chrono::Utc>,
        clock: Instant,
        why: Stop,
    ) {
        let reason = match why {
            Stop::Cancelled => format!("attempt {} stopped: the task was cancelled", task.attempts),
            Stop::LeaseLost => {
                tracing::warn!("attempt stopped: another instance reclaimed the task");
                self.held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&task.id);
                return;
            }
            Stop::Shutdown => format!(
                "attempt {} interrupted: instance {} shut down",
                task.attempts, self.instance
            ),
        };
        let record = self
            .record_of(task, started_at, clock)
            .with_failure(&reason);
        tracing::warn!(duration_ms = record.duration_ms, error = %reason, "task attempt stopped");
        self.recorder.record(record);
        match why {
            Stop::Cancelled | Stop::LeaseLost => {
                self.held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&task.id);
            }
            Stop::Shutdown => {
                let last = task.attempts >= task.max_attempts;
                let now = store::now();
                self.settle(
                    task,
                    Settlement {
                        id: task.id,
                        attempt: task.attempts,
                        status: if last {
                            TaskStatus::Failed
                        } else {
                            TaskStatus::Queued
                        },
                        attempts_delta: 0,
                        run_at: Some(now),
                        result: None,
                        error: Some(reason),
                        finished_at: last.then_some(now),
                        duration_ms: None,
                    },
                );
            }
        }
    }

    /// Gives an attempt whose agent was not called back (not spent, nothing recorded): the task
    /// runs again after [`GIVE_BACK_DELAY`].
    fn give_back(self: &Arc<Self>, task: &Task, reason: String) {
        tracing::warn!(error = %reason, "attempt given back; the agent was not called");
        self.settle(
            task,
            Settlement {
                id: task.id,
                attempt: task.attempts,
                status: TaskStatus::Queued,
                attempts_delta: -1,
                run_at: Some(
                    store::now()
                        + chrono::TimeDelta::from_std(GIVE_BACK_DELAY)
                            .unwrap_or(chrono::TimeDelta::seconds(1)),
                ),
                result: None,
                error: Some(reason),
                finished_at: None,
                duration_ms: None,
            },
        );
    }

    fn settle(&self, task: &Task, settlement: Settlement) {
        let msg = SettleMsg::Settle(Box::new(Settle {
            settlement,
            domain: task.domain.to_string(),
            action: task.action.to_string(),
        }));
        if self.settle_tx.send(msg).is_err() {
            tracing::error!("task settled after the settler stopped; its lease will expire");
        }
    }

    /// Applies settlements in batches: whatever accumulated while the previous batch was
    /// written goes in the next one.
    async fn settler(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<SettleMsg>) {
        while let Some(first) = rx.recv().await {
            let mut batch: Vec<Settle> = Vec::new();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    SettleMsg::Settle(s) => batch.push(*s),
                    SettleMsg::Flush(f) => flushes.push(f),
                }
                if batch.len() >= SETTLE_BATCH {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if !batch.is_empty() {
                self.apply(batch).await;
            }
            for f in flushes {
                let _ = f.send(());
            }
        }
    }

    async fn apply(&self, batch: Vec<Settle>) {
        let settlements: Vec<Settlement> = batch.iter().map(|s| s.settlement.clone()).collect();
        // Records first: every attempt of this batch queued its record before its settlement,
        // so after this flush they are in the store (or the local spool). A settled task whose
        // record died with the process would be an attempt without a record.
        self.recorder.flush().await;
        // Retried until the store takes it: the tasks stay held meanwhile, so the lease keeper
        // renews them as soon as the store is back and nobody else runs them again. (Only
        // shutdown, after its own bounded wait, abandons a settlement: the leases then expire
        // and the reclaimer settles each task from its record.)
        let mut delay = Duration::from_millis(50);
        let mut failures = 0u32;
        loop {
            match self
                .store
                .settle_tasks(&self.instance, &settlements, store::now())
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    self.store_failed();
                    failures += 1;
                    if failures == 1 || failures % 20 == 0 {
                        tracing::warn!(error = %e, tasks = settlements.len(), failures, "cannot settle tasks yet; retrying");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            for s in &batch {
                held.remove(&s.settlement.id);
            }
        }
        let mut retry_soon = false;
        for s in &batch {
            let st = &s.settlement;
            if st.status.is_final() {
                self.metrics.finished(&s.domain, &s.action, st.status);
                let _ = self.finished.send(st.id);
            } else {
                retry_soon = true;
            }
        }
        if retry_soon {
            // Retries and waits are due later: let the dispatcher recompute its sleep.
            self.wake.notify_one();
        }
    }

    /// Renews the lease of every held task, every third of the lease, in one statement; stops
    /// what is no longer held (cancelled elsewhere, or reclaimed after a stall).
    async fn lease_keeper(self: Arc<Self>) {
        let every = self.lease() / 3;
        let mut stop = self.stopping.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {
                    if *stop.borrow() {
                        // Keep renewing while in-flight attempts finish after a shutdown signal.
                    }
                }
            }
            let ids: Vec<Uuid> = self
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .copied()
                .collect();
            if ids.is_empty() {
                if *stop.borrow() && self.running() == 0 {
                    return;
                }
                continue;
            }
            let until =
                store::now() + chrono::TimeDelta::milliseconds(self.settings.lease_ms as i64);
            match self.store.extend_leases(&self.instance, &ids, until).await {
                Ok(kept) => {
                    let kept: HashSet<Uuid> = kept.into_iter().collect();
                    for id in ids.into_iter().filter(|id| !kept.contains(id)) {
                        // Rare: cancelled elsewhere (the attempt is recorded as stopped), or
                        // reclaimed (the reclaimer dealt with the attempt).
                        let why = match self.store.get_task(id).await {
                            Ok(Some(t)) if t.status == TaskStatus::Cancelled => Stop::Cancelled,
                            _ => Stop::LeaseLost,
                        };
                        self.stop_local(id, why);
                    }
                }
                Err(e) => {
                    self.store_failed();
                    tracing::warn!(error = %e, tasks = ids.len(), "cannot renew task leases")
                }
            }
        }
    }

    /// Takes back tasks whose holder stopped renewing its lease (see [`ReclaimOutcome`]):
    /// records only an attempt cut off mid-call. Waits a whole lease after any store trouble
    /// of its own (and the store waits as long after its own restart): a holder that is alive
    /// but was cut off from the store renews its leases as soon as it can, and must not lose
    /// them for that.
    async fn reclaimer(self: Arc<Self>) {
        let every = (self.lease() / 2).max(Duration::from_millis(100));
        let mut stop = self.stopping.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if self.store_troubled_recently() {
                continue;
            }
            let now = store::now();
            match self
                .store
                .reclaim_expired(now, RECLAIM_BATCH, self.lease())
                .await
            {
                Ok(list) => {
                    let any = !list.is_empty();
                    let mut announce = Vec::new();
                    for r in list {
                        let task = &r.task;
                        let lost_by = r.lost_by.as_deref().unwrap_or("?");
                        match r.outcome {
                            ReclaimOutcome::Interrupted => {
                                let started = r.attempt_started_at.unwrap_or(now);
                                let reason =
                                    task.error.clone().unwrap_or_else(|| "lease expired".into());
                                let duration = (now - started).num_milliseconds().max(0) as u64;
                                let record =
                                    attempt_record(task, r.lost_by.clone(), started, now, duration)
                                        .with_failure(&reason);
                                task_span(task).in_scope(|| {
                                    tracing::warn!(
                                        lost_by,
                                        status = %task.status,
                                        attempts = task.attempts,
                                        "reclaimed a task whose worker stopped renewing its lease mid-call"
                                    )
                                });
                                self.recorder.record(record);
                            }
                            ReclaimOutcome::Recorded => task_span(task).in_scope(|| {
                                tracing::warn!(
                                    lost_by,
                                    status = %task.status,
                                    attempts = task.attempts,
                                    "reclaimed a task whose worker recorded its attempt but did not settle it; settled as recorded"
                                )
                            }),
                            ReclaimOutcome::GivenBack => task_span(task).in_scope(|| {
                                tracing::warn!(
                                    lost_by,
                                    attempts = task.attempts,
                                    "reclaimed a task whose agent was never called; attempt given back"
                                )
                            }),
                        }
                        if task.status.is_final() {
                            self.metrics.finished(
                                task.domain.as_str(),
                                task.action.as_str(),
                                task.status,
                            );
                            let _ = self.finished.send(task.id);
                            if task.notify_done {
                                announce.push(task.id);
                            }
                        }
                    }
                    if !announce.is_empty() {
                        if let Err(e) = self.store.notify_finished(&announce).await {
                            tracing::warn!(error = %e, "cannot announce reclaimed tasks; waiters poll");
                        }
                    }
                    if any {
                        self.wake.notify_one();
                    }
                }
                Err(e) => {
                    self.store_failed();
                    tracing::warn!(error = %e, "cannot reclaim expired task leases")
                }
            }
        }
    }

    // ---- shutdown -----------------------------------------------------------------------

    /// Stops claiming, releases buffered tasks, lets running attempts finish within `grace`
    /// (then stops and requeues them, the interrupted attempt counted), and writes every
    /// settlement. The recorder is flushed by its owner afterwards.
    pub async fn shutdown(self: &Arc<Self>, grace: Duration) {
        let _ = self.stopping.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        let buffered: Vec<Task> = self
            .buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|r| r.0)
            .collect();
        if !buffered.is_empty() {
            tracing::info!(
                tasks = buffered.len(),
                "releasing claimed tasks that did not start"
            );
        }
        for t in &buffered {
            self.settle(
                t,
                Settlement {
                    id: t.id,
                    attempt: t.attempts,
                    status: if t.status == TaskStatus::Waiting {
                        TaskStatus::Waiting
                    } else {
                        TaskStatus::Queued
                    },
                    attempts_delta: -1,
                    run_at: None,
                    result: None,
                    error: t.error.clone(),
                    finished_at: None,
                    duration_ms: None,
                },
            );
        }
        if self.running() > 0 {
            tracing::info!(
                running = self.running(),
                "waiting for running tasks to finish"
            );
        }
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        if self.running() > 0 {
            tracing::warn!(
                running = self.running(),
                "grace period over; interrupting running tasks"
            );
            let ids: Vec<Uuid> = self
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .copied()
                .collect();
            for id in ids {
                self.stop_local(id, Stop::Shutdown);
            }
            let hard = tokio::time::Instant::now() + Duration::from_secs(2);
            while self.running() > 0 && tokio::time::Instant::now() < hard {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let (tx, rx) = oneshot::channel();
        if self.settle_tx.send(SettleMsg::Flush(tx)).is_ok() {
            let _ = tokio::time::timeout(self.lease() + Duration::from_secs(1), rx).await;
        }
        for h in self
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            h.abort();
        }
        tracing::info!("task workers stopped");
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
