//! Breaker metrics: transitions are counted as they happen (rare); everything else is read from
//! the breakers' own snapshots at scrape time, so a call through a breaker pays nothing for
//! metrics.

use std::sync::Arc;
use std::time::Duration;

use jarvis_breaker::{Snapshot, State};

use crate::metrics::Metrics;

/// Names of the breaker metrics.
pub mod names {
    /// Gauge: circuits in the OPEN state.
    pub const OPEN: &str = "jarvis_circuit_breakers_open";
    /// Gauge: 1 for the breaker's current state, 0 for the others.
    pub const STATE: &str = "jarvis_circuit_breaker_state";
    /// Gauge: consecutive failures.
    pub const FAILURES: &str = "jarvis_circuit_breaker_consecutive_failures";
    /// Counter: finished calls by outcome (success, failure, ignored, rejected).
    pub const CALLS: &str = "jarvis_circuit_breaker_calls_total";
    /// Counter: calls rejected without touching the service.
    pub const REJECTED: &str = "jarvis_circuit_breaker_rejected_calls_total";
    /// Counter: state changes by from/to.
    pub const TRANSITIONS: &str = "jarvis_circuit_breaker_transitions_total";
    /// Gauge: 1 while the store is unreachable and breakers run on local state.
    pub const DEGRADED: &str = "jarvis_breaker_store_degraded";
    /// Histogram: duration of calls through a breaker, seconds.
    pub const DURATION: &str = "jarvis_circuit_breaker_call_duration_seconds";
}

/// The breaker part of an instance's metrics.
#[derive(Debug)]
pub struct BreakerMetrics {
    metrics: Arc<Metrics>,
}

impl BreakerMetrics {
    /// Registers the descriptions on `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> BreakerMetrics {
        metrics.describe(names::OPEN, None, "Circuit breakers currently OPEN.");
        metrics.describe(
            names::STATE,
            None,
            "Circuit breaker state: 1 for the current state of each breaker.",
        );
        metrics.describe(
            names::FAILURES,
            None,
            "Consecutive failures counted by each breaker.",
        );
        metrics.describe(
            names::CALLS,
            None,
            "Calls through each breaker by outcome (success, failure, ignored, rejected).",
        );
        metrics.describe(
            names::REJECTED,
            None,
            "Calls rejected by an open circuit without touching the service.",
        );
        metrics.describe(
            names::TRANSITIONS,
            None,
            "Circuit state changes by breaker, from and to.",
        );
        metrics.describe(
            names::DURATION,
            Some(metrics::Unit::Seconds),
            "Duration of calls made through a circuit breaker.",
        );
        metrics.describe(
            names::DEGRADED,
            None,
            "1 while the store is unreachable and breakers run on local state only.",
        );
        let m = BreakerMetrics { metrics };
        m.degraded(false);
        m
    }

    /// Records whether the shared breaker state is degraded (store unreachable).
    pub fn degraded(&self, degraded: bool) {
        self.metrics
            .gauge(names::DEGRADED, &[])
            .set(if degraded { 1.0 } else { 0.0 });
    }

    /// Counts a state change.
    pub fn transition(&self, breaker: &str, from: State, to: State) {
        self.metrics
            .counter(
                names::TRANSITIONS,
                &[
                    ("breaker", breaker),
                    ("from", from.as_str()),
                    ("to", to.as_str()),
                ],
            )
            .increment(1);
    }

    /// Records how long a call through `breaker` took.
    pub fn observe(&self, breaker: &str, duration: Duration) {
        self.metrics
            .histogram(names::DURATION, &[("breaker", breaker)])
            .record(duration.as_secs_f64());
    }

    /// Copies the breakers' snapshot figures into the registry (called before rendering).
    pub fn refresh(&self, snapshots: &[Snapshot]) {
        let m = &self.metrics;
        let open = snapshots.iter().filter(|s| s.state == State::Open).count();
        m.gauge(names::OPEN, &[]).set(open as f64);
        for s in snapshots {
            let b = s.name.as_str();
            for state in [State::Closed, State::Open, State::HalfOpen] {
                m.gauge(names::STATE, &[("breaker", b), ("state", state.as_str())])
                    .set(if s.state == state { 1.0 } else { 0.0 });
            }
            m.gauge(names::FAILURES, &[("breaker", b)])
                .set(f64::from(s.failure_count));
            for (outcome, value) in [
                ("success", s.successes),
                ("failure", s.failures),
                ("ignored", s.ignored),
                ("rejected", s.rejected_calls),
            ] {
                m.counter(names::CALLS, &[("breaker", b), ("outcome", outcome)])
                    .absolute(value);
            }
            m.counter(names::REJECTED, &[("breaker", b)])
                .absolute(s.rejected_calls);
        }
    }
}
