//! Settings of the learner, and the optional search space of parameters.
//!
//! # The objective
//!
//! Every ranking and every exploration step maximises the expected *utility* of a run:
//!
//! ```text
//! utility = P(success) × ((1 − w) + w × E[impact | success] / 100)
//! ```
//!
//! with `w` = [`LearningConfig::impact_weight`] (default 0.5). A failed run is worth 0; a
//! successful run is worth between `1 − w` (impact 0) and 1 (impact 100). So success dominates —
//! a value that fails half the time cannot make up for it with impact — while between equally
//! reliable values the one with more impact wins. When no execution of the domain/action has
//! reported an impact score, `w` is taken as 0 and utility is the success rate.
//!
//! # The search space
//!
//! Without one, the learner only knows the values it has seen. A [`ParameterSpace`] per
//! parameter lets [`crate::explore::choose`] try values nobody has sent yet: a list of
//! categorical values, or a numeric range (explored bucket by bucket on the grid of
//! [`crate::value_key`]). A declared space is authoritative: values outside it are not chosen.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::estimate::Z_95;
use crate::timeout::TimeoutPolicy;
use crate::value_key::{NumberBucket, ValueKey};

/// At most this many candidate values per parameter are taken from a search space.
pub const MAX_CANDIDATES: usize = 256;

/// The learner's settings. `Default` gives the documented defaults; every field can be left out
/// when deserialising.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LearningConfig {
    /// The weight `w` of the impact score in the objective (see the [module docs](self));
    /// clamped to `[0, 1]`, NaN means 0. Default 0.5.
    pub impact_weight: f64,
    /// Runs of the domain/action before anything is recommended. Default 20.
    pub min_runs: u64,
    /// Runs of a value before it can be recommended. Default 5.
    pub min_value_runs: u64,
    /// Runs of a combination before it counts in the interaction check or as an alternative.
    /// Default 10.
    pub min_combination_runs: u64,
    /// A parameter outside the search space is recommended or filled in only if it was present
    /// in at least this share of runs (so that a flag sent once is not added to every task).
    /// Default 0.5.
    pub min_parameter_share: f64,
    /// The normal quantile of the Wilson intervals used to rank (default [`Z_95`]).
    pub z: f64,
    /// The share of choices made uniformly at random instead of by Thompson sampling; clamped
    /// to `[0, 1]`, NaN means 0. Default 0.05.
    pub exploration_share: f64,
    /// Extra Thompson draws used to estimate the probability of each choice (at least 16).
    /// Default 200.
    pub propensity_samples: u32,
    /// How many alternatives a recommendation lists. Default 3.
    pub max_alternatives: usize,
    /// Optional search space per parameter name.
    pub search_space: BTreeMap<String, ParameterSpace>,
    /// How timeouts are learned.
    pub timeout: TimeoutPolicy,
    /// Cost as a tie-breaker: in each Thompson round, among the values whose utility draw is
    /// within this share of the best draw, the one with the lowest mean cost per run is chosen
    /// (a value with no cost reported yet counts as free, so that it gets tried). So between
    /// values that do equally well the cheaper wins, while one that does measurably worse is
    /// not chosen for its price. 0 turns cost off; clamped to `[0, 1]`. Default 0.05.
    pub cost_tolerance: f64,
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            impact_weight: 0.5,
            min_runs: 20,
            min_value_runs: 5,
            min_combination_runs: 10,
            min_parameter_share: 0.5,
            z: Z_95,
            exploration_share: 0.05,
            propensity_samples: 200,
            max_alternatives: 3,
            search_space: BTreeMap::new(),
            timeout: TimeoutPolicy::default(),
            cost_tolerance: 0.05,
        }
    }
}

impl LearningConfig {
    /// The impact weight in use for aggregates that have (`true`) or lack (`false`) impact
    /// scores: `w` clamped to `[0, 1]`, or 0 without scores.
    pub fn effective_impact_weight(&self, has_impact_scores: bool) -> f64 {
        if !has_impact_scores || self.impact_weight.is_nan() {
            0.0
        } else {
            self.impact_weight.clamp(0.0, 1.0)
        }
    }

    /// The utility of a run with success probability `p` and mean impact fraction `q`
    /// (impact / 100) under impact weight `w`: `p × ((1 − w) + w × q)`.
    pub fn utility(p: f64, q: f64, w: f64) -> f64 {
        p * ((1.0 - w) + w * q)
    }

