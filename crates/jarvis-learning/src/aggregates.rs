//! The learner's state: mergeable, serialisable aggregates of executions.
//!
//! The server keeps one [`Aggregates`] per domain/action. Each instance folds its own executions
//! in with [`Aggregates::observe`] and shares them through the store; any instance combines
//! partial aggregates with [`Aggregates::merge`]. Every field is a counter, an exact sum of
//! integers, a minimum or maximum, or a [`DurationSketch`], so merging is exactly associative
//! and commutative (and the empty value is its identity): instances can merge in any order, or
//! write deltas that a periodic job folds together, and get the same answer.
//!
//! Two choices keep that exact:
//! * impact scores are summed as integer milli-points (0–100 000 per run) and costs as integer
//!   micro-dollars, never as floating-point sums (float addition is not associative);
//! * a numeric bucket keeps the minimum and maximum of the values seen, not their mean.
//!
//! What is counted:
//! * totals (runs, successes, timeouts, impact), durations of all runs and of successful runs,
//!   cost;
//! * per parameter name and [`ValueKey`]: the same outcome counters — the marginal statistics that
//!   factored Thompson sampling and recommendations use — and a sketch of successful durations,
//!   so that the learned timeout can depend on the parameters;
//! * per *combination* of all learned parameters of a run: the outcome counters, used to check
//!   for interactions the factored view cannot see and to list alternatives;
//! * failure groups by normalised template ([`crate::failure`]).
//!
//! Limits (documented choices, not silent truncation of counts): at most
//! [`MAX_LEARNED_PARAMETERS`] parameters per execution are learned (the first by name), and
//! combinations are recorded only for executions with at most [`MAX_COMBINATION_PARAMETERS`]
//! learned parameters. Strings and nested values longer than
//! [`crate::value_key::MAX_TEXT_CHARS`] are free text and are not learned. The number of distinct
//! values and failure templates is not capped: a parameter that carries an id per request would
//! grow without bound, so the server should only send parameters that are choices.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::estimate::{wilson_interval, BetaPosterior, Interval};
use crate::failure::{FailureGroups, Fingerprint};
use crate::sketch::DurationSketch;
use crate::value_key::{is_learnable_name, ValueKey};

/// At most this many parameters of one execution are learned (the first ones by name).
pub const MAX_LEARNED_PARAMETERS: usize = 32;

/// Combination statistics are kept only for executions with at most this many learned
/// parameters.
pub const MAX_COMBINATION_PARAMETERS: usize = 8;

/// The failure reason recorded for a failed execution that gave none.
pub const NO_REASON: &str = "(no reason given)";

/// One execution of a task, as the learner needs it (the server knows the domain/action and
/// picks the [`Aggregates`] to update).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// The parameters the agent ran with (given and learned alike).
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Whether the execution succeeded.
    pub success: bool,
    /// How long it took, in ms (for a timeout: the time until it was cut off).
    pub duration_ms: u64,
    /// The agent's impact score, 0–100 (clamped); only successful runs' scores are used.
    #[serde(default)]
    pub impact_score: Option<f64>,
    /// Why it failed, as reported.
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// What it cost, in US dollars.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Whether it failed because Jarvis's timeout cut it off.
    #[serde(default)]
    pub timed_out: bool,
}

/// Outcome counters of a set of executions. All fields are exact integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeStats {
    /// Executions.
    pub runs: u64,
    /// Successful executions.
    pub successes: u64,
    /// Executions cut off by a timeout.
    pub timed_out: u64,
    /// Successful executions that reported an impact score.
    pub impact_runs: u64,
    /// The sum of those impact scores in thousandths of a point (100 000 per run at most).
    pub impact_milli_sum: u64,
}

impl OutcomeStats {
    /// Counts one execution. A NaN impact is ignored; others are clamped to 0–100 and counted
    /// only for successful runs.
    pub fn record(&mut self, success: bool, timed_out: bool, impact_score: Option<f64>) {
        self.runs += 1;
        if timed_out {
            self.timed_out += 1;
        }
        if success {
            self.successes += 1;
            if let Some(impact) = impact_score.filter(|x| !x.is_nan()) {
                self.impact_runs += 1;
                self.impact_milli_sum += (impact.clamp(0.0, 100.0) * 1000.0).round() as u64;
            }
        }
    }

    /// Adds `other`'s counters.
    pub fn merge(&mut self, other: &OutcomeStats) {
        self.runs += other.runs;
        self.successes += other.successes;
        self.timed_out += other.timed_out;
        self.impact_runs += other.impact_runs;
        self.impact_milli_sum += other.impact_milli_sum;
    }

