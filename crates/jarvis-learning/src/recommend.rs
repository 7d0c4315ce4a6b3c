//! Recommended parameters: the best value of each parameter, checked for interactions.
//!
//! # How values are ranked
//!
//! For each value of a parameter (a numeric value: its bucket) the *score* is the conservative
//! utility, computed from the value's evidence adjusted for the other parameters of its runs
//! ([`crate::adjust`]; plain counts when no combination was recorded)
//!
//! ```text
//! score = WilsonLower(successes, runs, z) × ((1 − w) + w × E[impact/100])
//! ```
//!
//! where `E[impact/100]` is the mean of the Beta posterior of the impact fraction (uniform
//! prior, so a value without scores counts as impact 50) and `w` the impact weight (see
//! [`crate::config`]). Ranking by a lower bound is what keeps 1/1 below 80/100. A value needs
//! [`LearningConfig::min_value_runs`] runs and one success to be *eligible*; the domain/action
//! needs [`LearningConfig::min_runs`] runs before anything is recommended at all.
//!
//! # Factored choice, then an interaction check
//!
//! The best value is picked per parameter from the marginal statistics ("factored"): with 6
//! genres, 13 tempo buckets and 3 qualities that needs evidence on 22 values, not on 234
//! combinations. Marginals can mislead when parameters interact (metal is fine only at a slow
//! tempo), so the combination of the factored picks is then compared with the best-scoring
//! combination that has [`LearningConfig::min_combination_runs`] runs: if that combination's
//! utility interval lies entirely above the factored combination's, it is recommended instead.
//!
//! For a numeric parameter the recommended number is refined inside the best bucket by
//! parabolic interpolation through the expected utilities of the bucket and its two neighbours,
//! so that a peak near a bucket edge is not reported as the bucket's middle.
//!
//! # Confidence
//!
//! Per recommended parameter, the probability that its value's (adjusted) utility exceeds the
//! runner-up's,
//! from normal approximations of the two posteriors (`Φ(Δμ / sqrt(σ₁² + σ₂²))`); a parameter with
//! a single eligible value contributes 0.5 (nothing to compare it with). The recommendation's
//! confidence is the smallest of these — "how sure are we of the weakest part" — and 0 when
//! nothing is recommended.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::adjust::{adjusted_evidence, Evidence, EvidenceMap};
use crate::aggregates::{Aggregates, CombinationKey, OutcomeStats, ValueStats};
use crate::config::LearningConfig;
use crate::estimate::{prob_greater, Interval};
use crate::timeout::{learned_timeout, learned_timeout_for, why_no_learned_timeout};
use crate::value_key::{NumberBucket, ValueKey, BUCKETS_PER_OCTAVE};

/// What the learner would run next, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// The recommended value per parameter (empty without enough data).
    pub parameters: Map<String, Value>,
    /// The learned timeout in ms for the recommended parameters (the domain/action-wide one
    /// when nothing is recommended), once there are enough successful runs (see
    /// [`learned_timeout_for`]).
    pub timeout_ms: Option<u64>,
    /// Why `timeout_ms` is `None`: the successful runs there are and the number needed (see
    /// [`why_no_learned_timeout`]); `None` when a timeout is learned.
    #[serde(default)]
    pub timeout_reason: Option<String>,
    /// 0–1; see the [module docs](self).
    pub confidence: f64,
    /// All runs of the domain/action the aggregates hold.
    pub based_on_runs: u64,
    /// Other good configurations, best first.
    pub alternatives: Vec<Alternative>,
    /// Where the parameters came from.
    pub source: RecommendationSource,
    /// The estimate behind each recommended value.
    pub estimates: BTreeMap<String, ValueEstimate>,
}

/// Where a recommendation's parameters came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecommendationSource {
    /// Not enough runs: nothing is recommended.
    InsufficientData,
    /// The best value of each parameter on its own.
    Factored,
    /// A combination that beat the factored picks clearly (an interaction).
    Combination,
}