    pub(crate) fn exploration(&self) -> f64 {
        if self.exploration_share.is_nan() {
            0.0
        } else {
            self.exploration_share.clamp(0.0, 1.0)
        }
    }

    pub(crate) fn parameter_share(&self) -> f64 {
        if self.min_parameter_share.is_nan() {
            0.0
        } else {
            self.min_parameter_share.clamp(0.0, 1.0)
        }
    }
}

/// The values a parameter may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ParameterSpace {
    /// One of these values.
    Categorical {
        /// The values (strings, booleans, numbers, …).
        values: Vec<Value>,
    },
    /// A number in `[min, max]`.
    Numeric {
        /// The smallest value.
        min: f64,
        /// The largest value.
        max: f64,
        /// Whether only integers are allowed.
        #[serde(default)]
        integer: bool,
    },
}

impl ParameterSpace {
    /// The candidate keys: the keys of the categorical values, or the grid buckets that
    /// intersect the numeric range (for an integer range: that contain an integer of it). A
    /// range that reaches zero is covered down to 1/1024 of its largest magnitude (ten
    /// octaves), plus zero itself. At most [`MAX_CANDIDATES`]; an invalid range (NaN, infinite,
    /// `min > max`) has none.
    pub fn candidate_keys(&self) -> Vec<ValueKey> {
        let mut keys: Vec<ValueKey> = match self {
            ParameterSpace::Categorical { values } => {
                values.iter().filter_map(ValueKey::of).collect()
            }
            ParameterSpace::Numeric { min, max, integer } => numeric_buckets(*min, *max, *integer)
                .into_iter()
                .map(ValueKey::Number)
                .collect(),
        };
        keys.sort();
        keys.dedup();
        keys.truncate(MAX_CANDIDATES);
        keys
    }

    /// A concrete value for a chosen key: the categorical value itself, or for a numeric bucket
    /// a number drawn uniformly from the part of the bucket inside the range (an integer for
    /// integer ranges). `None` if the key does not belong to the space.
    pub fn sample_value<R: Rng + ?Sized>(&self, key: &ValueKey, rng: &mut R) -> Option<Value> {
        match (self, key) {
            (ParameterSpace::Categorical { values }, _) => values
                .iter()
                .find(|v| ValueKey::of(v).as_ref() == Some(key))
                .cloned(),
            (ParameterSpace::Numeric { min, max, integer }, ValueKey::Number(bucket)) => {
                sample_in_bucket(*bucket, *min, *max, *integer, rng)
            }
            _ => None,
        }
    }
}

fn numeric_buckets(min: f64, max: f64, integer: bool) -> Vec<NumberBucket> {
    if !(min.is_finite() && max.is_finite() && min <= max) {
        return Vec::new();
    }
    let floor_magnitude = min.abs().max(max.abs()) / 1024.0;
    let mut buckets = Vec::new();
    let mut push_range = |low_magnitude: f64, high_magnitude: f64, positive: bool| {
        if let (Some(NumberBucket::Positive(first)), Some(NumberBucket::Positive(last))) = (
            NumberBucket::of(low_magnitude),
            NumberBucket::of(high_magnitude),
        ) {
            for index in first..=last {
                buckets.push(if positive {
                    NumberBucket::Positive(index)
                } else {
                    NumberBucket::Negative(index)
                });
            }
        }
    };
    if max > 0.0 {
        let low = if min > 0.0 {
            min
        } else {
            floor_magnitude.min(max)
        };
        push_range(low, max, true);
    }
    if min < 0.0 {
        let low = if max < 0.0 {
            -max
        } else {
            floor_magnitude.min(-min)
        };
        push_range(low, -min, false);
    }
    if min <= 0.0 && max >= 0.0 {
        buckets.push(NumberBucket::Zero);
    }
    buckets.retain(|bucket| {
        if integer {
            integer_span(*bucket, min, max).is_some()
        } else {
            float_span(*bucket, min, max).is_some()
        }
    });
    buckets
}

/// The part `[low, high]` of a bucket inside `[min, max]`.
fn float_span(bucket: NumberBucket, min: f64, max: f64) -> Option<(f64, f64)> {
    let (bucket_low, bucket_high) = bucket.range();
    let (low, high) = (bucket_low.max(min), bucket_high.min(max));
    (low <= high).then_some((low, high))
}