    /// Failed executions.
    pub fn failures(&self) -> u64 {
        self.runs.saturating_sub(self.successes)
    }

    /// The observed success rate, `None` without runs.
    pub fn success_rate(&self) -> Option<f64> {
        crate::estimate::success_rate(self.successes, self.runs)
    }

    /// The Wilson interval of the success rate at normal quantile `z`.
    pub fn success_interval(&self, z: f64) -> Interval {
        wilson_interval(self.successes, self.runs, z)
    }

    /// The Beta posterior of the success rate under a uniform prior.
    pub fn success_posterior(&self) -> BetaPosterior {
        BetaPosterior::from_counts(self.successes, self.failures())
    }

    /// The mean impact score of successful runs that reported one (0–100).
    pub fn mean_impact(&self) -> Option<f64> {
        (self.impact_runs > 0)
            .then(|| self.impact_milli_sum as f64 / 1000.0 / self.impact_runs as f64)
    }

    /// The Beta posterior of impact/100 under a uniform prior (fractional evidence).
    pub fn impact_posterior(&self) -> BetaPosterior {
        BetaPosterior::from_fractional(
            self.impact_milli_sum as f64 / 100_000.0,
            self.impact_runs as f64,
        )
    }
}

/// The range of numbers seen in one numeric bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NumericRange {
    /// The smallest value seen.
    pub min: f64,
    /// The largest value seen.
    pub max: f64,
    /// The smallest value of a successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_min: Option<f64>,
    /// The largest value of a successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_max: Option<f64>,
    /// Whether every value seen was an integer.
    pub integral: bool,
}

impl NumericRange {
    fn of(x: f64, success: bool) -> Self {
        NumericRange {
            min: x,
            max: x,
            success_min: success.then_some(x),
            success_max: success.then_some(x),
            integral: x.fract() == 0.0,
        }
    }

    fn merge(&mut self, other: &NumericRange) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.success_min = merge_option(self.success_min, other.success_min, f64::min);
        self.success_max = merge_option(self.success_max, other.success_max, f64::max);
        self.integral &= other.integral;
    }

    /// The value to recommend for this bucket: the middle of the values that succeeded (or of
    /// all values seen when none did), rounded when every value seen was an integer.
    pub fn representative(&self) -> f64 {
        let (low, high) = match (self.success_min, self.success_max) {
            (Some(low), Some(high)) => (low, high),
            _ => (self.min, self.max),
        };
        let middle = low + (high - low) / 2.0;
        if self.integral {
            middle.round()
        } else {
            middle
        }
    }
}

fn merge_option(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// Statistics of one value (or numeric bucket) of one parameter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueStats {
    /// The outcomes of runs with this value.
    pub outcome: OutcomeStats,
    /// For a numeric bucket, the values seen in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<NumericRange>,
    /// Durations of the successful runs with this value, so that the timeout can follow the
    /// parameters (a slow quality setting needs a longer timeout than a fast one).
    #[serde(default, skip_serializing_if = "DurationSketch::is_empty")]
    pub successful_durations: DurationSketch,
    /// What runs with this value cost (when they reported a cost), so that between values that
    /// do equally well the cheaper one can be chosen (`LearningConfig::cost_tolerance`).
    #[serde(default, skip_serializing_if = "CostStats::is_empty")]
    pub cost: CostStats,
}

impl ValueStats {
    /// Adds `other`'s statistics.
    pub fn merge(&mut self, other: &ValueStats) {
        self.outcome.merge(&other.outcome);
        self.cost.add(&other.cost);
        self.successful_durations.merge(&other.successful_durations);
        match (&mut self.range, &other.range) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, Some(theirs)) => *mine = Some(*theirs),
            _ => {}
        }
    }
}

/// The key of one combination of parameter values: the canonical JSON text of the sorted
/// `[name, value key]` pairs, e.g. `[["bpm","num:+55"],["genre","str:pop"]]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CombinationKey(String);

impl CombinationKey {
    /// The key of the given pairs (sorted by name here; duplicate names keep the first).
    pub fn new(pairs: &[(String, ValueKey)]) -> Self {
        let mut sorted: Vec<(&String, String)> =
            pairs.iter().map(|(n, k)| (n, k.to_string())).collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        sorted.dedup_by(|a, b| a.0 == b.0);
        let json: Vec<Value> = sorted
            .into_iter()
            .map(|(name, key)| Value::Array(vec![Value::String(name.clone()), Value::String(key)]))
            .collect();
        CombinationKey(Value::Array(json).to_string())
    }

