//! The scheduler of one instance: sleeps until the earliest next tick of any schedule (or until
//! a schedule changes through this instance's API, or at most [`RELOAD`], to see changes made
//! through other instances), then submits the due ticks.
//!
//! ```text
//!  due schedule (next_run_at = T ≤ now) ─► plan (missed-tick policy) ─► ticks to submit
//!     ─► TaskQueue::submit, idempotency key schedule:<name>:<tick>  (a tick already submitted
//!        by another instance, or before a crash, returns its existing task)
//!     ─► UPDATE schedules SET next_run_at = <next> … WHERE name = $1 AND next_run_at = T
//!        (compare and swap: the other instances that saw T find nothing to do)
//! ```
//!
//! Every instance runs one (with or without workers): a tick needs a store round trip or
//! three, whichever instance makes them, and any surviving instance keeps schedules ticking.
//! Submitting before claiming is what makes a tick exactly one task: a crash between the two
//! leaves the tick due, and whoever takes it again gets the same task back; two instances
//! racing for a tick submit the same key, and the store keeps one task.
//!
//! Each pass over a due schedule runs under its own correlation ID (`sched-…`), which its log
//! lines carry and which the tasks it creates keep. Metrics:
//! `jarvis_schedule_ticks_total{schedule, result}` (`submitted`: a task was created;
//! `duplicate`: the tick's task existed already; `missed`: skipped by the missed-tick policy;
//! `failed`: the tick could not be submitted and stays due).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use super::spec::Schedule;
use crate::correlation::CorrelationId;
use crate::metrics::Metrics;
use crate::store::{Advance, ScheduleRow, Store, StoreError};
use crate::tasks::TaskQueue;

/// The longest sleep between looks at the schedules (changes made through another instance
/// are seen within this).
pub const RELOAD: Duration = Duration::from_secs(5);
/// Due schedules handled per pass.
const BATCH: u32 = 100;
/// Pause after a store error.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The metric of ticks.
pub const TICKS_METRIC: &str = "jarvis_schedule_ticks_total";

/// The scheduler of one instance. Cheap to share (`Arc`).
pub struct Scheduler {
    store: Arc<dyn Store>,
    tasks: Arc<TaskQueue>,
    learner: Arc<crate::learning::Learner>,
    agent_defaults: Arc<crate::agents::AgentDefaults>,
    metrics: Arc<Metrics>,
    wake: Notify,
}

impl Scheduler {
    /// A scheduler submitting through `tasks`.
    pub fn new(
        store: Arc<dyn Store>,
        tasks: Arc<TaskQueue>,
        learner: Arc<crate::learning::Learner>,
        agent_defaults: Arc<crate::agents::AgentDefaults>,
        metrics: Arc<Metrics>,
    ) -> Arc<Scheduler> {
        metrics.describe(
            TICKS_METRIC,
            None,
            "Schedule ticks by outcome: submitted, duplicate (submitted before), missed \
             (missed-tick policy), failed (stays due)",
        );
        Arc::new(Scheduler {
            store,
            tasks,
            learner,
            agent_defaults,
            metrics,
            wake: Notify::new(),
        })
    }