/// One value of one parameter, with its statistics and scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueEstimate {
    /// The learner's key of the value.
    pub key: ValueKey,
    /// The value to use (for a numeric bucket: the middle of the successful values in it).
    pub value: Value,
    /// Runs with this value.
    pub runs: u64,
    /// Successful runs with this value.
    pub successes: u64,
    /// `successes / runs`, as observed.
    pub success_rate: f64,
    /// The success rate next to average companions (see [`crate::adjust`]): what the value is
    /// ranked by.
    pub adjusted_success_rate: f64,
    /// The Wilson interval of the adjusted success rate.
    pub success_interval: Interval,
    /// The mean impact score of its successful runs, as observed.
    pub mean_impact: Option<f64>,
    /// The posterior mean utility (adjusted).
    pub expected_utility: f64,
    /// The conservative utility it is ranked by.
    pub score: f64,
    /// Whether it has enough runs (and a success) to be recommended.
    pub eligible: bool,
    /// The mean cost of its runs that reported one, US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_run_usd: Option<f64>,
}

/// An alternative configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alternative {
    /// The parameters of the alternative.
    pub parameters: Map<String, Value>,
    /// Runs behind the estimate.
    pub runs: u64,
    /// The observed success rate.
    pub success_rate: f64,
    /// The Wilson interval of the success rate.
    pub success_interval: Interval,
    /// The mean impact score of the successful runs.
    pub mean_impact: Option<f64>,
    /// The conservative utility it is ranked by.
    pub score: f64,
    /// What the estimate is based on.
    pub basis: AlternativeBasis,
}

/// What an [`Alternative`]'s estimate is based on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum AlternativeBasis {
    /// Runs of exactly this combination.
    Combination,
    /// The recommendation with one parameter changed to its runner-up value; the estimate is
    /// that value's (marginal) statistics.
    ValueSwap {
        /// The parameter that differs.
        parameter: String,
    },
}

/// A combination with its parsed pairs, counts and utility estimate.
type ScoredCombination = (
    CombinationKey,
    Vec<(String, ValueKey)>,
    OutcomeStats,
    UtilityEstimate,
);

/// Utility estimates of one set of outcomes.
#[derive(Debug, Clone, Copy)]
struct UtilityEstimate {
    mean: f64,
    variance: f64,
    score: f64,
    upper: f64,
}

fn utility_estimate(evidence: &Evidence, w: f64, z: f64) -> UtilityEstimate {
    let success = evidence.success_posterior();
    let impact = evidence.impact_posterior();
    let (mean_p, var_p) = (success.mean(), success.variance());
    let (mean_q, var_q) = (impact.mean(), impact.variance());
    let factor = (1.0 - w) + w * mean_q;
    // Var(p·A) for independent p and A = (1 − w) + w·q.
    let variance =
        (var_p + mean_p * mean_p) * (w * w * var_q + factor * factor) - (mean_p * factor).powi(2);
    let interval = evidence.success_interval(z);
    UtilityEstimate {
        mean: mean_p * factor,
        variance: variance.max(0.0),
        score: interval.lower * factor,
        upper: interval.upper * factor,
    }
}

/// The JSON value a key stands for, using the observed range for numeric buckets.
pub(crate) fn value_of(key: &ValueKey, stats: Option<&ValueStats>) -> Option<Value> {
    match key.categorical_value() {
        Some(value) => Some(value),
        None => {
            let range = stats?.range?;
            let x = range.representative();
            if range.integral && x.abs() < 9.0e15 {
                Some(Value::from(x as i64))
            } else {
                serde_json::Number::from_f64(x).map(Value::Number)
            }
        }
    }
}

/// Every observed value of parameter `name`, best first: eligible values by score (ties: more
/// runs, then key order), then the ineligible ones in the same order. Scores use the evidence
/// adjusted for the other parameters ([`crate::adjust`]).
pub fn rank_values(
    aggregates: &Aggregates,
    name: &str,
    config: &LearningConfig,
) -> Vec<ValueEstimate> {
    rank_with(aggregates, &adjusted_evidence(aggregates), name, config)
}

