//! Task metrics: completions by status, failure rate, attempt durations, queue depth.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Histogram};

use super::model::TaskStatus;
use crate::metrics::Metrics;

/// Names of the task metrics.
pub mod names {
    /// Counter: tasks that reached a final status, by domain, action and status.
    pub const COMPLETED: &str = "jarvis_tasks_completed_total";
    /// Counter: attempts by domain, action and outcome (succeeded, failed, waiting).
    pub const ATTEMPTS: &str = "jarvis_task_attempts_total";
    /// Gauge: failed ÷ (succeeded + failed) of finished tasks since start, per domain/action.
    pub const FAILURE_RATE: &str = "jarvis_task_failure_rate";
    /// Histogram: attempt duration, seconds.
    pub const DURATION: &str = "jarvis_task_duration_seconds";
    /// Gauge: tasks queued or waiting in the store.
    pub const QUEUE_DEPTH: &str = "jarvis_task_queue_depth";
    /// Gauge: attempts running on this instance.
    pub const RUNNING: &str = "jarvis_tasks_running";
}

struct Series {
    succeeded: Counter,
    failed: Counter,
    cancelled: Counter,
    attempt_ok: Counter,
    attempt_failed: Counter,
    attempt_waiting: Counter,
    duration: Histogram,
    finished_ok: u64,
    finished_failed: u64,
}

/// The task part of an instance's metrics. Handles are cached per domain/action so that a
/// completion costs a map lookup, not a registration.
pub struct TaskMetrics {
    metrics: Arc<Metrics>,
    series: Mutex<HashMap<(String, String), Series>>,
    overall: Mutex<(u64, u64)>,
    /// Running totals for the CloudWatch EMF lines (see `crate::emf`).
    attempts: AtomicU64,
    duration_ms: AtomicU64,
    cost_micro_usd: AtomicU64,
}

/// Totals since start, for the EMF metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct TaskTotals {
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Tasks that failed for good.
    pub failed: u64,
    /// Attempts run.
    pub attempts: u64,
    /// Summed attempt duration, ms.
    pub duration_ms: u64,
    /// Summed reported cost, micro-USD.
    pub cost_micro_usd: u64,
}

impl TaskMetrics {
    /// Registers the descriptions on `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> TaskMetrics {
        metrics.describe(
            names::COMPLETED,
            None,
            "Tasks that reached a final status (succeeded, failed, cancelled).",
        );
        metrics.describe(
            names::ATTEMPTS,
            None,
            "Task attempts by outcome (succeeded, failed, waiting for an open circuit).",
        );
        metrics.describe(
            names::FAILURE_RATE,
            None,
            "Failed share of finished tasks since start (per domain/action, and overall without labels).",
        );
        metrics.describe(
            names::DURATION,
            Some(metrics::Unit::Seconds),
            "Duration of task attempts.",
        );
        metrics.describe(
            names::QUEUE_DEPTH,
            None,
            "Tasks queued or waiting in the store.",
        );
        metrics.describe(
            names::RUNNING,
            None,
            "Task attempts running on this instance.",
        );
        TaskMetrics {
            metrics,
            series: Mutex::new(HashMap::new()),
            overall: Mutex::new((0, 0)),
            attempts: AtomicU64::new(0),
            duration_ms: AtomicU64::new(0),
            cost_micro_usd: AtomicU64::new(0),
        }
    }

    /// Totals since start (for the EMF lines).
    pub fn totals(&self) -> TaskTotals {
        let (succeeded, failed) = *self.overall.lock().unwrap_or_else(|e| e.into_inner());
        TaskTotals {
            succeeded,
            failed,
            attempts: self.attempts.load(Ordering::Relaxed),
            duration_ms: self.duration_ms.load(Ordering::Relaxed),
            cost_micro_usd: self.cost_micro_usd.load(Ordering::Relaxed),
        }
    }

    /// An agent reported what an attempt cost.
    pub fn cost(&self, usd: Option<f64>) {
        if let Some(usd) = usd.filter(|c| c.is_finite() && *c > 0.0) {
            self.cost_micro_usd
                .fetch_add((usd * 1e6).round() as u64, Ordering::Relaxed);
        }
    }

    fn with<R>(&self, domain: &str, action: &str, f: impl FnOnce(&mut Series) -> R) -> R {
        let mut all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let key = (domain.to_string(), action.to_string());
        let m = &self.metrics;
        let s = all.entry(key).or_insert_with(|| {
            let l =
                |status: &'static str| [("domain", domain), ("action", action), ("status", status)];
            let o = |outcome: &'static str| {
                [("domain", domain), ("action", action), ("outcome", outcome)]
            };
            Series {
                succeeded: m.counter(names::COMPLETED, &l("succeeded")),
                failed: m.counter(names::COMPLETED, &l("failed")),
                cancelled: m.counter(names::COMPLETED, &l("cancelled")),
                attempt_ok: m.counter(names::ATTEMPTS, &o("succeeded")),
                attempt_failed: m.counter(names::ATTEMPTS, &o("failed")),
                attempt_waiting: m.counter(names::ATTEMPTS, &o("waiting")),
                duration: m.histogram(names::DURATION, &[("domain", domain), ("action", action)]),
                finished_ok: 0,
                finished_failed: 0,
            }
        });
        f(s)
    }

    /// One attempt ran.
    pub fn attempt(&self, domain: &str, action: &str, success: bool, duration: Duration) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.duration_ms
            .fetch_add(duration.as_millis() as u64, Ordering::Relaxed);
        self.with(domain, action, |s| {
            if success {
                s.attempt_ok.increment(1)
            } else {
                s.attempt_failed.increment(1)
            }
            s.duration.record(duration.as_secs_f64());
        });
    }

    /// An attempt was not made because the agent's circuit is open.
    pub fn waiting(&self, domain: &str, action: &str) {
        self.with(domain, action, |s| s.attempt_waiting.increment(1));
    }

    /// A task reached a final status.
    pub fn finished(&self, domain: &str, action: &str, status: TaskStatus) {
        let rate = self.with(domain, action, |s| {
            match status {
                TaskStatus::Succeeded => {
                    s.succeeded.increment(1);
                    s.finished_ok += 1;
                }
                TaskStatus::Failed => {
                    s.failed.increment(1);
                    s.finished_failed += 1;
                }
                TaskStatus::Cancelled => s.cancelled.increment(1),
                _ => {}
            }
            let n = s.finished_ok + s.finished_failed;
            (n > 0).then(|| s.finished_failed as f64 / n as f64)
        });
        if let Some(rate) = rate {
            self.metrics
                .gauge(
                    names::FAILURE_RATE,
                    &[("domain", domain), ("action", action)],
                )
                .set(rate);
        }
        if matches!(status, TaskStatus::Succeeded | TaskStatus::Failed) {
            let mut o = self.overall.lock().unwrap_or_else(|e| e.into_inner());
            if status == TaskStatus::Succeeded {
                o.0 += 1;
            } else {
                o.1 += 1;
            }
            let rate = o.1 as f64 / (o.0 + o.1) as f64;
            self.metrics.gauge(names::FAILURE_RATE, &[]).set(rate);
        }
    }

    /// Sets the gauges read at scrape time.
    pub fn refresh(&self, queue_depth: Option<u64>, running: usize) {
        if let Some(d) = queue_depth {
            self.metrics.gauge(names::QUEUE_DEPTH, &[]).set(d as f64);
        }
        self.metrics.gauge(names::RUNNING, &[]).set(running as f64);
    }
}
