//! Statistics per domain/action, computed from the rollups the store sums up.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::rollup::bucket_value;
use crate::store::StatsRaw;

/// One common failure reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureReason {
    /// The normalised reason (numbers, IDs, hosts … masked).
    pub reason: String,
    /// How many failed attempts had it.
    pub count: i64,
    /// One original message.
    pub example: String,
    /// The stable fingerprint of the group.
    pub group: String,
}

/// Where the `optimalParameters` of [`Stats`] come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ParametersSource {
    /// The learner's recommendation (`learned`).
    Learned,
    /// For each parameter, the value most common among recent successful runs, while the
    /// learner has too little data (`mostCommonRecent`).
    MostCommonRecent,
}

/// The statistics of one domain/action (`GET /api/v1/tasks/history`; read back by
/// `jarvis tasks stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// The domain.
    pub domain: String,
    /// The action.
    pub action: String,
    /// From (as asked; the rollups count whole hours).
    pub since: Option<DateTime<Utc>>,
    /// Until (as asked).
    pub until: Option<DateTime<Utc>>,
    /// Attempts recorded.
    pub total: i64,
    /// Successful attempts.
    pub succeeded: i64,
    /// Failed attempts.
    pub failed: i64,
    /// `succeeded / total`, null without data.
    pub success_rate: Option<f64>,
    /// Mean duration, ms.
    pub avg_duration_ms: Option<u64>,
    /// Median duration, ms (within 5%).
    pub p50_duration_ms: Option<u64>,
    /// 95th percentile, ms (within 5%).
    pub p95_duration_ms: Option<u64>,
    /// 99th percentile, ms (within 5%).
    pub p99_duration_ms: Option<u64>,
    /// Mean impact score of the attempts that reported one.
    pub avg_impact_score: Option<f64>,
    /// Sum of reported costs.
    pub total_cost_usd: f64,
    /// `totalCostUsd / total`.
    pub cost_per_task_usd: Option<f64>,
    /// The most frequent failure groups.
    pub common_failure_reasons: Vec<FailureReason>,
    /// The best parameters: learned (`optimalParametersSource: "learned"`), or while the
    /// learner has too little data, for each parameter the value most common among recent
    /// successful runs (`"mostCommonRecent"`).
    pub optimal_parameters: Map<String, Value>,
    /// Where `optimalParameters` comes from: `learned` or `mostCommonRecent`.
    pub optimal_parameters_source: ParametersSource,
    /// With learned parameters: the learner's confidence (0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimal_parameters_confidence: Option<f64>,
    /// When the latest attempt finished.
    pub last_executed_at: Option<DateTime<Utc>>,
}

/// Nearest-rank percentile of a bucketed histogram.
pub(crate) fn percentile(durations: &[(i16, i64)], total: i64, p: f64) -> Option<u64> {
    if total <= 0 {
        return None;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (bucket, count) in durations {
        seen += count;
        if seen >= rank {
            return Some(bucket_value(*bucket).round() as u64);
        }
    }
    durations
        .last()
        .map(|(b, _)| bucket_value(*b).round() as u64)
}

/// For each top-level scalar parameter, its most common value (ties: the most recent).
pub fn most_common_parameters(runs: &[Value]) -> Map<String, Value> {
    // name -> value text -> (count, first position, value)
    let mut seen: BTreeMap<String, BTreeMap<String, (u64, usize, Value)>> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        let Some(obj) = run.as_object() else { continue };
        for (name, value) in obj.iter().take(64) {
            if !(value.is_string() || value.is_number() || value.is_boolean()) {
                continue;
            }
            let text = value.to_string();
            if text.len() > 200 {
                continue;
            }
            let e = seen
                .entry(name.clone())
                .or_default()
                .entry(text)
                .or_insert((0, i, value.clone()));
            e.0 += 1;
        }
    }
    seen.into_iter()
        .filter_map(|(name, values)| {
            values
                .into_values()
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
                .map(|(_, _, v)| (name, v))
        })
        .collect()
}

impl Stats {
    /// Computes the statistics from what the store summed up.
    pub fn from_raw(
        domain: &str,
        action: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        raw: StatsRaw,
    ) -> Stats {
        let t = &raw.totals;
        let histogram_total: i64 = raw.durations.iter().map(|(_, c)| c).sum();
        let total_cost = t.cost_sum_usd;
        Stats {
            domain: domain.to_string(),
            action: action.to_string(),
            since,
            until,
            total: t.total,
            succeeded: t.succeeded,
            failed: t.failed,
            success_rate: (t.total > 0).then(|| t.succeeded as f64 / t.total as f64),
            avg_duration_ms: (t.total > 0)
                .then(|| (t.duration_sum_ms as f64 / t.total as f64).round() as u64),
            p50_duration_ms: percentile(&raw.durations, histogram_total, 50.0),
            p95_duration_ms: percentile(&raw.durations, histogram_total, 95.0),
            p99_duration_ms: percentile(&raw.durations, histogram_total, 99.0),
            avg_impact_score: (t.impact_count > 0).then(|| t.impact_sum / t.impact_count as f64),
            total_cost_usd: total_cost,
            cost_per_task_usd: (t.total > 0).then(|| total_cost / t.total as f64),
            common_failure_reasons: raw
                .failures
                .into_iter()
                .map(|(group, f)| FailureReason {
                    reason: f.template,
                    count: f.count,
                    example: f.example,
                    group,
                })
                .collect(),
            optimal_parameters: most_common_parameters(&raw.recent_successful_parameters),
            optimal_parameters_source: ParametersSource::MostCommonRecent,
            optimal_parameters_confidence: None,
            last_executed_at: t.last_executed_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentiles_follow_the_histogram() {
        use crate::history::rollup::bucket_of;
        let mut counts: BTreeMap<i16, i64> = BTreeMap::new();
        for ms in 1..=100u64 {
            *counts.entry(bucket_of(ms)).or_default() += 1;
        }
        let durations: Vec<(i16, i64)> = counts.into_iter().collect();
        let p50 = percentile(&durations, 100, 50.0).unwrap();
        let p95 = percentile(&durations, 100, 95.0).unwrap();
        assert!((47..=53).contains(&p50), "{p50}");
        assert!((90..=100).contains(&p95), "{p95}");
        assert_eq!(percentile(&[], 0, 50.0), None);
    }

    #[test]
    fn most_common_values_win_and_ties_go_to_the_recent() {
        let runs = vec![
            json!({"bpm": 120, "genre": "jazz", "nested": {"x": 1}}),
            json!({"bpm": 90, "genre": "rock"}),
            json!({"bpm": 120, "genre": "rock"}),
            json!({"genre": "jazz"}),
        ];
        let best = most_common_parameters(&runs);
        assert_eq!(best["bpm"], json!(120));
        // jazz and rock tie 2:2; jazz was seen first (newest first).
        assert_eq!(best["genre"], json!("jazz"));
        assert!(!best.contains_key("nested"));
    }
}
