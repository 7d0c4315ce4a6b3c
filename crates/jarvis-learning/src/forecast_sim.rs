//! Generated scenarios for the [`Forecaster`]: how early it warns before a circuit trips, and
//! how often it warns for nothing.
//!
//! A simulated service is checked every `interval_secs` through a breaker that opens after
//! `failure_threshold` consecutive failures, stays open `open_secs` (checks refused, nothing fed
//! to the forecaster, as in the server), then lets one trial through (a success closes it, a
//! failure opens it again). The scenarios are the ones the issue names: slow degradation,
//! sudden death, flapping, noise without failure, and a daily load cycle.
//!
//! **Lead time** of a trip: how long the warning in force when the breaker opened had been in
//! force (0 when none was). **A false warning**: a warning that starts and is followed by no
//! trip within the horizon plus `false_warning_slack_secs`. `examples/predict_eval.rs` prints
//! the table (`bench/predict/`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde::Serialize;

use crate::forecast::{ForecastConfig, Forecaster, Limits, Outcome};

/// The kinds of scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Latency rises steadily from normal to past the timeout (5 to 30 minutes), then stays.
    SlowDegradation,
    /// Every call fails at once (connection refused) for ten minutes.
    SuddenDeath,
    /// Two minutes healthy, one minute down, again and again.
    Flapping,
    /// Heavy-tailed latency, 1 % of calls failing alone, 0.2 % timing out alone: no outage.
    Noise,
    /// Latency follows the day (median 150 ms at night, 1,200 ms at the peak), noisy: no outage.
    DailyCycle,
}

impl Scenario {
    /// Every scenario, in the table's order.
    pub const ALL: [Scenario; 5] = [
        Scenario::SlowDegradation,
        Scenario::SuddenDeath,
        Scenario::Flapping,
        Scenario::Noise,
        Scenario::DailyCycle,
    ];

    /// How long one service is simulated, seconds.
    pub fn duration_secs(self) -> f64 {
        match self {
            Scenario::SlowDegradation | Scenario::SuddenDeath => 3.0 * 3600.0,
            Scenario::Flapping => 3.0 * 3600.0,
            Scenario::Noise | Scenario::DailyCycle => 24.0 * 3600.0,
        }
    }
}

/// The simulated checks and breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seconds between checks.
    pub interval_secs: f64,
    /// The checks' timeout, ms.
    pub timeout_ms: f64,
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open, seconds.
    pub open_secs: f64,
    /// Services simulated per scenario.
    pub services: u32,
    /// Added to the horizon before a warning with no trip counts as false, seconds.
    pub false_warning_slack_secs: f64,
}

impl Default for SimConfig {
    /// Jarvis's defaults: checks every 5 s with a 3 s timeout, 5 failures open the circuit for
    /// 60 s.
    fn default() -> Self {
        SimConfig {
            interval_secs: 5.0,
            timeout_ms: 3_000.0,
            failure_threshold: 5,
            open_secs: 60.0,
            services: 100,
            false_warning_slack_secs: 300.0,
        }
    }
}

/// What one scenario measured over its services.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    /// Which scenario.
    pub scenario: Scenario,
    /// Services simulated.
    pub services: u32,
    /// Simulated time per service, hours.
    pub hours_per_service: f64,
    /// Breaker trips (CLOSED to OPEN).
    pub trips: u64,
    /// Outages that tripped the breaker (the first trip of each; a breaker that closes on a
    /// lucky trial during an outage may trip again).
    pub outages_tripped: u64,
    /// Outages whose first trip came with a warning in force.
    pub warned_trips: u64,
    /// Lead times of the outages' first trips, seconds, ascending (0: unwarned).
    #[serde(skip)]
    pub lead_times: Vec<f64>,
    /// Median lead time, seconds (none without trips).
    pub lead_p50_secs: Option<f64>,
    /// 10th percentile of the lead time, seconds.
    pub lead_p10_secs: Option<f64>,
    /// Share of trips warned at least 30 s ahead.
    pub warned_30s_share: Option<f64>,
    /// Warnings that started.
    pub warnings: u64,
    /// Warnings followed by no trip (see the module).
    pub false_warnings: u64,
    /// False warnings per service per day.
    pub false_per_service_day: f64,
}

