//! Predicting a circuit trip before it happens.
//!
//! A [`Forecaster`] follows one service (or one agent domain) call by call: its latency,
//! smoothed with Holt's damped trend method (a level and a trend per call), the spread of the
//! calls around that forecast, and the share of calls that fail for another reason than slowness
//! (an exponentially weighted moving average). From those it forecasts, for each of the next
//! calls, the chance that the call fails — slower than its timeout, or failing as the recent ones
//! did — and from that, by dynamic programming over the current run of consecutive failures, the
//! probability that the breaker (which opens after `failure_threshold` consecutive failures)
//! trips within the horizon, and when a trip becomes more likely than not.
//!
//! Latency is modelled in logarithms (its noise is multiplicative: a service at 2 s wobbles by
//! more milliseconds than one at 100 ms), so the chance that a call outlasts its timeout is a
//! log-normal tail.
//!
//! The warning has hysteresis: it starts when the trip probability within the horizon reaches
//! [`ForecastConfig::warn_probability`] and ends when it has been below
//! [`ForecastConfig::clear_probability`] and no higher than the warning threshold for
//! [`ForecastConfig::hold_secs`], so a forecast hovering at the threshold does not warn, clear
//! and warn again. How early it warns and how often it warns for nothing is measured
//! on generated scenarios (slow degradation, sudden death, flapping, noise, a daily cycle) by
//! `examples/predict_eval.rs` (`bench/predict/`).
//!
//! Pure: time is whatever the caller says it is (seconds as `f64`), no clock, no I/O.

use serde::Serialize;

use crate::estimate::normal_cdf;

/// How the forecaster smooths and when it warns. The defaults are the ones evaluated in
/// `bench/predict/README.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastConfig {
    /// Weight of the newest latency in the level (0–1).
    pub level_alpha: f64,
    /// Weight of the newest level change in the trend (0–1).
    pub trend_beta: f64,
    /// Damping of the trend per call ahead (0–1): a trend is not extrapolated forever.
    pub damping: f64,
    /// Weight of the newest squared forecast error in the spread (0–1).
    pub spread_gamma: f64,
    /// Forecast errors are clipped to this many spreads before they move the level and trend.
    pub outlier_clip: f64,
    /// Weight of the newest call in the error rate (0–1).
    pub error_alpha: f64,
    /// How far ahead the trip probability looks, seconds (at most `lookahead_calls` calls).
    pub horizon_secs: f64,
    /// Trip probability within the horizon at which a warning starts.
    pub warn_probability: f64,
    /// Trip probability below which a warning ends…
    pub clear_probability: f64,
    /// … once it has been below the warning threshold this long, seconds.
    pub hold_secs: f64,
    /// Calls seen before anything is forecast.
    pub min_observations: u32,
    /// Calls ahead looked at for `seconds_to_trip` and `seconds_to_timeout`, and the most the
    /// horizon covers.
    pub lookahead_calls: u32,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            level_alpha: 0.3,
            trend_beta: 0.05,
            damping: 0.95,
            spread_gamma: 0.1,
            outlier_clip: 2.5,
            error_alpha: 0.2,
            horizon_secs: 120.0,
            warn_probability: 0.5,
            clear_probability: 0.2,
            hold_secs: 180.0,
            min_observations: 6,
            lookahead_calls: 120,
        }
    }
}

/// What one call did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Answered in time.
    Ok {
        /// How long it took, ms.
        latency_ms: f64,
    },
    /// Cut off at its timeout: slower than the timeout, by how much unknown.
    TimedOut,
    /// Failed for another reason (refused, an error status).
    Failed {
        /// How long it took, ms (not used: a quick refusal says nothing about slowness).
        latency_ms: f64,
    },
}

impl Outcome {
    fn failed(self) -> bool {
        !matches!(self, Outcome::Ok { .. })
    }
}

/// What the breaker in front of the calls does, and how often calls come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The calls' timeout, ms.
    pub timeout_ms: f64,
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
}

