//! Learned timeouts, and a warning when a configured timeout cuts off runs that would succeed.
//!
//! The learned timeout is `clamp(q · (1 + margin), min, max)` where `q` is a high quantile
//! (default p99) of *successful* durations taken from the [`DurationSketch`]: failures are left
//! out because a fast crash says nothing about how long a good run needs, and timeouts are left
//! out because their duration is the old limit, not the run's.
//!
//! Why a margin: successful durations are *censored* at the timeout in force — a run that would
//! have taken 35 s under a 30 s limit is recorded as a timeout, not as a 35 s success. With a
//! margin of 50 %, a distribution whose successes pile up near the limit pushes the next timeout
//! above it, the previously cut-off runs start succeeding and being counted, and the timeout
//! settles where the tail really is. Without a margin it would never grow.
//!
//! Why per parameter value: durations usually depend on the parameters (a "high quality" render
//! takes twice as long as a "standard" one). One timeout for the whole domain/action, learned
//! from whatever ran most, cuts off the slower values and makes them look worse than they are —
//! a feedback loop that locks in the fast values. [`learned_timeout_for`] therefore takes the
//! learned timeout of each parameter value of the run (from the successful runs with that value)
//! and uses the largest. While any value of the run has too few successful runs of its own, it
//! learns nothing (`None`) and the configured timeout applies: the learner does not know how
//! long such a run needs, and a timeout learned from other values would cut it short before
//! its success rate is even known (in the simulation that starved the best quality setting).
//!
//! [`timeout_warning`] tells an operator that a configured timeout is too short, from two kinds
//! of evidence: successful runs that took longer than it (from periods with a longer limit), or
//! timeouts together with successes that crowd just under the limit (the tail is being cut off).

use serde::{Deserialize, Serialize};

use serde_json::{Map, Value};

use crate::aggregates::{learned_keys, Aggregates};
use crate::sketch::DurationSketch;

/// How the learned timeout is derived. Invalid numbers (NaN, negative) fall back to the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TimeoutPolicy {
    /// The quantile of successful durations to start from (default 0.99).
    pub quantile: f64,
    /// The relative margin added on top (default 0.5, i.e. × 1.5).
    pub margin: f64,
    /// The smallest timeout ever learned, in ms (default 1 000).
    pub min_ms: u64,
    /// The largest timeout ever learned, in ms (default 600 000).
    pub max_ms: u64,
    /// Successful runs needed before a timeout is learned (default 20).
    pub min_samples: u64,
    /// The share of runs above which the warning fires (default 0.01, i.e. 1 %).
    pub warn_share: f64,
    /// Successes above this fraction of the configured timeout count as "near the limit"
    /// (default 0.9).
    pub near_limit_fraction: f64,
}

impl Default for TimeoutPolicy {
    fn default() -> Self {
        TimeoutPolicy {
            quantile: 0.99,
            margin: 0.5,
            min_ms: 1_000,
            max_ms: 600_000,
            min_samples: 20,
            warn_share: 0.01,
            near_limit_fraction: 0.9,
        }
    }
}

impl TimeoutPolicy {
    fn sanitized(&self) -> TimeoutPolicy {
        let defaults = TimeoutPolicy::default();
        let in_unit = |x: f64, fallback: f64| {
            if (0.0..=1.0).contains(&x) {
                x
            } else {
                fallback
            }
        };
        TimeoutPolicy {
            quantile: in_unit(self.quantile, defaults.quantile),
            margin: if self.margin.is_finite() && self.margin >= 0.0 {
                self.margin
            } else {
                defaults.margin
            },
            min_ms: self.min_ms.min(self.max_ms),
            max_ms: self.max_ms.max(self.min_ms),
            min_samples: self.min_samples.max(1),
            warn_share: in_unit(self.warn_share, defaults.warn_share),
            near_limit_fraction: in_unit(self.near_limit_fraction, defaults.near_limit_fraction),
        }
    }
}

/// The learned timeout in ms from successful durations, or `None` with fewer than
/// `policy.min_samples` successes. See the [module docs](self).
pub fn learned_timeout(
    successful_durations: &DurationSketch,
    policy: &TimeoutPolicy,
) -> Option<u64> {
    let policy = policy.sanitized();
    if successful_durations.count() < policy.min_samples {
        return None;
    }
    let quantile = successful_durations.quantile(policy.quantile)? as f64;
    let with_margin = (quantile * (1.0 + policy.margin)).ceil();
    let bounded = if with_margin >= policy.max_ms as f64 {
        policy.max_ms
    } else {
        (with_margin as u64).max(policy.min_ms)
    };
    Some(bounded)
}

/// The learned timeout for a run with these parameters: the largest of the learned timeouts of
/// its parameter values; for a run without learned parameters, the domain/action-wide one.
/// `None` — use the configured timeout — while any of its values has fewer than
/// `policy.min_samples` successful runs (see the [module docs](self)).
pub fn learned_timeout_for(
    aggregates: &Aggregates,
    parameters: &Map<String, Value>,
    policy: &TimeoutPolicy,
) -> Option<u64> {
    let keys = learned_keys(parameters);
    if keys.is_empty() {
        return learned_timeout(&aggregates.successful_durations, policy);
    }
    let mut slowest = 0;
    for (name, key) in keys {
        let stats = aggregates.value_stats(&name, &key)?;
        slowest = slowest.max(learned_timeout(&stats.successful_durations, policy)?);
    }
    Some(slowest)
}

