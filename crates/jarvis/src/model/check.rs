//! What one health check concluded: the status and the result row (kept by the store, shown by
//! the API).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::correlation::CorrelationId;
use crate::names::Name;

/// The health of a service as one check saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Answered in time as expected.
    Up,
    /// Answered as expected, but slower than its `degradedLatencyMs`.
    Degraded,
    /// Did not answer, answered wrongly, or its circuit is open.
    Down,
}

impl Status {
    /// `up`, `degraded` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Degraded => "degraded",
            Status::Down => "down",
        }
    }

    /// The inverse of [`Status::as_str`].
    pub fn parse(raw: &str) -> Option<Status> {
        match raw {
            "up" => Some(Status::Up),
            "degraded" => Some(Status::Degraded),
            "down" => Some(Status::Down),
            _ => None,
        }
    }
}

/// The result of one check (also one row of history).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The service checked.
    pub service: Name,
    /// What the check concluded.
    pub status: Status,
    /// Why, for a person (`OK`, `HTTP 503`, `timeout after 3000 ms`, …).
    pub message: String,
    /// How long the check took, ms (0 when the circuit refused it).
    pub latency_ms: u64,
    /// When the check finished.
    pub timestamp: DateTime<Utc>,
    /// True when the circuit was OPEN and the service was not called.
    pub breaker_open: bool,
    /// The check's correlation ID (`hc-…`; a refused check has one too, though it called
    /// nothing). `None` only for rows written without one.
    pub correlation_id: Option<CorrelationId>,
}