/// The forecast at one moment: what the API, the metrics and the CloudWatch lines show.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Forecast {
    /// The smoothed latency, ms.
    pub latency_ms: f64,
    /// Its trend, ms per minute (positive: slowing down).
    pub latency_trend_ms_per_min: f64,
    /// The smoothed share of calls failing for another reason than slowness (0–1).
    pub error_rate: f64,
    /// Consecutive failures so far.
    pub consecutive_failures: u32,
    /// When the forecast latency reaches the timeout, seconds from now (none within the
    /// lookahead).
    pub seconds_to_timeout: Option<f64>,
    /// When a trip becomes more likely than not, seconds from now (none within the lookahead).
    pub seconds_to_trip: Option<f64>,
    /// The probability of a trip within the horizon (0–1).
    pub trip_probability: f64,
    /// The horizon, seconds.
    pub horizon_secs: f64,
    /// Whether the forecast warns (with hysteresis, see the module).
    pub warning: bool,
    /// Why, for a person, when it warns.
    pub reason: Option<String>,
}

/// Follows one service's calls and forecasts its breaker's trip. See the module.
#[derive(Debug, Clone, Default)]
pub struct Forecaster {
    calls: u32,
    latency_calls: u32,
    level: f64,
    trend: f64,
    spread: f64,
    error_rate: f64,
    run: u32,
    /// Calls right after a failure that failed too, and that did not (exponentially
    /// forgotten): failures come in runs when a service goes down, alone when it is noisy.
    after_failure_failed: f64,
    after_failure_ok: f64,
    last_at: Option<f64>,
    gap_secs: f64,
    warning: bool,
    warned_at: f64,
    last: Option<Forecast>,
}

/// Calls ahead over which a forecast's spread grows (see `failure_chances`).
const SPREAD_GROWTH_CALLS: u32 = 30;

/// The spread (variance of log latency) before any evidence: about ±20 %.
const INITIAL_SPREAD: f64 = 0.04;
/// The least spread: ±5 %, so that a very steady service's first slower calls are not taken
/// for a certain trend.
const MIN_SPREAD: f64 = 0.0025;

impl Forecaster {
    /// A forecaster that has seen nothing.
    pub fn new() -> Forecaster {
        Forecaster::default()
    }

    /// Takes one call that ended at `at_secs` and returns the forecast after it (`None` until
    /// `min_observations` calls were seen). Non-finite or negative latencies count as 0.
    pub fn observe(
        &mut self,
        at_secs: f64,
        outcome: Outcome,
        limits: Limits,
        config: &ForecastConfig,
    ) -> Option<Forecast> {
        self.record(at_secs, outcome, limits, config);
        self.refresh(limits, config)
    }

    /// Takes one call without forecasting (cheap: a few arithmetic operations); a caller that
    /// takes calls in batches forecasts once per batch with [`Forecaster::refresh`].
    pub fn record(
        &mut self,
        at_secs: f64,
        outcome: Outcome,
        limits: Limits,
        config: &ForecastConfig,
    ) {
        let timeout = limits.timeout_ms.max(1.0);
        if let Some(last) = self.last_at {
            let gap = (at_secs - last).max(0.0);
            self.gap_secs = if self.calls <= 1 {
                gap
            } else {
                0.8 * self.gap_secs + 0.2 * gap
            };
        }
        self.last_at = Some(at_secs);
        self.calls = self.calls.saturating_add(1);
        if self.run > 0 {
            self.after_failure_failed *= PERSISTENCE_MEMORY;
            self.after_failure_ok *= PERSISTENCE_MEMORY;
            if outcome.failed() {
                self.after_failure_failed += 1.0;
            } else {
                self.after_failure_ok += 1.0;
            }
        }
        self.run = if outcome.failed() {
            self.run.saturating_add(1)
        } else {
            0
        };
        let failed_otherwise = matches!(outcome, Outcome::Failed { .. });
        self.error_rate = if self.calls == 1 {
            f64::from(u8::from(failed_otherwise))
        } else {
            (1.0 - config.error_alpha) * self.error_rate
                + config.error_alpha * f64::from(u8::from(failed_otherwise))
        };
        // A call that failed otherwise says nothing about slowness.
        let latency = match outcome {
            Outcome::Ok { latency_ms } => Some(sane(latency_ms).clamp(1.0, timeout).ln()),
            Outcome::TimedOut => Some(self.beyond_timeout(timeout, config)),
            Outcome::Failed { .. } => None,
        };
        if let Some(x) = latency {
            self.smooth(x, config);
        }
    }