/// The integers `[first, last]` that lie in the bucket and in `[min, max]`.
fn integer_span(bucket: NumberBucket, min: f64, max: f64) -> Option<(i64, i64)> {
    let (low, high) = float_span(bucket, min, max)?;
    let (mut first, mut last) = (low.ceil() as i64, high.floor() as i64);
    while first <= last && !bucket.contains(first as f64) {
        first += 1;
    }
    while first <= last && !bucket.contains(last as f64) {
        last -= 1;
    }
    (first <= last).then_some((first, last))
}

/// A number drawn uniformly from the part of `bucket` inside `[min, max]`.
pub(crate) fn sample_in_bucket<R: Rng + ?Sized>(
    bucket: NumberBucket,
    min: f64,
    max: f64,
    integer: bool,
    rng: &mut R,
) -> Option<Value> {
    if integer {
        let (first, last) = integer_span(bucket, min, max)?;
        Some(Value::from(rng.random_range(first..=last)))
    } else {
        let (low, high) = float_span(bucket, min, max)?;
        let x = if low < high {
            rng.random_range(low..high)
        } else {
            low
        };
        serde_json::Number::from_f64(x).map(Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn categorical_candidates() {
        let space = ParameterSpace::Categorical {
            values: vec![json!("pop"), json!("rock"), json!("pop"), json!(3)],
        };
        assert_eq!(space.candidate_keys().len(), 3);
        let mut rng = StdRng::seed_from_u64(1);
        let key = ValueKey::Text("rock".into());
        assert_eq!(space.sample_value(&key, &mut rng), Some(json!("rock")));
        assert_eq!(
            space.sample_value(&ValueKey::Text("jazz".into()), &mut rng),
            None
        );
    }

    #[test]
    fn numeric_candidates_cover_the_range() {
        let space = ParameterSpace::Numeric {
            min: 60.0,
            max: 180.0,
            integer: true,
        };
        let keys = space.candidate_keys();
        // log2(180/60) × 8 ≈ 12.7: 13 or 14 buckets.
        assert!((13..=14).contains(&keys.len()), "{}", keys.len());
        let mut rng = StdRng::seed_from_u64(2);
        for key in &keys {
            for _ in 0..20 {
                let value = space.sample_value(key, &mut rng).unwrap();
                let x = value.as_f64().unwrap();
                assert!((60.0..=180.0).contains(&x) && x.fract() == 0.0);
                assert_eq!(ValueKey::of(&value).as_ref(), Some(key));
            }
        }
    }

    #[test]
    fn small_integer_ranges_skip_buckets_without_integers() {
        let space = ParameterSpace::Numeric {
            min: 1.0,
            max: 4.0,
            integer: true,
        };
        let keys = space.candidate_keys();
        assert_eq!(keys.len(), 4, "{keys:?}");
        let with_zero = ParameterSpace::Numeric {
            min: -2.0,
            max: 2.0,
            integer: true,
        };
        // −2, −1, 0, 1, 2.
        assert_eq!(with_zero.candidate_keys().len(), 5);
    }

    #[test]
    fn invalid_ranges_have_no_candidates() {
        for (min, max) in [(5.0, 1.0), (f64::NAN, 1.0), (0.0, f64::INFINITY)] {
            let space = ParameterSpace::Numeric {
                min,
                max,
                integer: false,
            };
            assert!(space.candidate_keys().is_empty());
        }
        let float_space = ParameterSpace::Numeric {
            min: 0.0,
            max: 1.0,
            integer: false,
        };
        // Ten octaves below 1 at 8 per octave, plus the bucket of 1 and zero.
        assert_eq!(float_space.candidate_keys().len(), 82);
    }

    #[test]
    fn config_serde_defaults() {
        let config: LearningConfig = serde_json::from_str(
            r#"{"impactWeight": 0.2, "searchSpace": {"bpm": {"kind": "numeric", "min": 60, "max": 180, "integer": true}}}"#,
        )
        .unwrap();
        assert_eq!(config.impact_weight, 0.2);
        assert_eq!(config.min_runs, 20);
        assert!(matches!(
            config.search_space.get("bpm"),
            Some(ParameterSpace::Numeric { integer: true, .. })
        ));
        assert_eq!(
            LearningConfig::default().effective_impact_weight(false),
            0.0
        );
        assert!((LearningConfig::utility(0.8, 0.5, 0.5) - 0.6).abs() < 1e-12);
    }
}