    /// A schedule changed through this instance: look again now.
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// Runs until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let span =
            tracing::info_span!("scheduler", correlation_id = %CorrelationId::generate("sched"));
        async move {
            tracing::debug!("scheduler started");
            while !*stop.borrow() {
                let wait = match self.pass().await {
                    Ok(next) => until(next).min(RELOAD),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the schedules; retrying in 1 s");
                        RETRY_AFTER
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Submits every due tick; returns the earliest next tick.
    pub async fn pass(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        loop {
            let now = crate::clock::now();
            let due = self.store.due_schedules(now, BATCH).await?;
            let n = due.len();
            let mut failed = false;
            for row in due {
                failed |= !self.fire(row, now).await;
            }
            // A full batch: more may be due. After a failure, the earliest tick is the one
            // that failed; wait a little instead of trying again at once.
            if failed {
                return Ok(Some(
                    now + chrono::TimeDelta::from_std(RETRY_AFTER).unwrap_or_default(),
                ));
            }
            if (n as u32) < BATCH {
                return self.store.earliest_schedule_tick().await;
            }
        }
    }

    fn count(&self, schedule: &str, result: &'static str, n: u64) {
        if n > 0 {
            self.metrics
                .counter(TICKS_METRIC, &[("schedule", schedule), ("result", result)])
                .increment(n);
        }
    }

    /// Handles one due schedule; false when its tick could not be submitted (it stays due).
    async fn fire(&self, row: ScheduleRow, now: DateTime<Utc>) -> bool {
        let name = row.name.clone();
        let Some(due) = row.next_run_at else {
            return true;
        };
        let cid = CorrelationId::generate("sched");
        let span = tracing::info_span!("schedule_tick", correlation_id = %cid, schedule = %name);
        async {
            let schedule = match Schedule::from_row(row) {
                Ok(s) => s,
                Err(e) => {
                    // A stored definition that no longer parses (a time zone gone from the
                    // database, say): stop ticking it rather than fail every pass.
                    tracing::error!(error = %e, "schedule cannot be read; it stops ticking until replaced");
                    let _ = self
                        .store
                        .advance_schedule(Advance { name: &name, due, next: None, last: None })
                        .await;
                    return true;
                }
            };
            let plan = schedule.spec.plan(due, now);
            // Without useLearned, the tasks follow their domain's agent (as submissions do).
            let use_learned = match schedule.spec.use_learned() {
                Some(flag) => flag,
                None => match schedule.spec.task.domain.as_deref() {
                    Some(domain) => {
                        match self.agent_defaults.use_learned(self.store.as_ref(), domain).await {
                            Ok(flag) => flag,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot read the domain's agent; tick stays due");
                                self.count(&name, "failed", plan.run.len() as u64);
                                return false;
                            }
                        }
                    }
                    None => false,
                },
            };
            let mut new = Vec::with_capacity(plan.run.len());
            for tick in &plan.run {
                match schedule.spec.new_task(*tick, cid.as_str(), now) {
                    Ok(mut task) => {
                        if use_learned {
                            if let Err(e) = self.learner.apply(&mut task).await {
                                tracing::warn!(error = %e, "learned parameters unavailable; tick stays due");
                                self.count(&name, "failed", 1);
                                return false;
                            }
                        }
                        new.push(task);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the schedule's task is not valid; tick skipped");
                    }
                }
            }
            let inserted = if new.is_empty() {
                Vec::new()
            } else {
                match self.tasks.submit(new).await {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot submit the tick's task; it stays due");
                        self.count(&name, "failed", plan.run.len() as u64);
                        return false;
                    }
                }
            };
            let created = inserted.iter().filter(|i| i.created).count() as u64;
            let last_id = inserted.last().map(|i| i.task.id.to_string());
            let last = plan.run.last().copied().zip(last_id.as_deref());
            let claimed = match self
                .store
                .advance_schedule(Advance { name: &name, due, next: plan.next, last })
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    // The tasks exist; whoever takes the tick again gets them back.
                    tracing::warn!(error = %e, "cannot move the schedule past its tick; it stays due");
                    return false;
                }
            };
            self.count(&name, "submitted", created);
            self.count(&name, "duplicate", inserted.len() as u64 - created);
            if claimed {
                self.count(&name, "missed", plan.missed);
            }
            let task_ids: Vec<String> = inserted.iter().map(|i| i.task.id.to_string()).collect();
            if created > 0 || plan.missed > 0 {
                tracing::info!(
                    due = %iso(Some(due)),
                    submitted = created,
                    duplicate = inserted.len() as u64 - created,
                    missed = plan.missed,
                    claimed,
                    tasks = %task_ids.join(","),
                    next_run_at = %iso(plan.next),
                    "schedule ticked"
                );
            } else {
                tracing::debug!(due = %iso(Some(due)), claimed, "tick already taken by another instance");
            }
            true
        }
        .instrument(span)
        .await
    }
}

/// A time as the API shows it (ISO 8601 UTC, ms), empty for none.
pub(crate) fn iso(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// How long until `t` (zero when it has passed; [`RELOAD`] when there is none).
fn until(t: Option<DateTime<Utc>>) -> Duration {
    match t {
        Some(t) => (t - crate::clock::now()).to_std().unwrap_or(Duration::ZERO),
        None => RELOAD,
    }
}