/// Why [`learned_timeout_for`] learns no timeout for a run with these parameters, in a sentence
/// for the operator: how many successful runs there are and how many are needed (of the
/// domain/action, or of the parameter value with the fewest); `None` when a timeout is learned.
pub fn why_no_learned_timeout(
    aggregates: &Aggregates,
    parameters: &Map<String, Value>,
    policy: &TimeoutPolicy,
) -> Option<String> {
    if learned_timeout_for(aggregates, parameters, policy).is_some() {
        return None;
    }
    let need = policy.sanitized().min_samples;
    let keys = learned_keys(parameters);
    let fewest = keys
        .into_iter()
        .map(|(name, key)| {
            let have = aggregates
                .value_stats(&name, &key)
                .map_or(0, |s| s.successful_durations.count());
            (name, key, have)
        })
        .filter(|(_, _, have)| *have < need)
        .min_by_key(|(_, _, have)| *have);
    let why = match fewest {
        Some((name, _, have)) => format!(
            "no learned timeout yet for these parameters: {name}={} has {have} successful \
             runs, {need} are needed (a timeout is learned per parameter value)",
            parameters.get(&name).unwrap_or(&Value::Null)
        ),
        None => format!(
            "no learned timeout yet: {} successful runs, {need} are needed",
            aggregates.successful_durations.count()
        ),
    };
    Some(format!(
        "{why}; failed and timed-out runs do not count; until then tasks use the configured \
         timeout"
    ))
}

/// Evidence that a configured timeout cuts off runs that would have succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutWarning {
    /// The timeout in force, in ms.
    pub configured_ms: u64,
    /// The timeout the learner would use, if it has enough data.
    pub learned_ms: Option<u64>,
    /// Share of successful runs that took longer than the configured timeout.
    pub successful_above_share: f64,
    /// Share of successful runs that took more than `near_limit_fraction` of it.
    pub near_limit_share: f64,
    /// Runs cut off by a timeout.
    pub timed_out_runs: u64,
    /// Share of all runs cut off by a timeout.
    pub timed_out_share: f64,
    /// A sentence for the operator.
    pub message: String,
}