fn rank_with(
    aggregates: &Aggregates,
    evidence: &EvidenceMap,
    name: &str,
    config: &LearningConfig,
) -> Vec<ValueEstimate> {
    let w = config.effective_impact_weight(aggregates.total.impact_runs > 0);
    let Some(values) = aggregates.parameters.get(name) else {
        return Vec::new();
    };
    let mut estimates: Vec<ValueEstimate> = values
        .iter()
        .filter(|(_, stats)| stats.outcome.runs > 0)
        .filter_map(|(key, stats)| {
            let value = value_of(key, Some(stats))?;
            let outcome = &stats.outcome;
            let adjusted = evidence
                .get(name)
                .and_then(|values| values.get(key))
                .copied()
                .unwrap_or_else(|| Evidence::of(outcome));
            let utility = utility_estimate(&adjusted, w, config.z);
            Some(ValueEstimate {
                key: key.clone(),
                value,
                runs: outcome.runs,
                successes: outcome.successes,
                success_rate: outcome.success_rate().unwrap_or(0.0),
                adjusted_success_rate: adjusted.success_rate(),
                success_interval: adjusted.success_interval(config.z),
                mean_impact: outcome.mean_impact(),
                expected_utility: utility.mean,
                score: utility.score,
                eligible: outcome.runs >= config.min_value_runs.max(1) && outcome.successes > 0,
                cost_per_run_usd: stats.cost.mean_usd(),
            })
        })
        .collect();
    estimates.sort_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then_with(|| b.score.total_cmp(&a.score))
            .then_with(|| b.runs.cmp(&a.runs))
            .then_with(|| a.key.cmp(&b.key))
    });
    cheapest_first_within_tolerance(&mut estimates, config.cost_tolerance);
    estimates
}

/// Moves to the front the cheapest eligible value whose score is within `tolerance` of the
/// best eligible score (the same rule Thompson sampling uses, `LearningConfig::cost_tolerance`);
/// values with no reported cost are not moved.
fn cheapest_first_within_tolerance(estimates: &mut [ValueEstimate], tolerance: f64) {
    let tolerance = if tolerance.is_nan() {
        0.0
    } else {
        tolerance.clamp(0.0, 1.0)
    };
    let Some(best) = estimates.first().filter(|e| e.eligible) else {
        return;
    };
    if tolerance == 0.0 || best.cost_per_run_usd.is_none() {
        return;
    }
    let floor = best.score * (1.0 - tolerance);
    let cheapest = estimates
        .iter()
        .enumerate()
        .filter(|(_, e)| e.eligible && e.score >= floor)
        .filter_map(|(i, e)| e.cost_per_run_usd.map(|c| (i, c)))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    if let Some((i, _)) = cheapest {
        estimates[..=i].rotate_right(1);
    }
}

/// The names of the parameters the learner considers: those in the search space, and those
/// present in at least [`LearningConfig::min_parameter_share`] of the runs.
pub(crate) fn considered_parameters(
    aggregates: &Aggregates,
    config: &LearningConfig,
) -> Vec<String> {
    let share = config.parameter_share();
    let runs = aggregates.total.runs.max(1) as f64;
    let mut names: Vec<String> = aggregates
        .parameters
        .keys()
        .filter(|name| {
            config.search_space.contains_key(*name)
                || aggregates.parameter_runs(name) as f64 / runs >= share
        })
        .cloned()
        .collect();
    for name in config.search_space.keys() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names.sort();
    names
}

/// The recommendation for the domain/action of `aggregates`. See the [module docs](self).
pub fn recommend(aggregates: &Aggregates, config: &LearningConfig) -> Recommendation {
    let mut recommendation = recommend_parameters(aggregates, config);
    recommendation.timeout_reason =
        why_no_learned_timeout(aggregates, &recommendation.parameters, &config.timeout);
    recommendation
}

