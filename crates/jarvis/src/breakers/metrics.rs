//! Breaker metrics: transitions are counted as they happen (rare); everything else is read from
//! the breakers' own snapshots at scrape time, so a call through a breaker pays nothing for
//! metrics.
//!
//! The per-breaker series (state, consecutive failures, calls, rejected calls) are written as
//! text from the snapshots at each scrape ([`BreakerMetrics::render`]) rather than kept in the
//! registry, which cannot forget a series: a deleted breaker (its service was removed) then
//! disappears from `/metrics` at once, and 20,000 breakers hold no registry memory between
//! scrapes.

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

    /// Sets the count of open circuits (called before rendering).
    pub fn refresh(&self, snapshots: &[Snapshot]) {
        let open = snapshots.iter().filter(|s| s.state == State::Open).count();
        self.metrics.gauge(names::OPEN, &[]).set(open as f64);
    }

    /// The per-breaker series of `snapshots` in the Prometheus text format, to append to the
    /// registry's own rendering. Empty without breakers.
    pub fn render(snapshots: &[Snapshot]) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if snapshots.is_empty() {
            return out;
        }
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            names::STATE,
            "gauge",
            "Circuit breaker state: 1 for the current state of each breaker.",
        );
        for s in snapshots {
            let b = escape(&s.name);
            for state in [State::Closed, State::Open, State::HalfOpen] {
                let v = u8::from(s.state == state);
                let _ = writeln!(
                    out,
                    "{}{{breaker=\"{b}\",state=\"{}\"}} {v}",
                    names::STATE,
                    state.as_str()
                );
            }
        }
        family(
            &mut out,
            names::FAILURES,
            "gauge",
            "Consecutive failures counted by each breaker.",
        );
        for s in snapshots {
            let _ = writeln!(
                out,
                "{}{{breaker=\"{}\"}} {}",
                names::FAILURES,
                escape(&s.name),
                s.failure_count
            );
        }
        family(
            &mut out,
            names::CALLS,
            "counter",
            "Calls through each breaker by outcome (success, failure, ignored, rejected).",
        );
        for s in snapshots {
            let b = escape(&s.name);
            for (outcome, value) in [
                ("success", s.successes),
                ("failure", s.failures),
                ("ignored", s.ignored),
                ("rejected", s.rejected_calls),
            ] {
                let _ = writeln!(
                    out,
                    "{}{{breaker=\"{b}\",outcome=\"{outcome}\"}} {value}",
                    names::CALLS
                );
            }
        }
        family(
            &mut out,
            names::REJECTED,
            "counter",
            "Calls rejected by an open circuit without touching the service.",
        );
        for s in snapshots {
            let _ = writeln!(
                out,
                "{}{{breaker=\"{}\"}} {}",
                names::REJECTED,
                escape(&s.name),
                s.rejected_calls
            );
        }
        out
    }
}

/// A label value in the text format (names are `A-Za-z0-9_.-`, so this is a safeguard).
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if v.contains(['\\', '"', '\n']) {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        v.into()
    }
}
