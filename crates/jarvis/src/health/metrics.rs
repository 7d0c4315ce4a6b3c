//! Health monitor metrics. Every handle is registered once, so a check pays for a few atomic
//! adds and no lookups. No metric here has a service label: with thousands of services that
//! would multiply series; per-service state is in the breaker metrics and the API.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use super::check::{Kind, Status};
use crate::metrics::Metrics;

/// Names of the health metrics.
pub mod names {
    /// Counter: checks by result (up, degraded, down, rejected).
    pub const CHECKS: &str = "jarvis_health_checks_total";
    /// Histogram: duration of checks that called the service, seconds, by kind (http, tcp).
    pub const DURATION: &str = "jarvis_health_check_duration_seconds";
    /// Histogram: how late checks started after their scheduled time, seconds.
    pub const LAG: &str = "jarvis_health_check_lag_seconds";
    /// Counter: checks not made, by reason (late: no slot in time; overrun: the previous check
    /// of the same service was still running).
    pub const SKIPPED: &str = "jarvis_health_checks_skipped_total";
    /// Gauge: services being monitored.
    pub const SERVICES: &str = "jarvis_health_services";
    /// Gauge: checks in flight.
    pub const IN_FLIGHT: &str = "jarvis_health_checks_in_flight";
    /// Counter: results not written to history because the writer was behind.
    pub const HISTORY_DROPPED: &str = "jarvis_health_history_dropped_total";
    /// Counter: results written to history.
    pub const HISTORY_WRITTEN: &str = "jarvis_health_history_written_total";
    /// Gauge: services whose trip forecast warns now.
    pub const PREDICTED_TRIPS: &str = "jarvis_health_predicted_trips";
    /// Counter: trip warnings started.
    pub const TRIP_WARNINGS: &str = "jarvis_health_trip_warnings_total";
}

/// The health part of an instance's metrics.
#[derive(Clone)]
pub struct HealthMetrics {
    up: Counter,
    degraded: Counter,
    down: Counter,
    rejected: Counter,
    http_duration: Histogram,
    tcp_duration: Histogram,
    lag: Histogram,
    /// Skipped because no slot was free (or the scheduler woke) in time.
    pub skipped_late: Counter,
    /// Skipped because the previous check of the service was still running.
    pub skipped_overrun: Counter,
    /// Services monitored.
    pub services: Gauge,
    /// Checks in flight.
    pub in_flight: Gauge,
    /// History results dropped.
    pub history_dropped: Counter,
    /// History results written.
    pub history_written: Counter,
    /// Services whose trip forecast warns.
    pub predicted_trips: Gauge,
    /// Trip warnings started.
    pub trip_warnings: Counter,
}

impl HealthMetrics {
    /// Describes and registers the health metrics on `metrics`.
    pub fn new(metrics: &Arc<Metrics>) -> HealthMetrics {
        use metrics::Unit;
        metrics.describe(
            names::CHECKS,
            None,
            "Health checks by result (up, degraded, down; rejected: circuit open, not called).",
        );
        metrics.describe(
            names::DURATION,
            Some(Unit::Seconds),
            "Duration of health checks that called the service, by kind.",
        );
        metrics.describe(
            names::LAG,
            Some(Unit::Seconds),
            "How late health checks started after their scheduled time.",
        );
        metrics.describe(
            names::SKIPPED,
            None,
            "Health checks skipped, by reason (late: no slot in time; overrun: previous check still running).",
        );
        metrics.describe(
            names::SERVICES,
            None,
            "Services monitored by this instance.",
        );
        metrics.describe(names::IN_FLIGHT, None, "Health checks in flight.");
        metrics.describe(
            names::HISTORY_DROPPED,
            None,
            "Health check results not written to history because the writer was behind.",
        );
        metrics.describe(
            names::HISTORY_WRITTEN,
            None,
            "Health check results written to history.",
        );
        metrics.describe(
            names::PREDICTED_TRIPS,
            None,
            "Services whose circuit is forecast to trip within JARVIS_PREDICT_HORIZON_MS (GET /api/v1/health/services says which and why).",
        );
        metrics.describe(
            names::TRIP_WARNINGS,
            None,
            "Trip forecast warnings started.",
        );
        let result = |r: &str| metrics.counter(names::CHECKS, &[("result", r)]);
        HealthMetrics {
            up: result("up"),
            degraded: result("degraded"),
            down: result("down"),
            rejected: result("rejected"),
            http_duration: metrics.histogram(names::DURATION, &[("kind", "http")]),
            tcp_duration: metrics.histogram(names::DURATION, &[("kind", "tcp")]),
            lag: metrics.histogram(names::LAG, &[]),
            skipped_late: metrics.counter(names::SKIPPED, &[("reason", "late")]),
            skipped_overrun: metrics.counter(names::SKIPPED, &[("reason", "overrun")]),
            services: metrics.gauge(names::SERVICES, &[]),
            in_flight: metrics.gauge(names::IN_FLIGHT, &[]),
            history_dropped: metrics.counter(names::HISTORY_DROPPED, &[]),
            history_written: metrics.counter(names::HISTORY_WRITTEN, &[]),
            predicted_trips: metrics.gauge(names::PREDICTED_TRIPS, &[]),
            trip_warnings: metrics.counter(names::TRIP_WARNINGS, &[]),
        }
    }

    /// Counts a check's result.
    pub fn result(&self, status: Status, breaker_open: bool, kind: Kind, duration: Duration) {
        if breaker_open {
            self.rejected.increment(1);
            return;
        }
        match status {
            Status::Up => self.up.increment(1),
            Status::Degraded => self.degraded.increment(1),
            Status::Down => self.down.increment(1),
        }
        match kind {
            Kind::Http => self.http_duration.record(duration.as_secs_f64()),
            Kind::Tcp => self.tcp_duration.record(duration.as_secs_f64()),
        }
    }

    /// Records how late a check started.
    pub fn lag(&self, lag: Duration) {
        self.lag.record(lag.as_secs_f64());
    }
}