fn recommend_parameters(aggregates: &Aggregates, config: &LearningConfig) -> Recommendation {
    let based_on_runs = aggregates.total.runs;
    let timeout_ms = learned_timeout(&aggregates.successful_durations, &config.timeout);
    let mut recommendation = Recommendation {
        parameters: Map::new(),
        timeout_ms,
        timeout_reason: None,
        confidence: 0.0,
        based_on_runs,
        alternatives: Vec::new(),
        source: RecommendationSource::InsufficientData,
        estimates: BTreeMap::new(),
    };
    if based_on_runs < config.min_runs.max(1) {
        return recommendation;
    }
    let w = config.effective_impact_weight(aggregates.total.impact_runs > 0);
    let evidence = adjusted_evidence(aggregates);
    let evidence_of = |name: &str, key: &ValueKey| {
        evidence
            .get(name)
            .and_then(|values| values.get(key))
            .copied()
            .unwrap_or(Evidence {
                runs: 0.0,
                successes: 0.0,
                impact_runs: 0.0,
                impact_sum: 0.0,
            })
    };

    // Factored picks.
    let mut runner_ups: BTreeMap<String, ValueEstimate> = BTreeMap::new();
    let mut confidence = 1.0_f64;
    for name in considered_parameters(aggregates, config) {
        let ranked = rank_with(aggregates, &evidence, &name, config);
        let mut eligible = ranked.into_iter().filter(|e| e.eligible);
        let Some(best) = eligible.next() else {
            continue;
        };
        let parameter_confidence = match eligible.next() {
            Some(second) => {
                let (a, b) = (
                    utility_estimate(&evidence_of(&name, &best.key), w, config.z),
                    utility_estimate(&evidence_of(&name, &second.key), w, config.z),
                );
                runner_ups.insert(name.clone(), second);
                prob_greater(a.mean, a.variance, b.mean, b.variance)
            }
            None => 0.5,
        };
        confidence = confidence.min(parameter_confidence);
        let mut best = best;
        if let Some(value) = interpolate_peak(aggregates, &evidence, &name, &best, config) {
            best.value = value;
        }
        recommendation
            .parameters
            .insert(name.clone(), best.value.clone());
        recommendation.estimates.insert(name, best);
    }
    if recommendation.parameters.is_empty() {
        return recommendation;
    }
    recommendation.source = RecommendationSource::Factored;

    // Interaction check against the combinations over the same parameters.
    let names: Vec<&String> = recommendation.estimates.keys().collect();
    let factored_pairs: Vec<(String, ValueKey)> = recommendation
        .estimates
        .iter()
        .map(|(name, estimate)| (name.clone(), estimate.key.clone()))
        .collect();
    let factored_key = CombinationKey::new(&factored_pairs);
    let mut combinations: Vec<ScoredCombination> = aggregates
        .combinations
        .iter()
        .filter(|(_, stats)| {
            stats.runs >= config.min_combination_runs.max(1) && stats.successes > 0
        })
        .filter_map(|(key, stats)| {
            let pairs = key.pairs();
            let same_names =
                pairs.len() == names.len() && pairs.iter().zip(&names).all(|((n, _), m)| n == *m);
            same_names.then(|| {
                let utility = utility_estimate(&Evidence::of(stats), w, config.z);
                (key.clone(), pairs, *stats, utility)
            })
        })
        .collect();
    combinations.sort_by(|a, b| {
        b.3.score
            .total_cmp(&a.3.score)
            .then_with(|| b.2.runs.cmp(&a.2.runs))
            .then_with(|| a.0.cmp(&b.0))
    });
    let factored_combination = combinations.iter().find(|c| c.0 == factored_key);
    if let (Some(best), Some(factored)) = (combinations.first(), factored_combination) {
        if best.0 != factored_key && best.3.score > factored.3.upper {
            if let Some(parameters) = parameters_of(aggregates, &best.1) {
                recommendation.parameters = parameters;
                recommendation.source = RecommendationSource::Combination;
                confidence = prob_greater(
                    best.3.mean,
                    best.3.variance,
                    factored.3.mean,
                    factored.3.variance,
                );
                for (name, key) in &best.1 {
                    if let Some(estimate) = rank_with(aggregates, &evidence, name, config)
                        .into_iter()
                        .find(|e| &e.key == key)
                    {
                        recommendation.estimates.insert(name.clone(), estimate);
                    }
                }
            }
        }
    }
    recommendation.confidence = confidence.clamp(0.0, 1.0);

    // Alternatives: other combinations first, then single-value swaps.
    let chosen_pairs: Vec<(String, ValueKey)> = recommendation
        .estimates
        .iter()
        .map(|(name, estimate)| (name.clone(), estimate.key.clone()))
        .collect();
    let chosen_key = CombinationKey::new(&chosen_pairs);
    let mut alternatives: Vec<Alternative> = combinations
        .iter()
        .filter(|c| c.0 != chosen_key)
        .filter_map(|(_, pairs, stats, utility)| {
            Some(Alternative {
                parameters: parameters_of(aggregates, pairs)?,
                runs: stats.runs,
                success_rate: stats.success_rate().unwrap_or(0.0),
                success_interval: stats.success_interval(config.z),
                mean_impact: stats.mean_impact(),
                score: utility.score,
                basis: AlternativeBasis::Combination,
            })
        })
        .take(config.max_alternatives)
        .collect();
    if alternatives.len() < config.max_alternatives {
        let mut swaps: Vec<Alternative> = runner_ups
            .into_iter()
            .map(|(name, second)| {
                let mut parameters = recommendation.parameters.clone();
                parameters.insert(name.clone(), second.value.clone());
                Alternative {
                    parameters,
                    runs: second.runs,
                    success_rate: second.success_rate,
                    success_interval: second.success_interval,
                    mean_impact: second.mean_impact,
                    score: second.score,
                    basis: AlternativeBasis::ValueSwap { parameter: name },
                }
            })
            .filter(|swap| !alternatives.iter().any(|a| a.parameters == swap.parameters))
            .collect();
        swaps.sort_by(|a, b| b.score.total_cmp(&a.score));
        let room = config.max_alternatives - alternatives.len();
        alternatives.extend(swaps.into_iter().take(room));
    }
    recommendation.alternatives = alternatives;
    recommendation.timeout_ms =
        learned_timeout_for(aggregates, &recommendation.parameters, &config.timeout);
    recommendation
}