/// Runs one scenario for `sim.services` services (service `i` seeded `seed + i`).
pub fn run_scenario(
    scenario: Scenario,
    sim: &SimConfig,
    config: &ForecastConfig,
    seed: u64,
) -> ScenarioReport {
    let mut leads = Vec::new();
    let (mut trips, mut warnings, mut false_warnings) = (0u64, 0u64, 0u64);
    for i in 0..sim.services {
        let run = run_service(scenario, sim, config, seed.wrapping_add(u64::from(i)));
        trips += run.trips.len() as u64;
        warnings += run.warning_starts.len() as u64;
        let window = config.horizon_secs + sim.false_warning_slack_secs;
        false_warnings += run
            .warning_starts
            .iter()
            .filter(|&&w| !run.trips.iter().any(|t| t.at >= w && t.at <= w + window))
            .count() as u64;
        leads.extend(run.trips.iter().filter(|t| t.first).map(|t| t.lead));
    }
    leads.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| {
        (!leads.is_empty()).then(|| leads[((leads.len() - 1) as f64 * q).round() as usize])
    };
    let days = f64::from(sim.services) * scenario.duration_secs() / 86_400.0;
    ScenarioReport {
        scenario,
        services: sim.services,
        hours_per_service: scenario.duration_secs() / 3600.0,
        trips,
        outages_tripped: leads.len() as u64,
        warned_trips: leads.iter().filter(|l| **l > 0.0).count() as u64,
        lead_p50_secs: pct(0.5),
        lead_p10_secs: pct(0.1),
        warned_30s_share: (!leads.is_empty())
            .then(|| leads.iter().filter(|l| **l >= 30.0).count() as f64 / leads.len() as f64),
        lead_times: leads,
        warnings,
        false_warnings,
        false_per_service_day: false_warnings as f64 / days.max(1e-9),
    }
}

/// One service's trips and the times its warnings started.
struct ServiceRun {
    trips: Vec<Trip>,
    warning_starts: Vec<f64>,
}

/// What the service does at a moment, before noise: its median latency, and the chance that a
/// call fails outright.
struct Behaviour {
    /// Which outage is under way (none when the service is meant to be healthy).
    outage: Option<u32>,
    median_ms: f64,
    sigma: f64,
    error_chance: f64,
    timeout_chance: f64,
}

/// A CLOSED breaker opening.
struct Trip {
    at: f64,
    /// How long the warning in force had been (0: none was).
    lead: f64,
    /// The first trip of its outage (or a trip outside any).
    first: bool,
}