    /// The `(name, value key)` pairs, sorted by name; empty if the text is not a valid key.
    pub fn pairs(&self) -> Vec<(String, ValueKey)> {
        let parsed: Vec<(String, String)> = serde_json::from_str(&self.0).unwrap_or_default();
        parsed
            .into_iter()
            .filter_map(|(name, key)| key.parse().ok().map(|key| (name, key)))
            .collect()
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The learned `(name, value key)` pairs of a parameter map, sorted by name: names that are
/// learnable, values that have a key, at most [`MAX_LEARNED_PARAMETERS`].
pub fn learned_keys(parameters: &Map<String, Value>) -> Vec<(String, ValueKey)> {
    let mut pairs: Vec<(String, ValueKey)> = parameters
        .iter()
        .filter(|(name, _)| is_learnable_name(name))
        .filter_map(|(name, value)| ValueKey::of(value).map(|key| (name.clone(), key)))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.truncate(MAX_LEARNED_PARAMETERS);
    pairs
}

/// Total cost of a set of executions, in exact micro-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostStats {
    /// Executions that reported a cost.
    pub runs: u64,
    /// The sum of those costs in micro-dollars.
    pub micros_sum: u64,
}

impl CostStats {
    /// Whether no execution reported a cost.
    pub fn is_empty(&self) -> bool {
        self.runs == 0
    }

    /// Counts one execution's cost (a negative, infinite or NaN cost is ignored).
    pub fn record(&mut self, cost_usd: f64) {
        if cost_usd.is_finite() && cost_usd >= 0.0 {
            self.runs += 1;
            self.micros_sum = self
                .micros_sum
                .saturating_add((cost_usd * 1e6).round() as u64);
        }
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &CostStats) {
        self.runs += other.runs;
        self.micros_sum = self.micros_sum.saturating_add(other.micros_sum);
    }

    /// The total in US dollars.
    pub fn total_usd(&self) -> f64 {
        self.micros_sum as f64 / 1e6
    }

    /// The mean per execution that reported a cost, in US dollars.
    pub fn mean_usd(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.total_usd() / self.runs as f64)
    }
}

/// Everything the learner knows about one domain/action. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Aggregates {
    /// Outcomes of all executions.
    pub total: OutcomeStats,
    /// Durations of all executions.
    pub durations: DurationSketch,
    /// Durations of successful executions (what the learned timeout is based on).
    pub successful_durations: DurationSketch,
    /// Costs.
    pub cost: CostStats,
    /// Per parameter name, per value key: statistics of runs with that value.
    pub parameters: BTreeMap<String, BTreeMap<ValueKey, ValueStats>>,
    /// Per combination of all learned parameters of a run: its outcomes.
    pub combinations: BTreeMap<CombinationKey, OutcomeStats>,
    /// Failure groups.
    pub failures: FailureGroups,
}

impl Aggregates {
    /// Empty aggregates (the identity of [`Self::merge`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one execution in. Returns the fingerprint of its failure group when it failed.
    pub fn observe(&mut self, execution: &Execution) -> Option<Fingerprint> {
        let Execution {
            parameters,
            success,
            duration_ms,
            impact_score,
            failure_reason,
            cost_usd,
            timed_out,
        } = execution;
        let (success, timed_out) = (*success, *timed_out && !*success);
        self.total.record(success, timed_out, *impact_score);
        self.durations.add(*duration_ms);
        if success {
            self.successful_durations.add(*duration_ms);
        }
        if let Some(cost) = *cost_usd {
            self.cost.record(cost);
        }

        let pairs = learned_keys(parameters);
        for (name, key) in &pairs {
            let stats = self
                .parameters
                .entry(name.clone())
                .or_default()
                .entry(key.clone())
                .or_default();
            let mut one = ValueStats::default();
            one.outcome.record(success, timed_out, *impact_score);
            if let Some(cost) = *cost_usd {
                one.cost.record(cost);
            }
            if success {
                one.successful_durations.add(*duration_ms);
            }
            if key.bucket().is_some() {
                if let Some(x) = parameters.get(name).and_then(Value::as_f64) {
                    // `+ 0.0` turns −0.0 into 0.0 so that min/max stay order-independent.
                    one.range = Some(NumericRange::of(x + 0.0, success));
                }
            }
            stats.merge(&one);
        }
        if !pairs.is_empty() && pairs.len() <= MAX_COMBINATION_PARAMETERS {
            self.combinations
                .entry(CombinationKey::new(&pairs))
                .or_default()
                .record(success, timed_out, *impact_score);
        }

        (!success).then(|| {
            let reason = failure_reason
                .as_deref()
                .filter(|r| !r.trim().is_empty())
                .unwrap_or(NO_REASON);
            self.failures.observe(reason)
        })
    }

