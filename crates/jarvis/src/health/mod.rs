//! Health of the services Jarvis depends on: their definitions, checks, scheduling,
//! aggregation and history.
//!
//! - [`spec`]: a [`ServiceSpec`] is what an operator registers (config file or
//!   `PUT /api/v1/services/{name}`); it is persisted in the store so every instance sees and
//!   checks the same services.
//! - [`check`]: one check (HTTP or TCP) through the service's circuit breaker.
//! - [`monitor`]: the scheduler that checks every service on its interval, and the per-round
//!   [`RoundReport`] handed to [`RoundSink`]s.
//! - [`predict`]: each service's trip forecast, fed by its checks.
//! - [`history`]: results written in batches off the check path, with retention.
//! - [`uptime`]: uptime over the last hour and day, in memory.
//! - [`metrics`]: the Prometheus metrics of the monitor.
//! - [`as_tasks`]: every round recorded in task history as `system-health`/`monitor-services`.
//! - [`report`]: `jarvis health`, the aggregated view of a running server for a terminal.

pub mod as_tasks;
pub mod check;
pub mod history;
pub mod metrics;
pub mod monitor;
pub mod predict;
pub use crate::model::service as spec;
pub mod uptime;

pub use check::{CheckResult, Checker, Kind, Status, BREAKER_OPEN_MESSAGE};
pub use monitor::{Monitor, RoundReport, RoundSink, ServiceChange, ServiceHealth};
pub use spec::{BodyCondition, ServiceInput, ServiceSpec};

/// The overall status of a set of services, as the IETF health+json draft names it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    /// Every service up.
    Pass,
    /// Some non-critical service down, or some service degraded or not checked yet.
    Warn,
    /// Some critical service down.
    Fail,
}

impl Overall {
    /// The wire form: `pass`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Pass => "pass",
            Overall::Warn => "warn",
            Overall::Fail => "fail",
        }
    }
}

/// Any critical service down → `fail`; else any service down, degraded or not yet checked →
/// `warn`; else `pass` (also with no services).
pub fn overall<'a>(services: impl IntoIterator<Item = (bool, Option<Status>)> + 'a) -> Overall {
    let mut result = Overall::Pass;
    for (critical, status) in services {
        match status {
            Some(Status::Down) if critical => return Overall::Fail,
            Some(Status::Up) => {}
            _ => result = Overall::Warn,
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregation() {
        use Status::*;
        type Case<'a> = (&'a [(bool, Option<Status>)], Overall);
        let cases: &[Case] = &[
            (&[], Overall::Pass),
            (&[(true, Some(Up)), (false, Some(Up))], Overall::Pass),
            (&[(true, Some(Up)), (false, Some(Down))], Overall::Warn),
            (&[(true, Some(Degraded))], Overall::Warn),
            (&[(false, None)], Overall::Warn),
            (&[(false, Some(Down)), (true, Some(Down))], Overall::Fail),
        ];
        for (services, expected) in cases {
            assert_eq!(overall(services.iter().copied()), *expected, "{services:?}");
        }
    }
}