fn run_service(
    scenario: Scenario,
    sim: &SimConfig,
    config: &ForecastConfig,
    seed: u64,
) -> ServiceRun {
    let mut rng = StdRng::seed_from_u64(seed);
    // Where the trouble starts and how fast it comes, per service.
    let onset = rng.random_range(3600.0..7200.0);
    let degrade_secs = rng.random_range(300.0..1800.0);
    let phase = rng.random_range(0.0..86_400.0);
    let base = rng.random_range(80.0..250.0);
    let behaviour = |t: f64| -> Behaviour {
        let healthy = Behaviour {
            outage: None,
            median_ms: base,
            sigma: 0.3,
            error_chance: 0.0,
            timeout_chance: 0.0,
        };
        match scenario {
            Scenario::SlowDegradation => {
                // From normal to 1.5 × the timeout (once past it, nearly every check times
                // out), for ten minutes, then back to normal.
                if t >= onset && t < onset + degrade_secs + 600.0 {
                    let progress = ((t - onset) / degrade_secs).clamp(0.0, 1.0);
                    Behaviour {
                        outage: Some(0),
                        median_ms: base + progress * (1.5 * sim.timeout_ms - base),
                        ..healthy
                    }
                } else {
                    healthy
                }
            }
            Scenario::SuddenDeath => {
                if t >= onset && t < onset + 600.0 {
                    Behaviour {
                        outage: Some(0),
                        error_chance: 1.0,
                        ..healthy
                    }
                } else {
                    healthy
                }
            }
            Scenario::Flapping => {
                if t >= onset && (t - onset) % 180.0 >= 120.0 {
                    Behaviour {
                        outage: Some(((t - onset) / 180.0) as u32),
                        error_chance: 1.0,
                        ..healthy
                    }
                } else {
                    healthy
                }
            }
            Scenario::Noise => Behaviour {
                outage: None,
                median_ms: base * 1.5,
                sigma: 0.6,
                error_chance: 0.01,
                timeout_chance: 0.002,
            },
            Scenario::DailyCycle => {
                let day = ((t + phase) / 86_400.0 * std::f64::consts::TAU).sin();
                Behaviour {
                    outage: None,
                    median_ms: 150.0 + (1_200.0 - 150.0) * (1.0 + day) / 2.0,
                    sigma: 0.35,
                    error_chance: 0.002,
                    timeout_chance: 0.0,
                }
            }
        }
    };
    let limits = Limits {
        timeout_ms: sim.timeout_ms,
        failure_threshold: sim.failure_threshold,
    };
    let mut forecaster = Forecaster::new();
    let mut out = ServiceRun {
        trips: Vec::new(),
        warning_starts: Vec::new(),
    };
    let (mut run, mut open_until, mut trial) = (0u32, f64::NEG_INFINITY, false);
    let mut warning_since: Option<f64> = None;
    let mut tripped_in: Option<u32> = None;
    let mut t = rng.random_range(0.0..sim.interval_secs);
    while t < scenario.duration_secs() {
        if t < open_until {
            t += sim.interval_secs;
            continue;
        }
        let b = behaviour(t);
        let latency = LogNormal::new(b.median_ms.max(1.0).ln(), b.sigma)
            .map(|d| d.sample(&mut rng))
            .unwrap_or(b.median_ms);
        let outcome = if rng.random_bool(b.error_chance.clamp(0.0, 1.0)) {
            Outcome::Failed { latency_ms: 1.0 }
        } else if rng.random_bool(b.timeout_chance.clamp(0.0, 1.0)) || latency >= sim.timeout_ms {
            Outcome::TimedOut
        } else {
            Outcome::Ok {
                latency_ms: latency,
            }
        };
        let failed = !matches!(outcome, Outcome::Ok { .. });
        let forecast = forecaster.observe(t, outcome, limits, config);
        let warning = forecast.is_some_and(|f| f.warning);
        match (warning, warning_since) {
            (true, None) => {
                warning_since = Some(t);
                out.warning_starts.push(t);
            }
            (false, Some(_)) => warning_since = None,
            _ => {}
        }
        // The breaker.
        run = if failed { run + 1 } else { 0 };
        let was_trial = std::mem::take(&mut trial);
        let opens = if was_trial {
            failed
        } else {
            run >= sim.failure_threshold
        };
        if opens {
            // A trip is a CLOSED breaker opening; a failed trial only opens it again.
            if !was_trial {
                // The lead time of an outage is its first trip's; a breaker that closes
                // during the outage (a lucky trial) and trips again has had its warning.
                let first = b.outage.is_none() || b.outage != tripped_in;
                tripped_in = b.outage;
                out.trips.push(Trip {
                    at: t,
                    lead: warning_since.map_or(0.0, |w| t - w),
                    first,
                });
            }
            open_until = t + sim.open_secs;
            trial = true;
        }
        t += sim.interval_secs;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(scenario: Scenario) -> ScenarioReport {
        let sim = SimConfig {
            services: 20,
            ..SimConfig::default()
        };
        run_scenario(scenario, &sim, &ForecastConfig::default(), 7)
    }

    #[test]
    fn slow_degradation_is_warned_at_least_30_s_before_the_trip() {
        let r = report(Scenario::SlowDegradation);
        assert_eq!(r.outages_tripped, 20, "{r:?}");
        assert!(r.lead_p10_secs.unwrap() >= 30.0, "{r:?}");
        assert!(r.warned_30s_share.unwrap() >= 0.9, "{r:?}");
    }

    #[test]
    fn noise_without_failure_warns_at_most_once_per_service_per_day() {
        let r = report(Scenario::Noise);
        assert!(r.false_per_service_day <= 1.0, "{r:?}");
    }

    #[test]
    fn a_daily_cycle_warns_at_most_once_per_service_per_day() {
        let r = report(Scenario::DailyCycle);
        assert!(r.false_per_service_day <= 1.0, "{r:?}");
    }

    #[test]
    fn every_outage_of_a_flapping_service_trips_its_breaker() {
        let r = report(Scenario::Flapping);
        // 20 services, one outage every 3 minutes for 1–2 of the 3 hours.
        assert!(r.outages_tripped >= 20 * 20, "{r:?}");
    }

    #[test]
    fn a_sudden_death_trips_once_per_service() {
        let r = report(Scenario::SuddenDeath);
        assert_eq!(r.outages_tripped, 20, "{r:?}");
    }
}