    /// The forecast after the calls taken so far (`None` before `min_observations` calls),
    /// kept as [`Forecaster::latest`].
    pub fn refresh(&mut self, limits: Limits, config: &ForecastConfig) -> Option<Forecast> {
        if self.calls < config.min_observations || self.latency_calls == 0 {
            self.last = None;
            return None;
        }
        let at_secs = self.last_at.unwrap_or(0.0);
        let forecast = self.forecast(at_secs, limits, config);
        self.last = Some(forecast.clone());
        Some(forecast)
    }

    /// The forecast after the latest call (`None` before `min_observations` calls).
    pub fn latest(&self) -> Option<&Forecast> {
        self.last.as_ref()
    }

    /// What a timed-out call's latency probably was (log ms): it is only known to be at least
    /// the timeout, so the forecast's mean given that (a normal tail's mean: the forecast plus
    /// the spread times the inverse Mills ratio), at most three times the timeout. Taking the
    /// timeout itself would hold the level below the timeout forever, and with it the forecast
    /// of checks timing out.
    fn beyond_timeout(&self, timeout: f64, config: &ForecastConfig) -> f64 {
        let limit = timeout.ln();
        if self.latency_calls == 0 {
            return limit;
        }
        let predicted = self.level + config.damping * self.trend;
        let sd = self.spread.sqrt();
        let a = (limit - predicted) / sd;
        let tail = 1.0 - normal_cdf(a);
        // Far in the tail the ratio tends to `a` (and the division would lose precision).
        let mills = if tail > 1e-9 {
            (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt() / tail
        } else {
            a.max(0.0)
        };
        (predicted + sd * mills).clamp(limit, limit + 3f64.ln())
    }

    /// One latency (log ms) into the level, trend and spread: Holt's damped trend method, with
    /// each forecast error clipped to `outlier_clip` spreads (a robust variant: one slow call
    /// in a noisy series moves the trend a little, a series of them as much as it needs).
    fn smooth(&mut self, x: f64, config: &ForecastConfig) {
        self.latency_calls = self.latency_calls.saturating_add(1);
        if self.latency_calls == 1 {
            self.level = x;
            self.trend = 0.0;
            self.spread = INITIAL_SPREAD;
            return;
        }
        let predicted = self.level + config.damping * self.trend;
        let bound = config.outlier_clip * self.spread.sqrt();
        let error = (x - predicted).clamp(-bound, bound);
        let level = predicted + config.level_alpha * error;
        self.trend = config.trend_beta * (level - self.level)
            + (1.0 - config.trend_beta) * config.damping * self.trend;
        self.level = level;
        self.spread = ((1.0 - config.spread_gamma) * self.spread
            + config.spread_gamma * error * error)
            .max(MIN_SPREAD);
    }

    /// The chance that a call right after a failure fails too: the observed share with one
    /// imagined failure and three imagined successes (so 0.25 before any evidence: a first
    /// failure is more often alone than the start of an outage).
    fn persistence(&self) -> f64 {
        (self.after_failure_failed + 1.0)
            / (self.after_failure_failed + self.after_failure_ok + 4.0)
    }

    /// Each of the next `calls` calls' chance to fail, from the damped-trend forecast of the
    /// (log) latency against the timeout and the smoothed error rate.
    fn failure_chances(&self, limits: Limits, config: &ForecastConfig, calls: u32) -> Vec<f64> {
        let limit = limits.timeout_ms.max(1.0).ln();
        let sd = self.spread.sqrt();
        let mut out = Vec::with_capacity(calls as usize);
        let (mut damp, mut cumulative) = (1.0, 0.0);
        for h in 1..=calls {
            damp *= config.damping;
            cumulative += damp;
            let mean = self.level + self.trend * cumulative;
            // The spread of a forecast h calls ahead grows with h (simple exponential
            // smoothing's forecast variance), up to `SPREAD_GROWTH_CALLS` calls ahead: with
            // checks every few hundred ms the horizon is hundreds of calls, over which that
            // formula would make any service's timeout look near.
            let ahead = f64::from(h.min(SPREAD_GROWTH_CALLS) - 1);
            let sd_h = sd * (1.0 + ahead * config.level_alpha.powi(2)).sqrt();
            let slow = 1.0 - normal_cdf((limit - mean) / sd_h);
            out.push(1.0 - (1.0 - self.error_rate) * (1.0 - slow));
        }
        out
    }

    fn forecast(&mut self, at_secs: f64, limits: Limits, config: &ForecastConfig) -> Forecast {
        let gap = if self.gap_secs > 0.0 {
            self.gap_secs
        } else {
            1.0
        };
        // The horizon, in calls, at most the lookahead: over thousands of calls (a busy agent
        // domain) any failure rate at all would make a run of failures certain somewhere.
        let lookahead = config.lookahead_calls.max(1);
        let horizon_calls = ((config.horizon_secs / gap).ceil() as u32).clamp(1, lookahead);
        let chances = self.failure_chances(limits, config, lookahead);
        let k = limits.failure_threshold.max(1);
        let by_call = trip_by_call(&chances, self.persistence(), self.run, k);
        let trip_probability = by_call[horizon_calls as usize - 1];
        let seconds_to_trip = by_call
            .iter()
            .position(|p| *p >= 0.5)
            .map(|i| (i as f64 + 1.0) * gap);
        let timeout = limits.timeout_ms.max(1.0);
        let limit = timeout.ln();
        let seconds_to_timeout = if self.level >= limit {
            Some(0.0)
        } else {
            let (mut damp, mut cumulative) = (1.0, 0.0);
            (1..=lookahead).find_map(|h| {
                damp *= config.damping;
                cumulative += damp;
                (self.level + self.trend * cumulative >= limit).then_some(f64::from(h) * gap)
            })
        };
        if trip_probability >= config.warn_probability {
            self.warning = true;
            self.warned_at = at_secs;
        } else if self.warning
            && trip_probability < config.clear_probability
            && at_secs - self.warned_at >= config.hold_secs
        {
            self.warning = false;
        }
        let latency = self.level.exp();
        // d/dt e^level = e^level · dlevel/dt.
        let trend_per_min = latency * self.trend / gap * 60.0;
        let reason = self.warning.then(|| {
            let when = match seconds_to_trip {
                Some(s) => format!("likely within ~{} s", s.round() as u64),
                None => "possible".to_string(),
            };
            let why = if self.error_rate >= 0.3 {
                format!(
                    "{} consecutive failures, error rate {:.0} %",
                    self.run,
                    100.0 * self.error_rate
                )
            } else {
                format!(
                    "latency {latency:.0} ms, {trend_per_min:+.0} ms/min, toward the {timeout:.0} ms timeout"
                )
            };
            format!(
                "a circuit trip is {when} ({:.0} % within {} s): {why}",
                100.0 * trip_probability,
                config.horizon_secs.round() as u64
            )
        });
        Forecast {
            latency_ms: latency,
            latency_trend_ms_per_min: trend_per_min,
            error_rate: self.error_rate,
            consecutive_failures: self.run,
            seconds_to_timeout,
            seconds_to_trip,
            trip_probability,
            horizon_secs: config.horizon_secs,
            warning: self.warning,
            reason,
        }
    }
}

fn sane(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        0.0
    }
}