/// For a positive numeric bucket whose two grid neighbours are eligible too, the peak of the
/// parabola through the three buckets' expected utilities (in log-value, where the grid is
/// even), kept inside the best bucket: `offset = (y₋ − y₊) / (2(y₋ − 2y₀ + y₊))`, value
/// `2^((i + ½ + offset)/8)`. The best bucket's own midpoint ignores that its better neighbour
/// pulls the optimum towards their common edge; this is the usual sub-grid refinement of a peak.
fn interpolate_peak(
    aggregates: &Aggregates,
    evidence: &EvidenceMap,
    name: &str,
    best: &ValueEstimate,
    config: &LearningConfig,
) -> Option<Value> {
    let ValueKey::Number(bucket @ NumberBucket::Positive(index)) = best.key else {
        return None;
    };
    let ranked = rank_with(aggregates, evidence, name, config);
    let utility_of = |i: i32| {
        ranked
            .iter()
            .find(|e| e.eligible && e.key == ValueKey::Number(NumberBucket::Positive(i)))
            .map(|e| e.expected_utility)
    };
    let (below, centre, above) = (
        utility_of(index - 1)?,
        best.expected_utility,
        utility_of(index + 1)?,
    );
    let curvature = below - 2.0 * centre + above;
    if curvature >= 0.0 || !curvature.is_finite() {
        return None;
    }
    let offset = (0.5 * (below - above) / curvature).clamp(-0.5, 0.5);
    let x = ((f64::from(index) + 0.5 + offset) / f64::from(BUCKETS_PER_OCTAVE)).exp2();
    let range = aggregates.value_stats(name, &best.key)?.range?;
    let (low, high) = bucket.range();
    if range.integral {
        let rounded = x.round();
        let inside = [rounded, rounded.ceil(), low.ceil(), rounded - 1.0]
            .into_iter()
            .find(|candidate| bucket.contains(*candidate))?;
        Some(Value::from(inside as i64))
    } else {
        let inside = x.clamp(low, high);
        if bucket.contains(inside) {
            serde_json::Number::from_f64(inside).map(Value::Number)
        } else {
            None
        }
    }
}

