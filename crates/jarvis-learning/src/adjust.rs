//! Per-value evidence adjusted for the other parameters of the same runs.
//!
//! Plain marginal statistics are confounded by what a value happened to be run *with*: a value
//! tried mostly in the first, exploratory tasks (next to bad genres and tempos) looks worse than
//! one tried later next to good ones, and a factored learner would keep avoiding it. The
//! combination statistics in [`Aggregates::combinations`] hold the full table of outcomes per
//! combination, which is enough to correct for that.
//!
//! The correction fits a multiplicative (log-linear) model
//! `rate(combination) = μ × Π_parameters f(value)` to the table by iterative proportional
//! fitting — each factor in turn is set to observed / expected successes of its value, given the
//! current factors of the other values of each run — and normalises every parameter's factors to
//! a run-weighted mean of 1. `μ × f(value)` is then the value's success rate *next to average
//! companions*, and the value's evidence becomes `runs × μ × f(value)` successes out of its runs.
//! The same is done for the impact score (impact fraction per successful run with a score).
//! This keeps the factored learner's speed while removing most of the confounding; it is
//! computed at decision time, so the stored aggregates stay plain, exact counters.

use std::collections::BTreeMap;

use crate::aggregates::{Aggregates, OutcomeStats};
use crate::estimate::{wilson_interval, BetaPosterior, Interval};
use crate::value_key::ValueKey;

/// Rounds of iterative proportional fitting (each visits every parameter once). The fit is used
/// for ranking, not reported as a model, so a fixed small number of rounds is enough.
const ROUNDS: usize = 10;

/// Possibly fractional evidence about one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Evidence {
    pub runs: f64,
    pub successes: f64,
    pub impact_runs: f64,
    /// The sum of impact fractions (impact / 100).
    pub impact_sum: f64,
}

impl Evidence {
    pub fn of(outcome: &OutcomeStats) -> Self {
        Evidence {
            runs: outcome.runs as f64,
            successes: outcome.successes as f64,
            impact_runs: outcome.impact_runs as f64,
            impact_sum: outcome.impact_milli_sum as f64 / 100_000.0,
        }
    }

    pub fn success_posterior(&self) -> BetaPosterior {
        BetaPosterior::from_fractional(self.successes, self.runs)
    }

    pub fn impact_posterior(&self) -> BetaPosterior {
        BetaPosterior::from_fractional(self.impact_sum, self.impact_runs)
    }

