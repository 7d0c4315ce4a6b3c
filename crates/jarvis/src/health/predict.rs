//! Trip forecasts (issue 16), per service and per agent domain.
//!
//! Every check that called a service feeds the service's [`Forecaster`] (the `jarvis-learning`
//! crate, `forecast`), and the forecast after the latest check is what
//! `GET /api/v1/health/services` shows as `prediction`, what the monitor's gauges count and what
//! the CloudWatch lines report. Checks refused by an open circuit feed nothing (they say nothing
//! about the service). Every stored attempt of an agent feeds its domain's forecaster the same
//! way ([`DomainForecasts`], a batch observer of the history recorder), shown under `agents` in
//! the same answer. How early and how falsely it warns is measured in bench/predict/README.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jarvis_learning::{Forecast, ForecastConfig, Forecaster, Limits, Outcome};

use super::check::{CheckResult, Status};
use crate::breakers::BreakerRegistry;
use crate::history::recorder::BatchObserver;
use crate::model::agent::{DEFAULT_AI_TIMEOUT_MS, DEFAULT_TIMEOUT_MS};
use crate::model::record::ExecutionRecord;

/// The forecaster settings of every service: the library's defaults with the configured horizon
/// (`JARVIS_PREDICT_HORIZON_MS`).
pub fn forecast_config(horizon: Duration) -> ForecastConfig {
    ForecastConfig {
        horizon_secs: horizon.as_secs_f64(),
        ..ForecastConfig::default()
    }
}

/// What a check tells the forecaster: `None` for a check the circuit refused. A check that ran
/// into its timeout is known by its duration, not by its message.
pub fn outcome(result: &CheckResult, timeout_ms: u64) -> Option<Outcome> {
    if result.breaker_open {
        return None;
    }
    let latency_ms = result.latency_ms as f64;
    Some(match result.status {
        Status::Up | Status::Degraded => Outcome::Ok { latency_ms },
        Status::Down if result.latency_ms >= timeout_ms => Outcome::TimedOut,
        Status::Down => Outcome::Failed { latency_ms },
    })
}

/// One service's forecaster.
#[derive(Debug, Default)]
pub struct ServiceForecast {
    forecaster: Forecaster,
}

impl ServiceForecast {
    /// Feeds one check; returns whether a warning started or ended with it.
    pub fn observe(
        &mut self,
        result: &CheckResult,
        timeout_ms: u64,
        failure_threshold: u32,
        config: &ForecastConfig,
    ) -> Option<Change> {
        let outcome = outcome(result, timeout_ms)?;
        let before = self.warning();
        let at = result.timestamp.timestamp_millis() as f64 / 1000.0;
        let limits = Limits {
            timeout_ms: timeout_ms as f64,
            failure_threshold,
        };
        let after = self
            .forecaster
            .observe(at, outcome, limits, config)
            .is_some_and(|f| f.warning);
        match (before, after) {
            (false, true) => Some(Change::Warns),
            (true, false) => Some(Change::Clears),
            _ => None,
        }
    }

    /// The forecast after the latest check (none before the forecaster's minimum of calls).
    pub fn latest(&self) -> Option<&Forecast> {
        self.forecaster.latest()
    }

    /// Whether the latest forecast warns.
    pub fn warning(&self) -> bool {
        self.latest().is_some_and(|f| f.warning)
    }
}

/// A warning started or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A trip became likely.
    Warns,
    /// It no longer is.
    Clears,
}

/// The trip forecast of every agent domain, fed by the stored attempts of its tasks.
///
/// An attempt is an outcome like a check: in time (success or not, a failed agent answer is a
/// failure for the breaker too), cut off by Jarvis at its timeout (`timedOut`), or failed. The
/// timeout a domain's attempts run into is the duration of its latest timed-out attempt, until
/// one has timed out the agents' default (30 s, AI agents 120 s). Attempts Jarvis stopped itself
/// and attempts that reached no agent are left out (as the learner does), and so is
/// `system-health` (the monitor's rounds, not an agent).
pub struct DomainForecasts {
    breakers: Arc<BreakerRegistry>,
    config: ForecastConfig,
    domains: Mutex<HashMap<String, DomainState>>,
}

#[derive(Default)]
struct DomainState {
    forecast: Forecaster,
    timeout_ms: Option<u64>,
}

impl DomainForecasts {
    /// Forecasts for the domains whose breakers are in `breakers`.
    pub fn new(breakers: Arc<BreakerRegistry>, config: ForecastConfig) -> DomainForecasts {
        DomainForecasts {
            breakers,
            config,
            domains: Mutex::new(HashMap::new()),
        }
    }

