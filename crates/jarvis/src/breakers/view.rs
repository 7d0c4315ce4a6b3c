//! The API's picture of a breaker: camelCase fields, ISO 8601 times.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use jarvis_breaker::Snapshot;
use serde::Serialize;

/// One breaker as `GET /api/v1/circuit-breakers` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerView {
    /// `CLOSED`, `OPEN` or `HALF_OPEN`.
    pub state: &'static str,
    /// Consecutive failures.
    pub failure_count: u32,
    /// Successful trials in the current half-open period.
    pub success_count: u32,
    /// Finished calls (successes, failures, ignored, rejected).
    pub total_calls: u64,
    /// Calls rejected without touching the service.
    pub rejected_calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// When the last failure happened.
    pub last_failure_at: Option<String>,
    /// Why.
    pub last_failure_reason: Option<String>,
    /// When the circuit last opened.
    pub opened_at: Option<String>,
    /// When an open circuit lets a trial through.
    pub next_attempt_at: Option<String>,
    /// Held open by an operator.
    pub forced: bool,
    /// Grows by one at every transition.
    pub generation: u64,
    /// The settings, in one line.
    pub policy: String,
    /// False when `CIRCUIT_BREAKER_ENABLED=false`: calls pass through uncounted.
    pub enabled: bool,
}

/// ISO 8601 UTC with milliseconds.
pub fn iso(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl BreakerView {
    /// The view of a snapshot.
    pub fn new(s: &Snapshot, enabled: bool) -> BreakerView {
        BreakerView {
            state: s.state.as_str(),
            failure_count: s.failure_count,
            success_count: s.success_count,
            total_calls: s.total_calls,
            rejected_calls: s.rejected_calls,
            successes: s.successes,
            failures: s.failures,
            last_failure_at: s.last_failure_at.map(iso),
            last_failure_reason: s.last_failure_reason.clone(),
            opened_at: s.opened_at.map(iso),
            next_attempt_at: s.next_attempt_at.map(iso),
            forced: s.forced,
            generation: s.generation,
            policy: s.description.clone(),
            enabled,
        }
    }
}