fn parameters_of(
    aggregates: &Aggregates,
    pairs: &[(String, ValueKey)],
) -> Option<Map<String, Value>> {
    pairs
        .iter()
        .map(|(name, key)| {
            let value = value_of(key, aggregates.value_stats(name, key))?;
            Some((name.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregates::Execution;
    use serde_json::json;

    fn observe_n(
        aggregates: &mut Aggregates,
        parameters: Value,
        successes: usize,
        failures: usize,
        impact: f64,
    ) {
        let parameters = parameters.as_object().cloned().unwrap();
        for i in 0..successes + failures {
            let success = i < successes;
            aggregates.observe(&Execution {
                parameters: parameters.clone(),
                success,
                duration_ms: 1_000,
                impact_score: success.then_some(impact),
                failure_reason: (!success).then(|| "boom".to_owned()),
                cost_usd: None,
                timed_out: false,
            });
        }
    }

    #[test]
    fn nothing_from_too_little_data() {
        let mut aggregates = Aggregates::new();
        observe_n(&mut aggregates, json!({"genre": "pop"}), 19, 0, 50.0);
        let recommendation = recommend(&aggregates, &LearningConfig::default());
        assert_eq!(
            recommendation.source,
            RecommendationSource::InsufficientData
        );
        assert!(recommendation.parameters.is_empty());
        assert_eq!(recommendation.confidence, 0.0);
        assert_eq!(recommendation.based_on_runs, 19);
        assert_eq!(recommendation.timeout_ms, None);
        let empty = recommend(&Aggregates::new(), &LearningConfig::default());
        assert_eq!(empty.source, RecommendationSource::InsufficientData);
    }

    #[test]
    fn proven_value_beats_a_lucky_one() {
        let mut aggregates = Aggregates::new();
        observe_n(&mut aggregates, json!({"genre": "pop"}), 80, 20, 50.0);
        observe_n(&mut aggregates, json!({"genre": "jazz"}), 1, 0, 50.0);
        let config = LearningConfig {
            min_value_runs: 1,
            ..LearningConfig::default()
        };
        let recommendation = recommend(&aggregates, &config);
        assert_eq!(recommendation.parameters["genre"], json!("pop"));
        assert_eq!(recommendation.source, RecommendationSource::Factored);
        assert!(recommendation.confidence > 0.5);
        assert_eq!(recommendation.based_on_runs, 101);
        // The lucky value is the listed alternative.
        assert_eq!(
            recommendation.alternatives[0].parameters["genre"],
            json!("jazz")
        );
        // With the default minimum of 5 runs per value it is not even eligible.
        let ranked = rank_values(&aggregates, "genre", &LearningConfig::default());
        assert!(ranked[0].eligible && !ranked[1].eligible);
    }

    #[test]
    fn impact_breaks_ties_in_success() {
        let mut aggregates = Aggregates::new();
        observe_n(&mut aggregates, json!({"genre": "pop"}), 45, 5, 40.0);
        observe_n(&mut aggregates, json!({"genre": "rock"}), 45, 5, 90.0);
        let recommendation = recommend(&aggregates, &LearningConfig::default());
        assert_eq!(recommendation.parameters["genre"], json!("rock"));
        // With impact weight 0 the two are tied on success; the tie is broken by runs, then key.
        let config = LearningConfig {
            impact_weight: 0.0,
            ..LearningConfig::default()
        };
        let ranked = rank_values(&aggregates, "genre", &config);
        assert_eq!(ranked[0].score, ranked[1].score);
        assert_eq!(ranked[0].key, ValueKey::Text("pop".into()));
    }

    #[test]
    fn numeric_values_are_learned_as_ranges() {
        let mut aggregates = Aggregates::new();
        for bpm in [118, 120, 122, 124, 126] {
            observe_n(&mut aggregates, json!({"bpm": bpm}), 9, 1, 70.0);
        }
        for bpm in [60, 64, 70, 80, 90] {
            observe_n(&mut aggregates, json!({"bpm": bpm}), 4, 6, 70.0);
        }
        let recommendation = recommend(&aggregates, &LearningConfig::default());
        let bpm = recommendation.parameters["bpm"].as_i64().unwrap();
        assert!((118..=126).contains(&bpm), "{bpm}");
    }

    #[test]
    fn a_clear_interaction_overrides_the_factored_pick() {
        // genre a is better on average, tempo slow is better on average, but (a, slow) fails.
        let mut aggregates = Aggregates::new();
        observe_n(
            &mut aggregates,
            json!({"genre": "a", "tempo": "slow"}),
            2,
            38,
            50.0,
        );
        observe_n(
            &mut aggregates,
            json!({"genre": "a", "tempo": "fast"}),
            40,
            0,
            50.0,
        );
        observe_n(
            &mut aggregates,
            json!({"genre": "b", "tempo": "slow"}),
            40,
            0,
            50.0,
        );
        observe_n(
            &mut aggregates,
            json!({"genre": "b", "tempo": "fast"}),
            0,
            40,
            50.0,
        );
        let recommendation = recommend(&aggregates, &LearningConfig::default());
        // Marginals: a = 42/80, b = 40/80, slow = 42/80, fast = 40/80 → factored (a, slow),
        // whose combination fails 38 of 40: the interaction check takes a combination instead.
        assert_eq!(recommendation.source, RecommendationSource::Combination);
        let genre = &recommendation.parameters["genre"];
        let tempo = &recommendation.parameters["tempo"];
        assert!(
            (genre == "a" && tempo == "fast") || (genre == "b" && tempo == "slow"),
            "{:?}",
            recommendation.parameters
        );
        assert!(!recommendation.alternatives.is_empty());
    }
}