/// How much of the evidence about runs of failures each new call right after a failure keeps
/// (about the last 20 such calls count).
const PERSISTENCE_MEMORY: f64 = 0.95;

/// The probability that a run of `k` consecutive failures is complete by each of the next
/// calls, given that the current run is `run` long, that call `i` fails with `chances[i]`
/// after a success and with at least `persistence` after a failure. Dynamic programming over
/// the run length: state `r` < `k` is "the current run is `r` long", and reaching `k` is
/// absorbing (the breaker tripped).
pub fn trip_by_call(chances: &[f64], persistence: f64, run: u32, k: u32) -> Vec<f64> {
    let k = k.max(1) as usize;
    if run as usize >= k {
        return vec![1.0; chances.len()];
    }
    let mut state = vec![0.0; k];
    state[run as usize] = 1.0;
    let mut tripped = 0.0;
    let mut out = Vec::with_capacity(chances.len());
    let mut next = vec![0.0; k];
    for &p in chances {
        let p = p.clamp(0.0, 1.0);
        let after_failure = p.max(persistence.clamp(0.0, 1.0));
        next.iter_mut().for_each(|x| *x = 0.0);
        for (r, &mass) in state.iter().enumerate() {
            if mass == 0.0 {
                continue;
            }
            let p = if r == 0 { p } else { after_failure };
            next[0] += mass * (1.0 - p);
            if r + 1 == k {
                tripped += mass * p;
            } else {
                next[r + 1] += mass * p;
            }
        }
        std::mem::swap(&mut state, &mut next);
        out.push(tripped.min(1.0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        timeout_ms: 3_000.0,
        failure_threshold: 5,
    };

    fn feed(f: &mut Forecaster, calls: impl IntoIterator<Item = Outcome>) -> Option<Forecast> {
        let config = ForecastConfig::default();
        let mut last = None;
        for o in calls {
            let at = f.last_at.map_or(0.0, |t| t + 5.0);
            last = f.observe(at, o, LIMITS, &config);
        }
        last
    }

    fn ok(ms: f64) -> Outcome {
        Outcome::Ok { latency_ms: ms }
    }

    #[test]
    fn a_run_of_k_certain_failures_trips_at_the_kth_call() {
        let by = trip_by_call(&[1.0; 6], 0.0, 0, 5);
        assert_eq!(by, vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
        // Two failures already: three more.
        let by = trip_by_call(&[1.0; 4], 0.0, 2, 5);
        assert_eq!(by, vec![0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn a_run_already_at_the_threshold_has_tripped() {
        assert_eq!(trip_by_call(&[0.0; 3], 0.0, 5, 5), vec![1.0; 3]);
    }

    #[test]
    fn trip_probability_matches_the_closed_form_for_a_short_window() {
        // With k calls left, a trip needs every one of them to fail: p^k.
        let p: f64 = 0.6;
        let by = trip_by_call(&[p; 3], 0.0, 0, 3);
        assert!((by[2] - p.powi(3)).abs() < 1e-12);
        // Four calls, k = 3: FFF? or ?FFF with the first succeeding: p^3 + (1-p) p^3.
        let by = trip_by_call(&[p; 4], 0.0, 0, 3);
        assert!((by[3] - (p.powi(3) + (1.0 - p) * p.powi(3))).abs() < 1e-12);
    }

    #[test]
    fn calls_that_never_fail_never_trip() {
        let by = trip_by_call(&[0.0; 100], 0.0, 4, 5);
        assert!(by.iter().all(|p| *p == 0.0));
    }

    #[test]
    fn failures_that_come_in_runs_make_the_next_failure_likelier() {
        // Calls rarely fail (10 %), but a failure is followed by another 90 % of the time.
        let alone = trip_by_call(&[0.1; 10], 0.1, 1, 5)[9];
        let in_runs = trip_by_call(&[0.1; 10], 0.9, 1, 5)[9];
        assert!(alone < 0.01 && in_runs > 0.6, "{alone} {in_runs}");
    }

    #[test]
    fn nothing_is_forecast_before_the_minimum_number_of_calls() {
        let mut f = Forecaster::new();
        assert!(feed(&mut f, (0..5).map(|_| ok(100.0))).is_none());
        assert!(f.latest().is_none());
        assert!(feed(&mut f, [ok(100.0)]).is_some());
    }

    #[test]
    fn a_steady_fast_service_forecasts_no_trip() {
        let mut f = Forecaster::new();
        let fc = feed(&mut f, (0..200).map(|i| ok(100.0 + (i % 7) as f64 * 5.0))).unwrap();
        assert!(fc.trip_probability < 1e-6, "{fc:?}");
        assert!(!fc.warning);
        assert_eq!(fc.seconds_to_trip, None);
        assert!((fc.latency_ms - 115.0).abs() < 20.0, "{fc:?}");
        assert!(fc.latency_trend_ms_per_min.abs() < 10.0, "{fc:?}");
    }

    #[test]
    fn latency_rising_toward_the_timeout_warns_before_checks_time_out() {
        // 100 ms rising 30 ms per call (every 5 s: 360 ms/min): the timeout of 3 s is reached
        // at call ~97. The warning must come while every call still answers in time.
        let mut f = Forecaster::new();
        let mut warned_at = None;
        let config = ForecastConfig::default();
        for i in 0..97 {
            let fc = f.observe(5.0 * i as f64, ok(100.0 + 30.0 * i as f64), LIMITS, &config);
            if warned_at.is_none() && fc.as_ref().is_some_and(|f| f.warning) {
                warned_at = Some(i);
            }
        }
        let at = warned_at.expect("a warning before the first timeout");
        // The trip comes at call ~101 (5 timeouts in a row): at least 30 s (6 calls) ahead.
        assert!(at <= 101 - 6, "warned at call {at}");
        let fc = f.latest().unwrap();
        assert!(fc.latency_trend_ms_per_min > 200.0, "{fc:?}");
        assert!(fc.seconds_to_timeout.is_some_and(|s| s < 60.0), "{fc:?}");
        assert!(fc.reason.as_deref().unwrap().contains("timeout"), "{fc:?}");
    }

    #[test]
    fn consecutive_errors_raise_the_trip_probability_call_by_call() {
        let mut f = Forecaster::new();
        feed(&mut f, (0..30).map(|_| ok(100.0)));
        let mut last = 0.0;
        for n in 1..=4 {
            let fc = f
                .observe(
                    150.0 + 5.0 * n as f64,
                    Outcome::Failed { latency_ms: 1.0 },
                    LIMITS,
                    &ForecastConfig::default(),
                )
                .unwrap();
            assert_eq!(fc.consecutive_failures, n);
            assert!(fc.trip_probability > last, "{n}: {fc:?}");
            last = fc.trip_probability;
        }
        // One failure short of the threshold with a 59 % error rate: a trip is likely.
        assert!(last > 0.5, "{last}");
        let fc = f.latest().unwrap();
        assert!(fc.warning && fc.reason.as_deref().unwrap().contains("consecutive"));
    }

    #[test]
    fn a_warning_clears_only_below_the_lower_threshold_and_after_the_hold() {
        let mut f = Forecaster::new();
        feed(&mut f, (0..30).map(|_| ok(100.0)));
        let config = ForecastConfig::default();
        let mut last_high = 0.0;
        for n in 0..4 {
            let at = 150.0 + 5.0 * n as f64;
            let fc = f
                .observe(at, Outcome::Failed { latency_ms: 1.0 }, LIMITS, &config)
                .unwrap();
            if fc.trip_probability >= config.warn_probability {
                last_high = at;
            }
        }
        assert!(f.latest().unwrap().warning);
        // Successes end the run and bring the error rate down; the warning holds until the
        // probability is below the lower threshold and the hold has passed since it was high.
        let mut cleared = None;
        for n in 0..100 {
            let at = 170.0 + 5.0 * n as f64;
            let fc = f.observe(at, ok(100.0), LIMITS, &config).unwrap();
            if fc.trip_probability >= config.warn_probability {
                last_high = at;
            }
            let may_clear = fc.trip_probability < config.clear_probability
                && at - last_high >= config.hold_secs;
            assert_eq!(fc.warning, !may_clear, "at {at}: {fc:?}");
            if !fc.warning {
                cleared = Some(at);
                break;
            }
        }
        assert!(cleared.is_some_and(|at| at - last_high >= config.hold_secs));
    }

    #[test]
    fn timeouts_count_as_failures_and_push_the_level_to_the_timeout() {
        let mut f = Forecaster::new();
        feed(&mut f, (0..20).map(|_| ok(2_000.0)));
        let fc = feed(&mut f, (0..3).map(|_| Outcome::TimedOut)).unwrap();
        assert_eq!(fc.consecutive_failures, 3);
        assert!(fc.latency_ms > 2_400.0, "{fc:?}");
        assert_eq!(fc.error_rate, 0.0, "timeouts are slowness, not errors");
        // The fourth timeout in a row, one before the trip, warns.
        let fc = feed(&mut f, [Outcome::TimedOut]).unwrap();
        assert!(fc.warning, "{fc:?}");
    }

    #[test]
    fn odd_input_is_clamped() {
        let mut f = Forecaster::new();
        let fc = feed(
            &mut f,
            [f64::NAN, -5.0, f64::INFINITY, 100.0, 100.0, 100.0, 100.0].map(ok),
        )
        .unwrap();
        assert!(fc.latency_ms.is_finite() && fc.trip_probability.is_finite());
    }
}