    /// The latest forecast of every domain that has one, by domain.
    pub fn forecasts(&self) -> Vec<(String, Forecast)> {
        let domains = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, Forecast)> = domains
            .iter()
            .filter_map(|(d, s)| s.forecast.latest().map(|f| (d.clone(), f.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Domains whose forecast warns now.
    pub fn warnings(&self) -> usize {
        let domains = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        domains
            .values()
            .filter(|s| s.forecast.latest().is_some_and(|f| f.warning))
            .count()
    }
}

impl BatchObserver for DomainForecasts {
    /// Takes every record of the batch, then forecasts once per domain it touched: the
    /// forecast (a dynamic program over the next calls) costs far more than taking a call, and
    /// the recorder's batches hold up to thousands of records.
    fn observe(&self, records: &[ExecutionRecord]) {
        let mut domains = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        let mut touched: HashMap<&str, Limits> = HashMap::new();
        for r in records {
            if r.domain == crate::health::as_tasks::DOMAIN
                || crate::learning::execution_of(r, &Default::default()).is_none()
            {
                continue;
            }
            let state = domains.entry(r.domain.clone()).or_default();
            let outcome = if r.success {
                Outcome::Ok {
                    latency_ms: r.duration_ms as f64,
                }
            } else if r.timed_out {
                state.timeout_ms = Some(r.duration_ms.max(1));
                Outcome::TimedOut
            } else {
                Outcome::Failed {
                    latency_ms: r.duration_ms as f64,
                }
            };
            let default = if r.model_call.is_some() {
                DEFAULT_AI_TIMEOUT_MS
            } else {
                DEFAULT_TIMEOUT_MS
            };
            let limits = Limits {
                timeout_ms: state.timeout_ms.unwrap_or(default) as f64,
                failure_threshold: self.breakers.failure_threshold(&r.domain),
            };
            let at = r.finished_at.timestamp_millis() as f64 / 1000.0;
            state.forecast.record(at, outcome, limits, &self.config);
            touched.insert(r.domain.as_str(), limits);
        }
        for (domain, limits) in touched {
            let Some(state) = domains.get_mut(domain) else {
                continue;
            };
            let before = state.forecast.latest().is_some_and(|f| f.warning);
            let after = state
                .forecast
                .refresh(limits, &self.config)
                .is_some_and(|f| f.warning);
            if after && !before {
                tracing::warn!(
                    domain,
                    reason = state
                        .forecast
                        .latest()
                        .and_then(|f| f.reason.as_deref())
                        .unwrap_or(""),
                    "circuit trip predicted"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Name;

    fn result(status: Status, latency_ms: u64, breaker_open: bool) -> CheckResult {
        CheckResult {
            service: Name::parse("svc").unwrap(),
            status,
            message: String::new(),
            latency_ms,
            timestamp: crate::clock::now(),
            breaker_open,
            correlation_id: None,
        }
    }

    #[test]
    fn a_check_becomes_an_outcome_by_its_status_and_duration() {
        assert_eq!(
            outcome(&result(Status::Up, 120, false), 3000),
            Some(Outcome::Ok { latency_ms: 120.0 })
        );
        assert_eq!(
            outcome(&result(Status::Degraded, 2500, false), 3000),
            Some(Outcome::Ok { latency_ms: 2500.0 })
        );
        assert_eq!(
            outcome(&result(Status::Down, 3001, false), 3000),
            Some(Outcome::TimedOut)
        );
        assert_eq!(
            outcome(&result(Status::Down, 4, false), 3000),
            Some(Outcome::Failed { latency_ms: 4.0 })
        );
        assert_eq!(outcome(&result(Status::Down, 0, true), 3000), None);
    }

    #[test]
    fn consecutive_failures_start_a_warning_once() {
        let config = forecast_config(Duration::from_secs(120));
        let mut f = ServiceForecast::default();
        let mut changes = Vec::new();
        for i in 0..40 {
            let mut r = result(Status::Up, 100, false);
            r.timestamp = chrono::DateTime::from_timestamp(1_700_000_000 + 5 * i, 0).unwrap();
            if i >= 30 {
                r.status = Status::Down;
                r.latency_ms = 2;
            }
            changes.extend(f.observe(&r, 3000, 5, &config));
        }
        assert_eq!(changes, vec![Change::Warns]);
        assert!(f.warning());
        assert!(f.latest().unwrap().reason.is_some());
    }
}