    pub fn success_rate(&self) -> f64 {
        if self.runs > 0.0 {
            (self.successes / self.runs).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// The Wilson interval with the (rounded) adjusted number of successes.
    pub fn success_interval(&self, z: f64) -> Interval {
        wilson_interval(self.successes.round() as u64, self.runs.round() as u64, z)
    }
}

/// Evidence per parameter name and value key.
pub(crate) type EvidenceMap = BTreeMap<String, BTreeMap<ValueKey, Evidence>>;

/// The adjusted evidence of every value (see the [module docs](self)); values that never occur
/// in a recorded combination keep their plain marginal evidence.
pub(crate) fn adjusted_evidence(aggregates: &Aggregates) -> EvidenceMap {
    let mut evidence: EvidenceMap = aggregates
        .parameters
        .iter()
        .map(|(name, values)| {
            let values = values
                .iter()
                .map(|(key, stats)| (key.clone(), Evidence::of(&stats.outcome)))
                .collect();
            (name.clone(), values)
        })
        .collect();

    // Index the table: parameters and values as small integers.
    let mut names: Vec<String> = Vec::new();
    let mut keys: Vec<Vec<ValueKey>> = Vec::new();
    let mut rows: Vec<(Vec<(usize, usize)>, OutcomeStats)> = Vec::new();
    for (combination, stats) in &aggregates.combinations {
        let mut cells = Vec::new();
        for (name, key) in combination.pairs() {
            let p = match names.iter().position(|n| *n == name) {
                Some(p) => p,
                None => {
                    names.push(name);
                    keys.push(Vec::new());
                    names.len() - 1
                }
            };
            let v = match keys[p].iter().position(|k| *k == key) {
                Some(v) => v,
                None => {
                    keys[p].push(key);
                    keys[p].len() - 1
                }
            };
            cells.push((p, v));
        }
        rows.push((cells, *stats));
    }
    if rows.is_empty() {
        return evidence;
    }

    let shape: Vec<usize> = keys.iter().map(Vec::len).collect();
    let (success_mu, success_factors) = fit(&rows, &shape, |s| (s.runs as f64, s.successes as f64));
    let (impact_mu, impact_factors) = fit(&rows, &shape, |s| {
        (s.impact_runs as f64, s.impact_milli_sum as f64 / 100_000.0)
    });
    for (p, name) in names.iter().enumerate() {
        for (v, key) in keys[p].iter().enumerate() {
            if let Some(e) = evidence
                .get_mut(name)
                .and_then(|values| values.get_mut(key))
            {
                e.successes = e.runs * (success_mu * success_factors[p][v]).clamp(0.0, 1.0);
                e.impact_sum = e.impact_runs * (impact_mu * impact_factors[p][v]).clamp(0.0, 1.0);
            }
        }
    }
    evidence
}

/// Fits `rate = μ × Π f[p][v]` to rows of (cells, stats) where `extract` gives (trials, hits).
fn fit(
    rows: &[(Vec<(usize, usize)>, OutcomeStats)],
    shape: &[usize],
    extract: impl Fn(&OutcomeStats) -> (f64, f64),
) -> (f64, Vec<Vec<f64>>) {
    let mut factors: Vec<Vec<f64>> = shape.iter().map(|&n| vec![1.0; n]).collect();
    let (trials, hits) = rows.iter().fold((0.0, 0.0), |(t, h), (_, stats)| {
        let (rt, rh) = extract(stats);
        (t + rt, h + rh)
    });
    if trials <= 0.0 {
        return (0.0, factors);
    }
    let mut mu = hits / trials;
    for _ in 0..ROUNDS {
        for p in 0..shape.len() {
            let mut observed = vec![0.0; shape[p]];
            let mut expected = vec![0.0; shape[p]];
            let mut weight = vec![0.0; shape[p]];
            for (cells, stats) in rows {
                let Some(&(_, v)) = cells.iter().find(|(q, _)| *q == p) else {
                    continue;
                };
                let (row_trials, row_hits) = extract(stats);
                let others: f64 = cells
                    .iter()
                    .filter(|(q, _)| *q != p)
                    .map(|&(q, u)| factors[q][u])
                    .product();
                observed[v] += row_hits;
                expected[v] += row_trials * mu * others;
                weight[v] += row_trials;
            }
            for v in 0..shape[p] {
                if expected[v] > 0.0 {
                    factors[p][v] = observed[v] / expected[v];
                }
            }
            // Normalise to a run-weighted mean of 1, moving the scale into μ.
            let total_weight: f64 = weight.iter().sum();
            let mean: f64 = factors[p]
                .iter()
                .zip(&weight)
                .map(|(f, w)| f * w)
                .sum::<f64>()
                / total_weight.max(f64::MIN_POSITIVE);
            if mean > 0.0 && mean.is_finite() {
                factors[p].iter_mut().for_each(|f| *f /= mean);
                mu *= mean;
            }
        }
    }
    (mu, factors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregates::Execution;
    use serde_json::json;

    fn observe_n(
        aggregates: &mut Aggregates,
        parameters: serde_json::Value,
        successes: usize,
        failures: usize,
    ) {
        let parameters = parameters.as_object().cloned().unwrap();
        for i in 0..successes + failures {
            aggregates.observe(&Execution {
                parameters: parameters.clone(),
                success: i < successes,
                duration_ms: 10,
                impact_score: (i < successes).then_some(50.0),
                failure_reason: None,
                cost_usd: None,
                timed_out: false,
            });
        }
    }

    #[test]
    fn removes_confounding_by_companions() {
        // Quality "standard" is truly as good as "draft" (both × 1), but it was mostly run with
        // the bad genre (rate 0.2) and draft with the good one (rate 0.9).
        let mut aggregates = Aggregates::new();
        observe_n(
            &mut aggregates,
            json!({"genre": "bad", "quality": "standard"}),
            8,
            32,
        );
        observe_n(
            &mut aggregates,
            json!({"genre": "good", "quality": "standard"}),
            9,
            1,
        );
        observe_n(
            &mut aggregates,
            json!({"genre": "bad", "quality": "draft"}),
            2,
            8,
        );
        observe_n(
            &mut aggregates,
            json!({"genre": "good", "quality": "draft"}),
            36,
            4,
        );
        let raw_standard = 17.0 / 50.0;
        let raw_draft = 38.0 / 50.0;
        assert!(raw_standard < raw_draft - 0.4);
        let evidence = adjusted_evidence(&aggregates);
        let standard = evidence["quality"][&ValueKey::Text("standard".into())];
        let draft = evidence["quality"][&ValueKey::Text("draft".into())];
        assert!(
            (standard.success_rate() - draft.success_rate()).abs() < 0.02,
            "{} vs {}",
            standard.success_rate(),
            draft.success_rate()
        );
        // The genre effect is kept.
        let good = evidence["genre"][&ValueKey::Text("good".into())];
        let bad = evidence["genre"][&ValueKey::Text("bad".into())];
        assert!(good.success_rate() > bad.success_rate() + 0.5);
        assert_eq!(standard.runs, 50.0);
    }

    #[test]
    fn without_combinations_the_marginals_stay() {
        let aggregates = Aggregates::new();
        assert!(adjusted_evidence(&aggregates).is_empty());
        let mut one = Aggregates::new();
        observe_n(&mut one, json!({"genre": "pop"}), 3, 1);
        let evidence = adjusted_evidence(&one);
        let pop = evidence["genre"][&ValueKey::Text("pop".into())];
        assert!((pop.success_rate() - 0.75).abs() < 1e-9);
        assert!((pop.impact_sum - 1.5).abs() < 1e-9);
    }
}