/// A warning when `configured_ms` is too short for this domain/action, or `None`.
///
/// It fires when either (a) more than `warn_share` of successful runs took longer than
/// `configured_ms`, or (b) more than `warn_share` of all runs timed out *and* more than
/// `warn_share` of successful runs finished within the last `1 − near_limit_fraction` of the
/// limit — successes crowding under the limit while others hit it means the limit cuts into the
/// distribution rather than catching hung runs.
pub fn timeout_warning(
    aggregates: &Aggregates,
    configured_ms: u64,
    policy: &TimeoutPolicy,
) -> Option<TimeoutWarning> {
    let policy = policy.sanitized();
    let successes = &aggregates.successful_durations;
    let runs = aggregates.total.runs;
    if runs == 0 {
        return None;
    }
    let successful_above_share = successes.share_above(configured_ms);
    let near_limit_ms = (configured_ms as f64 * policy.near_limit_fraction).floor() as u64;
    let near_limit_share = successes.share_above(near_limit_ms);
    let timed_out_runs = aggregates.total.timed_out;
    let timed_out_share = timed_out_runs as f64 / runs as f64;
    let learned_ms = learned_timeout(successes, &policy);

    let above = successful_above_share > policy.warn_share;
    let cut_tail = timed_out_share > policy.warn_share && near_limit_share > policy.warn_share;
    if !above && !cut_tail {
        return None;
    }
    let suggestion = match learned_ms {
        Some(learned) if learned > configured_ms => {
            format!("; the learned timeout is {learned} ms")
        }
        _ => String::new(),
    };
    let message = if above {
        format!(
            "the timeout of {configured_ms} ms is shorter than {:.1}% of successful runs{suggestion}",
            successful_above_share * 100.0
        )
    } else {
        format!(
            "{:.1}% of runs hit the timeout of {configured_ms} ms while {:.1}% of successful runs \
             finished just under it; it is probably cutting off runs that would succeed{suggestion}",
            timed_out_share * 100.0,
            near_limit_share * 100.0
        )
    };
    Some(TimeoutWarning {
        configured_ms,
        learned_ms,
        successful_above_share,
        near_limit_share,
        timed_out_runs,
        timed_out_share,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregates::Execution;
    use serde_json::Map;

    fn sketch_of(values: impl IntoIterator<Item = u64>) -> DurationSketch {
        let mut sketch = DurationSketch::new();
        values.into_iter().for_each(|v| sketch.add(v));
        sketch
    }

    fn run(success: bool, duration_ms: u64, timed_out: bool) -> Execution {
        Execution {
            parameters: Map::new(),
            success,
            duration_ms,
            impact_score: None,
            failure_reason: None,
            cost_usd: None,
            timed_out,
        }
    }

    #[test]
    fn the_reason_for_no_learned_timeout_counts_successful_runs() {
        let policy = TimeoutPolicy::default();
        let mut a = Aggregates::default();
        fn bpm(a: &mut Aggregates, v: u64, success: bool) {
            let mut e = run(success, 2_000, !success);
            e.parameters.insert("bpm".into(), v.into());
            a.observe(&e);
        }
        // 61 runs, 19 of them successful.
        for i in 0..61 {
            bpm(&mut a, 120, i < 19);
        }
        let none = Map::new();
        assert_eq!(
            why_no_learned_timeout(&a, &none, &policy).unwrap(),
            "no learned timeout yet: 19 successful runs, 20 are needed; failed and timed-out \
             runs do not count; until then tasks use the configured timeout"
        );
        bpm(&mut a, 120, true);
        assert_eq!(why_no_learned_timeout(&a, &none, &policy), None);
        // Per value: 140 has 3 successful runs of its own.
        for _ in 0..3 {
            bpm(&mut a, 140, true);
        }
        let mut p = Map::new();
        p.insert("bpm".into(), 140.into());
        let why = why_no_learned_timeout(&a, &p, &policy).unwrap();
        assert!(
            why.starts_with(
                "no learned timeout yet for these parameters: bpm=140 has 3 successful runs, \
                 20 are needed"
            ),
            "{why}"
        );
        p.insert("bpm".into(), 120.into());
        assert_eq!(why_no_learned_timeout(&a, &p, &policy), None);
    }

    #[test]
    fn learned_timeout_known_answers() {
        let policy = TimeoutPolicy::default();
        // p99 of 1..=100 s is 99 s (within 1 %), × 1.5 ≈ 148.5 s.
        let sketch = sketch_of((1..=100).map(|s| s * 1000));
        let timeout = learned_timeout(&sketch, &policy).unwrap();
        assert!((146_000..=151_000).contains(&timeout), "{timeout}");
        // Too few samples: nothing learned.
        assert_eq!(learned_timeout(&sketch_of([5_000; 19]), &policy), None);
        // Ties: all equal durations give exactly that × 1.5.
        assert_eq!(
            learned_timeout(&sketch_of([4_000; 20]), &policy),
            Some(6_000)
        );
        // Bounds.
        assert_eq!(learned_timeout(&sketch_of([10; 50]), &policy), Some(1_000));
        assert_eq!(
            learned_timeout(&sketch_of([10_000_000; 50]), &policy),
            Some(600_000)
        );
        assert_eq!(learned_timeout(&DurationSketch::new(), &policy), None);
    }

    #[test]
    fn invalid_policy_values_fall_back() {
        let policy = TimeoutPolicy {
            quantile: f64::NAN,
            margin: -1.0,
            min_ms: 9_000,
            max_ms: 2_000,
            min_samples: 0,
            warn_share: 7.0,
            near_limit_fraction: f64::INFINITY,
        };
        let timeout = learned_timeout(&sketch_of([4_000; 20]), &policy).unwrap();
        // min and max swapped into [2 000, 9 000]; margin back to 0.5.
        assert_eq!(timeout, 6_000);
    }

    #[test]
    fn warning_when_successes_exceed_the_limit() {
        let mut aggregates = Aggregates::new();
        for d in 1..=100 {
            aggregates.observe(&run(true, d * 1_000, false));
        }
        let warning = timeout_warning(&aggregates, 60_000, &TimeoutPolicy::default()).unwrap();
        assert!((warning.successful_above_share - 0.4).abs() < 0.02);
        assert!(warning.message.contains("60000 ms"));
        assert!(timeout_warning(&aggregates, 200_000, &TimeoutPolicy::default()).is_none());
    }

    #[test]
    fn warning_when_the_tail_is_cut_off() {
        let mut aggregates = Aggregates::new();
        // Successes spread up to the 30 s limit, 10 % of runs cut off at it.
        for d in 0..90 {
            aggregates.observe(&run(true, 10_000 + d * 222, false));
        }
        for _ in 0..10 {
            aggregates.observe(&run(false, 30_000, true));
        }
        let warning = timeout_warning(&aggregates, 30_000, &TimeoutPolicy::default()).unwrap();
        assert_eq!(warning.timed_out_runs, 10);
        assert!(warning.near_limit_share > 0.05);
        assert_eq!(warning.successful_above_share, 0.0);

        // Hung runs far from the successes are what a timeout is for: no warning.
        let mut healthy = Aggregates::new();
        for _ in 0..90 {
            healthy.observe(&run(true, 2_000, false));
        }
        for _ in 0..10 {
            healthy.observe(&run(false, 30_000, true));
        }
        assert!(timeout_warning(&healthy, 30_000, &TimeoutPolicy::default()).is_none());
        assert!(timeout_warning(&Aggregates::new(), 30_000, &TimeoutPolicy::default()).is_none());
    }
}