    /// Adds everything in `other` (exactly associative and commutative; see the
    /// [module docs](self)).
    pub fn merge(&mut self, other: &Aggregates) {
        self.total.merge(&other.total);
        self.durations.merge(&other.durations);
        self.successful_durations.merge(&other.successful_durations);
        self.cost.runs += other.cost.runs;
        self.cost.micros_sum = self.cost.micros_sum.saturating_add(other.cost.micros_sum);
        for (name, values) in &other.parameters {
            let mine = self.parameters.entry(name.clone()).or_default();
            for (key, stats) in values {
                mine.entry(key.clone()).or_default().merge(stats);
            }
        }
        for (key, stats) in &other.combinations {
            self.combinations
                .entry(key.clone())
                .or_default()
                .merge(stats);
        }
        self.failures.merge(&other.failures);
    }

    /// `a` merged with `b`, as a new value.
    pub fn merged(a: &Aggregates, b: &Aggregates) -> Aggregates {
        let mut result = a.clone();
        result.merge(b);
        result
    }

    /// The number of runs in which parameter `name` was present and learned.
    pub fn parameter_runs(&self, name: &str) -> u64 {
        self.parameters
            .get(name)
            .map_or(0, |values| values.values().map(|v| v.outcome.runs).sum())
    }

    /// The statistics of one value of one parameter.
    pub fn value_stats(&self, name: &str, key: &ValueKey) -> Option<&ValueStats> {
        self.parameters.get(name)?.get(key)
    }

    /// The headline statistics the history endpoint shows.
    pub fn summary(&self, z: f64) -> Summary {
        Summary {
            runs: self.total.runs,
            successes: self.total.successes,
            failures: self.total.failures(),
            timed_out: self.total.timed_out,
            success_rate: self.total.success_rate(),
            success_interval: self.total.success_interval(z),
            mean_duration_ms: self.durations.mean_ms(),
            p50_duration_ms: self.durations.quantile(0.5),
            p95_duration_ms: self.durations.quantile(0.95),
            p99_duration_ms: self.durations.quantile(0.99),
            mean_impact_score: self.total.mean_impact(),
            total_cost_usd: self.cost.total_usd(),
        }
    }
}

/// Headline statistics of one domain/action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Executions.
    pub runs: u64,
    /// Successful executions.
    pub successes: u64,
    /// Failed executions.
    pub failures: u64,
    /// Executions cut off by a timeout.
    pub timed_out: u64,
    /// `successes / runs`.
    pub success_rate: Option<f64>,
    /// The Wilson interval of the success rate.
    pub success_interval: Interval,
    /// The mean duration of all executions.
    pub mean_duration_ms: Option<f64>,
    /// The median duration of all executions (1 % relative error).
    pub p50_duration_ms: Option<u64>,
    /// The 95th percentile duration of all executions (1 % relative error).
    pub p95_duration_ms: Option<u64>,
    /// The 99th percentile duration of all executions (1 % relative error).
    pub p99_duration_ms: Option<u64>,
    /// The mean impact score of successful executions that reported one.
    pub mean_impact_score: Option<f64>,
    /// The total cost.
    pub total_cost_usd: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value_key::NumberBucket;
    use serde_json::json;

    fn execution(parameters: Value, success: bool, duration_ms: u64) -> Execution {
        Execution {
            parameters: parameters.as_object().cloned().unwrap_or_default(),
            success,
            duration_ms,
            impact_score: success.then_some(80.0),
            failure_reason: (!success).then(|| format!("timeout after {duration_ms} ms")),
            cost_usd: Some(0.01),
            timed_out: !success,
        }
    }

    #[test]
    fn observe_counts_everything() {
        let mut aggregates = Aggregates::new();
        aggregates.observe(&execution(json!({"genre": "pop", "bpm": 120}), true, 1000));
        aggregates.observe(&execution(json!({"genre": "pop", "bpm": 121}), true, 2000));
        let fingerprint = aggregates.observe(&execution(
            json!({"genre": "metal", "bpm": 60}),
            false,
            30_012,
        ));
        assert!(fingerprint.is_some());
        assert_eq!(aggregates.total.runs, 3);
        assert_eq!(aggregates.total.successes, 2);
        assert_eq!(aggregates.total.timed_out, 1);
        assert_eq!(aggregates.total.mean_impact(), Some(80.0));
        assert_eq!(aggregates.successful_durations.count(), 2);
        assert_eq!(aggregates.durations.count(), 3);
        assert_eq!(aggregates.cost.micros_sum, 30_000);
        assert_eq!(aggregates.parameter_runs("genre"), 3);
        let pop = aggregates
            .value_stats("genre", &ValueKey::Text("pop".into()))
            .unwrap();
        assert_eq!((pop.outcome.runs, pop.outcome.successes), (2, 2));
        let bucket = ValueKey::Number(NumberBucket::of(120.0).unwrap());
        let bpm = aggregates.value_stats("bpm", &bucket).unwrap();
        let range = bpm.range.unwrap();
        assert_eq!((range.min, range.max, range.integral), (120.0, 121.0, true));
        assert_eq!(range.representative(), 121.0); // 120.5 rounded half away from zero
        assert_eq!(aggregates.combinations.len(), 2);
        assert_eq!(aggregates.failures.total(), 1);
        let summary = aggregates.summary(crate::estimate::Z_95);
        assert_eq!(summary.failures, 1);
        assert!((summary.total_cost_usd - 0.03).abs() < 1e-12);
    }

    #[test]
    fn empty_and_odd_inputs() {
        let empty = Aggregates::new();
        let summary = empty.summary(crate::estimate::Z_95);
        assert_eq!(summary.success_rate, None);
        assert_eq!(summary.p95_duration_ms, None);
        assert_eq!(summary.success_interval, Interval::UNINFORMATIVE);

        let mut aggregates = Aggregates::new();
        aggregates.observe(&Execution {
            parameters: json!({"prompt": "x".repeat(500), "n": -0.0, "": 1})
                .as_object()
                .cloned()
                .unwrap(),
            success: true,
            duration_ms: 0,
            impact_score: Some(f64::NAN),
            failure_reason: None,
            cost_usd: Some(-1.0),
            timed_out: true, // ignored for a success
        });
        assert!(!aggregates.parameters.contains_key("prompt"));
        assert!(!aggregates.parameters.contains_key(""));
        assert_eq!(aggregates.total.impact_runs, 0);
        assert_eq!(aggregates.total.timed_out, 0);
        assert_eq!(aggregates.cost.runs, 0);
        let zero = aggregates
            .value_stats("n", &ValueKey::Number(NumberBucket::Zero))
            .unwrap();
        assert_eq!(zero.range.unwrap().min.to_bits(), 0.0f64.to_bits());

        // A failure without a reason still forms a group; impact scores are clamped.
        aggregates.observe(&Execution {
            parameters: Map::new(),
            success: false,
            duration_ms: 5,
            impact_score: None,
            failure_reason: Some("  ".into()),
            cost_usd: None,
            timed_out: false,
        });
        assert_eq!(aggregates.failures.top(1)[0].1.template, NO_REASON);
        let mut outcome = OutcomeStats::default();
        outcome.record(true, false, Some(250.0));
        outcome.record(true, false, Some(-4.0));
        assert_eq!(outcome.mean_impact(), Some(50.0));
    }

    #[test]
    fn combination_keys_round_trip() {
        let pairs = vec![
            ("genre".to_owned(), ValueKey::Text("pop".into())),
            (
                "bpm".to_owned(),
                ValueKey::Number(NumberBucket::Positive(55)),
            ),
        ];
        let key = CombinationKey::new(&pairs);
        assert_eq!(key.as_str(), r#"[["bpm","num:+55"],["genre","str:pop"]]"#);
        let mut sorted = pairs.clone();
        sorted.sort();
        assert_eq!(key.pairs(), sorted);
    }

    #[test]
    fn merge_equals_observing_everything_in_one_place() {
        const GENRES: [&str; 3] = ["pop", "rock", "jazz"];
        let runs: Vec<Execution> = (0..40)
            .map(|i| {
                execution(
                    json!({"genre": GENRES[i % 3], "bpm": 60 + i * 3}),
                    i % 4 != 0,
                    100 + i as u64 * 37,
                )
            })
            .collect();
        let mut all = Aggregates::new();
        let mut left = Aggregates::new();
        let mut right = Aggregates::new();
        for (i, run) in runs.iter().enumerate() {
            all.observe(run);
            if i % 2 == 0 {
                left.observe(run);
            } else {
                right.observe(run);
            }
        }
        assert_eq!(Aggregates::merged(&left, &right), all);
        assert_eq!(Aggregates::merged(&right, &left), all);
        assert_eq!(Aggregates::merged(&all, &Aggregates::new()), all);
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(serde_json::from_str::<Aggregates>(&json).unwrap(), all);
    }
}
